"""A Mosquitto process run with the fleet's mutual-TLS and per-device ACL policy.

Tests, the fleet server and the demo all need the same broker policy; starting it
from one place means none of them can drift to a laxer configuration. Start-up
is only reported done once an authenticated MQTT session has been accepted, so
callers never race a broker that is still loading its certificates.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path
from types import TracebackType

from device_runtime.core.errors import CryptoError
from device_runtime.ports.cpython.atomic_file import write_atomic
from fleet_platform.broker_config import (
    BrokerError,
    BrokerFiles,
    acl_text,
    check_port,
    check_prefix,
    config_text,
)
from fleet_platform.mqtt_tls import client_context
from fleet_platform.pki import CertificateAuthority, IssuedCredential

__all__ = ["BrokerError", "MosquittoBroker"]

HOST = "127.0.0.1"
BROKER_COMMON_NAME = "sevenfold-broker"
# Not a valid device id (it has a dot), so it can never be mistaken for a device.
PROBE_COMMON_NAME = "fleet_platform.broker-probe"
_LOG_NAME = "mosquitto.log"
_TAIL_LINES = 20
_PORT_ATTEMPTS = 3
_PORT_TAKEN = "Address already in use"

_PR_SET_PDEATHSIG = 1


def locate_mosquitto(mosquitto: str | None = None) -> str:
    """Path of the mosquitto binary; Debian installs it in /usr/sbin, often off PATH."""
    name = mosquitto or "mosquitto"
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if found is None:
        raise BrokerError(f"mosquitto executable {name!r} not found (apt-get install mosquitto)")
    return found


def _die_with_parent() -> None:
    """Linux: the broker gets SIGTERM when the process that started it dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


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


class MosquittoBroker:
    """A running mosquitto child process listening on loopback with mutual TLS."""

    def __init__(
        self,
        *,
        process: subprocess.Popen[bytes],
        directory: Path,
        port: int,
        prefix: str,
        ca_path: Path,
        probe: IssuedCredential,
    ) -> None:
        self._process = process
        self.directory = directory
        self.host = HOST
        self.port = port
        self.prefix = prefix
        self.ca_path = ca_path
        self._probe = probe

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

        With no *port* a free one is picked, and picked again if another process
        grabs it before mosquitto binds it.
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
            write_atomic(ca_path, authority.cert_path.read_bytes(), mode=0o644)
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
            return cls._run_once(
                executable=executable,
                directory=directory,
                files=files,
                port=_free_port() if port is None else port,
                prefix=prefix,
                probe=probe,
                ready_timeout=ready_timeout,
            )

        for _ in range(0 if port is not None else _PORT_ATTEMPTS - 1):
            try:
                return run_once()
            except BrokerError as exc:
                if _PORT_TAKEN not in exc.reason:
                    raise
        return run_once()

    @classmethod
    def _run_once(
        cls,
        *,
        executable: str,
        directory: Path,
        files: BrokerFiles,
        port: int,
        prefix: str,
        probe: IssuedCredential,
        ready_timeout: float,
    ) -> MosquittoBroker:
        config_path = directory / "mosquitto.conf"
        config = config_text(port=port, files=files, run_as=_current_user())
        try:
            write_atomic(config_path, config.encode(), mode=0o600)
            with (directory / _LOG_NAME).open("wb") as log:
                process = subprocess.Popen(
                    [executable, "-c", str(config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
        except OSError as exc:
            raise BrokerError(f"cannot launch {executable} in {directory}: {exc}") from exc
        broker = cls(
            process=process,
            directory=directory,
            port=port,
            prefix=prefix,
            ca_path=files.ca_path,
            probe=probe,
        )
        try:
            broker._wait_ready(ready_timeout)
        except BaseException:
            broker.stop()
            raise
        return broker

    @property
    def log_path(self) -> Path:
        return self.directory / _LOG_NAME

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def log_tail(self, lines: int = _TAIL_LINES) -> str:
        """Last lines of mosquitto's own output, the only place it explains a refusal."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def client_context(self, credential: IssuedCredential) -> ssl.SSLContext:
        """TLS context for a client of this broker presenting *credential*."""
        return client_context(ca_path=self.ca_path, credential=credential)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate mosquitto; safe to call more than once."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=timeout)

    def __enter__(self) -> MosquittoBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self, timeout: float) -> None:
        try:
            context = self.client_context(self._probe)
        except CryptoError as exc:
            raise BrokerError(f"cannot build the start-up probe: {exc.reason}") from exc
        deadline = time.monotonic() + timeout
        last_error = "no attempt made"
        while True:
            code = self._process.poll()
            if code is not None:
                raise BrokerError(f"mosquitto exited with status {code}:\n{self.log_tail()}")
            try:
                accepted = self._session_accepted(context)
            except (OSError, ssl.SSLError) as exc:
                last_error = str(exc)
            else:
                if accepted is None:
                    return
                raise BrokerError(f"mosquitto refused the probe ({accepted}):\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"mosquitto did not accept a TLS session on port {self.port} within "
                    f"{timeout:g}s (last error: {last_error}):\n{self.log_tail()}"
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
