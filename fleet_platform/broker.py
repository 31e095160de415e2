"""A Mosquitto process run with the fleet's mutual-TLS and per-device ACL policy.

Tests, the fleet server and the demo all need the same broker policy; starting it
from one place means none of them can drift to a laxer configuration. Start-up
is only reported done once an authenticated MQTT session has been accepted, so
callers never race a broker that is still loading its certificates. The files
written at start stay in place, so the process can be launched again on the same
ports (:meth:`MosquittoBroker.relaunch`, used by the supervisor) after it died.

It has a fleet listener (fleet certificates) and a recovery listener
(manufacturer certificates, attestation topics only); see
:mod:`fleet_platform.broker_config`. Which devices may use the application
plane is the grant set: :meth:`MosquittoBroker.apply_grants` rewrites the fleet
ACL file and has the running mosquitto reload it (SIGHUP), which applies to the
connections already open. A relaunched process reads the same file, so it
comes up with the grants last applied.

It listens on loopback unless told an address (devices on other hosts need one,
or ``0.0.0.0`` / ``::`` for every interface), and its certificate names every
host name or address devices use to reach it, since they verify the broker
against the name they dialled. The certificate is issued afresh at every
:meth:`MosquittoBroker.start`, so a changed list of names takes effect at the
next start on the same state directory. Its output goes to a bounded log
(:class:`fleet_platform.child_log.ChildLog`).
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

from cryptography import x509

from device_runtime.core.errors import CryptoError
from device_runtime.ports.cpython.atomic_file import write_atomic
from fleet_platform.broker_config import (
    DEFAULT_BROKER_PORT,
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_RECOVERY_PORT,
    LOOPBACK_ADDRESS,
    BrokerError,
    BrokerFiles,
    BrokerPortTaken,
    acl_text,
    check_granted,
    check_listen_address,
    check_port,
    check_prefix,
    config_text,
    local_address,
    recovery_acl_text,
)
from fleet_platform.child_log import (
    DEFAULT_CHECK_INTERVAL,
    DEFAULT_LOG_LIMIT,
    TAIL_LINES,
    ChildLog,
)
from fleet_platform.mqtt_tls import client_context
from fleet_platform.pki import CertificateAuthority, InvalidName, IssuedCredential, check_host_name
from fleet_platform.process_supervisor import ChildProcess, die_with_parent

__all__ = [
    "DEFAULT_BROKER_PORT",
    "DEFAULT_RECOVERY_PORT",
    "BrokerError",
    "BrokerPortTaken",
    "MosquittoBroker",
]

BROKER_COMMON_NAME = "sevenfold-broker"
# Not a valid device id (it has a dot), so it can never be mistaken for a device.
PROBE_COMMON_NAME = "fleet_platform.broker-probe"
LOCAL_NAMES = (LOOPBACK_ADDRESS, "localhost")
"""Always in the broker certificate: clients on this machine reach it under these."""
_LOG_NAME = "mosquitto.log"
_CONFIG_NAME = "mosquitto.conf"
_PORT_ATTEMPTS = 3
_PORT_TAKEN = "Address already in use"
# mosquitto names each port as it opens it; the last one named before the error is taken.
_OPENING_PORT = re.compile(r"listen socket on port (\d+)\.")


def locate_mosquitto(mosquitto: str | None = None) -> str:
    """Path of the mosquitto binary; Debian installs it in /usr/sbin, often off PATH."""
    name = mosquitto or "mosquitto"
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if found is None:
        raise BrokerError(f"mosquitto executable {name!r} not found (apt-get install mosquitto)")
    return found


def _current_user() -> str:
    """Name mosquitto should run as, so that dropping root privileges keeps access to its files."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        # Only root switches user, and root always has an entry; others ignore the option.
        return "mosquitto"


def _free_port(listen: str) -> int:
    """A port free on *listen* now (tests only: another process may take it before mosquitto)."""
    family = socket.AF_INET6 if ipaddress.ip_address(listen).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((listen, 0))
        return int(sock.getsockname()[1])


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _certificate_names(listen: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """What the broker certificate lists: loopback, the address it is probed on, then *names*."""
    listed: list[str] = []
    for name in (*LOCAL_NAMES, local_address(listen), *names):
        if name not in listed:
            listed.append(name)
    return tuple(listed)


def _check_names(names: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(names, str):
        raise BrokerError(f"broker names must be a sequence of names, not the text {names!r}")
    checked = []
    for name in names:
        try:
            checked.append(check_host_name(name))
        except InvalidName as exc:
            raise BrokerError(
                f"broker name {name!r} cannot go into its certificate: {exc.reason}"
            ) from None
    return tuple(checked)


def _recovery_bundle(manufacturer_cas: Sequence[bytes], fleet_ca: bytes) -> bytes:
    """The recovery listener's CA file: the manufacturer CAs, else the fleet CA.

    Never empty, since mosquitto refuses a listener without a CA. Each entry
    must parse as PEM certificates, as a damaged one would stop mosquitto.
    """
    if isinstance(manufacturer_cas, bytes | str):
        raise BrokerError("manufacturer CAs must be a sequence of PEM certificates")
    bundle = []
    for index, pem in enumerate(manufacturer_cas):
        try:
            if not isinstance(pem, bytes) or not x509.load_pem_x509_certificates(pem):
                raise ValueError("not PEM bytes")
        except ValueError as exc:
            raise BrokerError(
                f"manufacturer CA {index} is not PEM certificates ({exc}), so the recovery"
                f" listener cannot trust it"
            ) from None
        bundle.append(pem if pem.endswith(b"\n") else pem + b"\n")
    return b"".join(bundle) if bundle else fleet_ca


def _connect_packet(client_id: str) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session, enough to prove the broker authenticates."""
    ident = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(ident).to_bytes(2, "big") + ident
    return bytes([0x10, len(body)]) + body


class MosquittoBroker(ChildProcess):
    """A mosquitto child process with mutual TLS, listening on *listen* (loopback by default).

    ``host`` is where clients on this machine reach it (what the probe and the
    fleet server use: loopback when it listens on every interface);
    ``advertised_host`` is what devices are told: the first name it was started
    with, else ``host``. ``names`` is everything its certificate lists.

    ``recovery_port`` is the recovery listener's, on the same address.

    One process at a time: :meth:`relaunch` replaces a process that has ended,
    and :meth:`stop` is final, so nothing can start the broker again after it.
    """

    def __init__(
        self,
        *,
        executable: str,
        directory: Path,
        listen: str,
        names: tuple[str, ...],
        port: int,
        recovery_port: int,
        prefix: str,
        server_identities: tuple[str, ...],
        granted: tuple[str, ...] | None,
        files: BrokerFiles,
        broker_ca_path: Path,
        probe: IssuedCredential,
        ready_timeout: float,
        log: ChildLog,
    ) -> None:
        super().__init__()
        self.directory = directory
        self.listen = listen
        self.host = local_address(listen)
        self.advertised_host = names[0] if names else self.host
        self.names = _certificate_names(listen, names)
        self.port = port
        self.recovery_port = recovery_port
        self.prefix = prefix
        self.ca_path = broker_ca_path
        """The CA a client checks the broker's certificate against (the fleet CA)."""
        self._files = files
        self._server_identities = server_identities
        self._granted = granted
        # Held while the ACL file is replaced and mosquitto told, and while a process
        # launches: a SIGHUP before mosquitto installed its handler would kill it.
        self._reload_lock = threading.Lock()
        self._executable = executable
        self._probe = probe
        self._ready_timeout = ready_timeout
        self._log = log

    @classmethod
    def start(
        cls,
        *,
        directory: Path,
        authority: CertificateAuthority,
        port: int | None = None,
        recovery_port: int | None = None,
        listen: str = DEFAULT_LISTEN_ADDRESS,
        names: tuple[str, ...] = (),
        prefix: str = "sevenfold",
        server_identities: tuple[str, ...] = ("sevenfold-server",),
        manufacturer_cas: Sequence[bytes] = (),
        grants: Iterable[str] | None = (),
        client_authority: CertificateAuthority | None = None,
        fleet_clients: bool = True,
        mosquitto: str | None = None,
        ready_timeout: float = 10.0,
        log_limit: int = DEFAULT_LOG_LIMIT,
        log_check_interval: float = DEFAULT_CHECK_INTERVAL,
    ) -> MosquittoBroker:
        """Write certificates, ACL and config into *directory*, launch mosquitto, wait for it.

        The fleet server passes *port* and *recovery_port*
        (:data:`DEFAULT_BROKER_PORT` and :data:`DEFAULT_RECOVERY_PORT` unless
        the operator chose others) and gets :class:`BrokerPortTaken` when
        another process holds one. A port not given is a free one, picked again
        if another process grabs it before mosquitto binds it: for tests only,
        as devices could not find a broker whose port changes.

        *manufacturer_cas* (PEM, one or more certificates each) are what the
        recovery listener trusts; with none it trusts the fleet CA. The fleet
        listener trusts client certificates from *client_authority* (the CA of
        attestation passes; the probe's certificate comes from it too) and, while
        *fleet_clients*, from the fleet CA as well: without an attestation gate
        devices present certificates the fleet CA issued; with one, only a pass
        opens the fleet listener, so a long-lived certificate from provisioning,
        whatever else is granted, is refused at the handshake. *grants*
        are the device ids given the application plane from the first moment,
        as :meth:`apply_grants` would; None gives it to every certified device
        (no attestation gate).

        *listen* is an IP address of this machine, or ``0.0.0.0`` / ``::`` for
        every interface; *names* the DNS names or addresses devices dial, all
        put into the certificate (with loopback and *listen*), which is issued
        anew on every start. mosquitto's log is rotated past *log_limit* bytes.
        """
        check_prefix(prefix)
        server_identities = tuple(server_identities)
        granted = None if grants is None else check_granted(grants)
        acl = acl_text(prefix=prefix, server_identities=server_identities, granted=granted)
        if port is not None:
            check_port(port)
        if recovery_port is not None:
            check_port(recovery_port)
            if recovery_port == port:
                raise BrokerError(f"the fleet and recovery listeners cannot share port {port}")
        listen = check_listen_address(listen)
        names = _check_names(names)
        executable = locate_mosquitto(mosquitto)
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            ca_path = directory / "ca.pem"
            fleet_ca = authority.cert_path.read_bytes()
            write_atomic(ca_path, fleet_ca, mode=0o600)
            clients = client_authority or authority
            clients_ca_path = directory / "clients-ca.pem"
            bundle = clients.cert_path.read_bytes()
            if fleet_clients and clients is not authority:
                bundle += fleet_ca
            write_atomic(clients_ca_path, bundle, mode=0o600)
            recovery_ca_path = directory / "recovery-ca.pem"
            write_atomic(recovery_ca_path, _recovery_bundle(manufacturer_cas, fleet_ca), mode=0o600)
            # Issued on every start, never reused: the names may have changed since.
            server = authority.issue_server(
                common_name=BROKER_COMMON_NAME,
                hosts=list(_certificate_names(listen, names)),
                directory=directory,
                days=825,
            )
            probe = clients.issue_client(
                common_name=PROBE_COMMON_NAME, directory=directory, days=825
            )
            files = BrokerFiles(
                ca_path=clients_ca_path,
                cert_path=server.cert_path,
                key_path=server.key_path,
                acl_path=directory / "acl",
                recovery_ca_path=recovery_ca_path,
                recovery_acl_path=directory / "recovery.acl",
            )
            write_atomic(files.acl_path, acl.encode(), mode=0o600)
            write_atomic(
                files.recovery_acl_path, recovery_acl_text(prefix=prefix).encode(), mode=0o600
            )
        except OSError as exc:
            raise BrokerError(f"cannot prepare mosquitto's files in {directory}: {exc}") from exc

        log = ChildLog(directory / _LOG_NAME, limit=log_limit, check_interval=log_check_interval)

        def run_once() -> MosquittoBroker:
            broker = cls(
                executable=executable,
                directory=directory,
                listen=listen,
                names=names,
                port=_free_port(listen) if port is None else port,
                recovery_port=_free_port(listen) if recovery_port is None else recovery_port,
                prefix=prefix,
                server_identities=server_identities,
                granted=granted,
                files=files,
                broker_ca_path=ca_path,
                probe=probe,
                ready_timeout=ready_timeout,
                log=log,
            )
            try:
                broker._write_config(files)
                broker._launch()
            except BaseException:
                broker.stop()  # also ends the log's watcher
                raise
            return broker

        picked = port is None or recovery_port is None
        for _ in range(_PORT_ATTEMPTS - 1 if picked else 0):
            try:
                return run_once()
            except BrokerPortTaken:
                pass
        return run_once()

    @property
    def config_path(self) -> Path:
        return self.directory / _CONFIG_NAME

    @property
    def log_path(self) -> Path:
        return self._log.path

    @property
    def name(self) -> str:
        """How the supervisor and the health check refer to this broker."""
        return f"mosquitto on {_host_port(self.listen, self.port)}"

    @property
    def granted(self) -> tuple[str, ...] | None:
        """The device ids the ACL file grants the application plane, sorted; None when every
        certified device has it (no attestation gate)."""
        return self._granted

    def apply_grants(self, device_ids: Iterable[str]) -> None:
        """Grant the application plane to exactly *device_ids*, now, connections open included.

        The fleet ACL file is replaced atomically (a crash leaves the old set
        or the new one), then the running mosquitto is sent SIGHUP, which makes
        it read the file again at its next loop turn. When no process runs
        (it died and the supervisor has yet to relaunch it) the file alone is
        enough: the next process reads it. Raises :class:`InvalidField` for an
        id the protocol refuses, :class:`BrokerError` when the file cannot be
        written or the broker was stopped. Thread-safe.
        """
        if self._granted is None:
            raise BrokerError("this broker has no attestation gate: every device is granted")
        granted = check_granted(device_ids)
        acl = acl_text(
            prefix=self.prefix, server_identities=self._server_identities, granted=granted
        )
        with self._reload_lock:
            if self._stopped:
                raise BrokerError(f"the broker on port {self.port} was stopped; not granting")
            try:
                write_atomic(self._files.acl_path, acl.encode(), mode=0o600)
            except OSError as exc:
                raise BrokerError(f"cannot write {self._files.acl_path}: {exc}") from exc
            self._granted = granted
            process = self._process
            # Popen does not signal a process it has already reaped, whose pid may be reused.
            if process is not None:
                process.send_signal(signal.SIGHUP)

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        """Last lines of mosquitto's own output, the only place it explains a refusal."""
        return self._log.tail(lines)

    def launch_output(self, lines: int = TAIL_LINES) -> str:
        """Last lines mosquitto wrote since its latest launch: why that process failed or died."""
        return self._log.since_launch(lines)

    def client_context(self, credential: IssuedCredential) -> ssl.SSLContext:
        """TLS context for a client of this broker presenting *credential*."""
        return client_context(ca_path=self.ca_path, credential=credential)

    def relaunch(self) -> None:
        """Start mosquitto again, same files and port, after its process ended; wait for it.

        Raises :class:`BrokerError` (:class:`BrokerPortTaken` when another
        process took the port meanwhile) when the new process does not come up,
        and when the broker was stopped or is still running.
        """
        with self._reload_lock:
            if self.running:
                raise BrokerError(
                    f"mosquitto is still running on port {self.port} (pid {self.pid})"
                )
            self._launch()

    def stop(self, timeout: float = 10.0) -> None:
        """End mosquitto for good, and the watch on its log; idempotent."""
        super().stop(timeout)
        self._log.close()

    def __enter__(self) -> MosquittoBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _write_config(self, files: BrokerFiles) -> None:
        config = config_text(
            port=self.port,
            recovery_port=self.recovery_port,
            prefix=self.prefix,
            files=files,
            run_as=_current_user(),
            listen=self.listen,
        )
        try:
            write_atomic(self.config_path, config.encode(), mode=0o600)
        except OSError as exc:
            raise BrokerError(f"cannot write {self.config_path}: {exc}") from exc

    def _launch(self) -> None:
        """Spawn mosquitto and wait until it accepts the probe; on failure leave no process."""
        with self._lock:
            if self._stopped:
                raise BrokerError(f"the broker on port {self.port} was stopped; not launching it")
            try:
                with self._log.open_for_launch() as log:
                    self._process = subprocess.Popen(
                        [self._executable, "-c", str(self.config_path)],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=die_with_parent,
                    )
            except OSError as exc:
                raise BrokerError(
                    f"cannot launch {self._executable} in {self.directory}: {exc}"
                ) from exc
        try:
            self._wait_ready(self._ready_timeout)
        except BaseException:
            with self._lock:
                self._terminate(timeout=5.0)
            raise

    def _wait_ready(self, timeout: float) -> None:
        process = self._process
        assert process is not None, "launched before waiting"
        try:
            context = self.client_context(self._probe)
        except CryptoError as exc:
            raise BrokerError(f"cannot build the start-up probe: {exc.reason}") from exc
        deadline = time.monotonic() + timeout
        last_error = "no attempt made"
        while True:
            code = process.poll()
            if code is not None:
                output = self.launch_output()
                if _PORT_TAKEN in output:
                    raise self._port_taken(output)
                raise BrokerError(f"mosquitto exited with status {code}:\n{output}")
            try:
                accepted = self._session_accepted(context)
            except (OSError, ssl.SSLError) as exc:
                last_error = str(exc)
            else:
                if accepted is None:
                    return
                raise BrokerError(
                    f"mosquitto refused the probe ({accepted}):\n{self.launch_output()}"
                )
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"mosquitto did not accept a TLS session on {_host_port(self.host, self.port)}"
                    f" within {timeout:g}s (last error: {last_error}):\n{self.launch_output()}"
                )
            time.sleep(0.05)

    def _port_taken(self, output: str) -> BrokerPortTaken:
        """Which of the two listeners' ports another process holds, from mosquitto's words."""
        opened = _OPENING_PORT.findall(output[: output.rfind(_PORT_TAKEN)])
        if opened and int(opened[-1]) == self.recovery_port:
            return BrokerPortTaken(
                self.recovery_port, output, listen=self.listen, option="--broker-recovery-port"
            )
        return BrokerPortTaken(self.port, output, listen=self.listen)

    def _session_accepted(self, context: ssl.SSLContext) -> str | None:
        """None when CONNACK accepts the probe, else why not; socket errors propagate."""
        with (
            socket.create_connection((self.host, self.port), timeout=1.0) as raw,
            context.wrap_socket(raw, server_hostname=self.host) as tls,
        ):
            tls.sendall(_connect_packet(f"sevenfold-probe-{os.getpid()}"))
            reply = b""
            while len(reply) < 4:
                chunk = tls.recv(4 - len(reply))
                if not chunk:
                    return "connection closed before CONNACK"
                reply += chunk
            if reply[:2] != b"\x20\x02":
                return f"unexpected reply {reply.hex()}"
            if reply[3] != 0:
                return f"CONNACK return code {reply[3]}"
            tls.sendall(b"\xe0\x00")
            return None
