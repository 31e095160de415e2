"""A Mosquitto process run with the fleet's mutual-TLS and per-device ACL policy.

Tests, the fleet server and the demo all need the same broker policy; starting it
from one place means none of them can drift to a laxer configuration. Start-up
is only reported done once an authenticated MQTT session has been accepted, so
callers never race a broker that is still loading its certificates. The files
written at start stay in place, so the process can be launched again on the same
port (:meth:`MosquittoBroker.relaunch`, used by the supervisor) after it died.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from device_runtime.core.errors import CryptoError
from device_runtime.ports.cpython.atomic_file import write_atomic
from fleet_platform.broker_config import (
    DEFAULT_BROKER_PORT,
    LISTEN_HOST,
    BrokerError,
    BrokerFiles,
    BrokerPortTaken,
    acl_text,
    check_port,
    check_prefix,
    config_text,
)
from fleet_platform.mqtt_tls import client_context
from fleet_platform.pki import CertificateAuthority, IssuedCredential
from fleet_platform.process_supervisor import ChildProcess, die_with_parent

__all__ = ["DEFAULT_BROKER_PORT", "BrokerError", "BrokerPortTaken", "MosquittoBroker"]

HOST = LISTEN_HOST
BROKER_COMMON_NAME = "sevenfold-broker"
# Not a valid device id (it has a dot), so it can never be mistaken for a device.
PROBE_COMMON_NAME = "fleet_platform.broker-probe"
_LOG_NAME = "mosquitto.log"
_CONFIG_NAME = "mosquitto.conf"
_TAIL_LINES = 20
_PORT_ATTEMPTS = 3
_PORT_TAKEN = "Address already in use"


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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _connect_packet(client_id: str) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session, enough to prove the broker authenticates."""
    ident = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(ident).to_bytes(2, "big") + ident
    return bytes([0x10, len(body)]) + body


class MosquittoBroker(ChildProcess):
    """A mosquitto child process listening on loopback with mutual TLS.

    One process at a time: :meth:`relaunch` replaces a process that has ended,
    and :meth:`stop` is final, so nothing can start the broker again after it.
    """

    def __init__(
        self,
        *,
        executable: str,
        directory: Path,
        port: int,
        prefix: str,
        files: BrokerFiles,
        probe: IssuedCredential,
        ready_timeout: float,
    ) -> None:
        super().__init__()
        self.directory = directory
        self.host = HOST
        self.port = port
        self.prefix = prefix
        self.ca_path = files.ca_path
        self._executable = executable
        self._probe = probe
        self._ready_timeout = ready_timeout
        self._log_offset = 0

    @classmethod
    def start(
        cls,
        *,
        directory: Path,
        authority: CertificateAuthority,
        port: int | None = None,
        prefix: str = "sevenfold",
        server_identities: tuple[str, ...] = ("sevenfold-server",),
        mosquitto: str | None = None,
        ready_timeout: float = 10.0,
    ) -> MosquittoBroker:
        """Write certificates, ACL and config into *directory*, launch mosquitto, wait for it.

        The fleet server passes *port* (:data:`DEFAULT_BROKER_PORT` unless the
        operator chose another) and gets :class:`BrokerPortTaken` when another
        process holds it. With no *port* a free one is picked, and picked again
        if another process grabs it before mosquitto binds it: for tests only,
        as devices could not find a broker whose port changes.
        """
        check_prefix(prefix)
        acl = acl_text(prefix=prefix, server_identities=tuple(server_identities))
        if port is not None:
            check_port(port)
        executable = locate_mosquitto(mosquitto)
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            ca_path = directory / "ca.pem"
            write_atomic(ca_path, authority.cert_path.read_bytes(), mode=0o600)
            server = authority.issue_server(
                common_name=BROKER_COMMON_NAME,
                hosts=[HOST, "localhost"],
                directory=directory,
                days=825,
            )
            probe = authority.issue_client(
                common_name=PROBE_COMMON_NAME, directory=directory, days=825
            )
            files = BrokerFiles(
                ca_path=ca_path,
                cert_path=server.cert_path,
                key_path=server.key_path,
                acl_path=directory / "acl",
            )
            write_atomic(files.acl_path, acl.encode(), mode=0o600)
        except OSError as exc:
            raise BrokerError(f"cannot prepare mosquitto's files in {directory}: {exc}") from exc

        def run_once() -> MosquittoBroker:
            broker = cls(
                executable=executable,
                directory=directory,
                port=_free_port() if port is None else port,
                prefix=prefix,
                files=files,
                probe=probe,
                ready_timeout=ready_timeout,
            )
            broker._write_config(files)
            broker._launch(fresh_log=True)
            return broker

        for _ in range(0 if port is not None else _PORT_ATTEMPTS - 1):
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
        return self.directory / _LOG_NAME

    @property
    def name(self) -> str:
        """How the supervisor and the health check refer to this broker."""
        return f"mosquitto on {self.host}:{self.port}"

    def log_tail(self, lines: int = _TAIL_LINES) -> str:
        """Last lines of mosquitto's own output, the only place it explains a refusal."""
        return self._read_log(0, lines)

    def launch_output(self, lines: int = _TAIL_LINES) -> str:
        """Last lines mosquitto wrote since its latest launch: why that process failed or died."""
        return self._read_log(self._log_offset, lines)

    def client_context(self, credential: IssuedCredential) -> ssl.SSLContext:
        """TLS context for a client of this broker presenting *credential*."""
        return client_context(ca_path=self.ca_path, credential=credential)

    def relaunch(self) -> None:
        """Start mosquitto again, same files and port, after its process ended; wait for it.

        Raises :class:`BrokerError` (:class:`BrokerPortTaken` when another
        process took the port meanwhile) when the new process does not come up,
        and when the broker was stopped or is still running.
        """
        if self.running:
            raise BrokerError(f"mosquitto is still running on port {self.port} (pid {self.pid})")
        self._launch(fresh_log=False)

    def __enter__(self) -> MosquittoBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _read_log(self, offset: int, lines: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _write_config(self, files: BrokerFiles) -> None:
        config = config_text(
            port=self.port, prefix=self.prefix, files=files, run_as=_current_user()
        )
        try:
            write_atomic(self.config_path, config.encode(), mode=0o600)
        except OSError as exc:
            raise BrokerError(f"cannot write {self.config_path}: {exc}") from exc

    def _launch(self, *, fresh_log: bool) -> None:
        """Spawn mosquitto and wait until it accepts the probe; on failure leave no process."""
        with self._lock:
            if self._stopped:
                raise BrokerError(f"the broker on port {self.port} was stopped; not launching it")
            try:
                with _private_log(self.log_path, fresh=fresh_log) as log:
                    self._log_offset = log.tell()
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
                    raise BrokerPortTaken(self.port, output)
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
                    f"mosquitto did not accept a TLS session on port {self.port} within "
                    f"{timeout:g}s (last error: {last_error}):\n{self.launch_output()}"
                )
            time.sleep(0.05)

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


def _private_log(path: Path, *, fresh: bool) -> BinaryIO:
    """mosquitto's output file, owner-only whatever the umask: it names every client."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if fresh else os.O_APPEND)
    descriptor = os.open(path, flags, 0o600)
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, "wb" if fresh else "ab")
