"""What the resilience tests share: a device that shows every answer, waiting with a deadline.

The device is a real one as far as the server can tell (a key in a software
root of trust, a certificate the fleet CA signed from its CSR, the CPython
mTLS transport), but it speaks the protocol itself instead of through the
agent, so a test sees each answer exactly as the server sent it: the error
code and the ``retry_after`` an outage is answered with, and which sequence
numbers were acknowledged, which is what durability is judged by.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from device_runtime.core import protocol
from device_runtime.core.errors import ProtocolError, TransportError
from device_runtime.ports.cpython.atomic_file import write_atomic
from device_runtime.ports.cpython.crypto import random_bytes
from device_runtime.ports.cpython.tls_credential import identity_key_file
from device_runtime.ports.cpython.transport import MqttTransport
from device_runtime.simulator import csr_pem, open_root_of_trust
from fleet_platform.pki import fleet_authority
from fleet_platform.server_config import ServerConfig
from sevenfold.server import FleetServer
from tests.components import binary, free_port

T = TypeVar("T")

POLL_S = 0.05


def wait_until(condition: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """The first truthy value of *condition*, polled until *timeout* seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(POLL_S)


def healthz(url: str) -> tuple[int, dict[str, Any]]:
    """``/healthz`` status code and body."""
    response = httpx.get(f"{url}/healthz", timeout=10)
    return response.status_code, response.json()


def check_ok(url: str, name: str) -> bool:
    """True when ``/healthz`` answers and its *name* check passes."""
    try:
        _, body = healthz(url)
    except httpx.HTTPError:
        return False
    check = body["checks"].get(name)
    return bool(check and check["ok"])


@contextmanager
def managed_fleet(state_dir: Path, *, database_url: str | None = None) -> Iterator[FleetServer]:
    """A server with its managed broker on a port of its own, fixed for its lifetime as in
    production (0 would let a relaunch pick another), and a 1 s heartbeat interval."""
    binary("mosquitto")
    config = ServerConfig(
        state_dir=state_dir,
        database_url=database_url,
        http_port=0,
        broker_port=free_port(),
        recovery_port=free_port(),
        attestation_gate=False,
        heartbeat_interval=1,
    )
    with FleetServer(config=config) as server:
        yield server


def probe_of(fleet: FleetServer, device_id: str) -> ProbeDevice:
    """A connected :class:`ProbeDevice` on *fleet*'s managed broker."""
    broker = fleet.broker
    assert broker is not None, "the fleet runs no managed broker"
    return ProbeDevice(
        state_dir=fleet.config.state_dir,
        device_id=device_id,
        host=broker.host,
        port=broker.port,
        ca_path=broker.ca_path,
    ).connect()


@dataclass(frozen=True, slots=True)
class Answer:
    """What the server answered one request with."""

    kind: str
    body: dict[str, object]

    @property
    def code(self) -> str:
        return "ok" if self.kind != "error" else str(self.body["code"])


class ProbeDevice:
    """One provisioned device on the fleet's broker, speaking the protocol directly."""

    def __init__(
        self,
        *,
        state_dir: Path,
        device_id: str,
        host: str,
        port: int,
        ca_path: Path,
        prefix: str = protocol.DEFAULT_PREFIX,
    ) -> None:
        self.device_id = device_id
        self.prefix = prefix
        self.host, self.port, self.ca_path = host, port, ca_path
        directory = state_dir / "probe-devices" / device_id
        self._rot = open_root_of_trust(kind="software", directory=directory)
        self._cert = directory / "device.crt"
        if not self._cert.exists():
            authority = fleet_authority(state_dir)
            pem = authority.sign_csr(
                csr_pem(self._rot.csr(device_id)), required_common_name=device_id
            )
            write_atomic(self._cert, pem, mode=0o600)
        self._transport: MqttTransport | None = None

    def connect(self) -> ProbeDevice:
        """A fresh connection and subscription, as a device makes after losing its broker."""
        self.close()
        with identity_key_file(self._rot) as key_path:
            transport = MqttTransport(
                host=self.host,
                port=self.port,
                client_id=self.device_id,
                ca_path=self.ca_path,
                cert_path=self._cert,
                key_path=key_path,
            )
        transport.connect()
        try:
            transport.subscribe(protocol.topic(self.prefix, self.device_id, "down"))
        except TransportError:
            transport.close()
            raise
        self._transport = transport
        return self

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def request(self, kind: str, body: dict[str, object], *, timeout: float) -> Answer | None:
        """Send one request; its answer, or None when none came within *timeout*.

        Raises :class:`TransportError` when the broker did not take the request.
        """
        transport = self._transport
        if transport is None:
            raise TransportError(f"{self.device_id} is not connected")
        correlation = random_bytes(protocol.CORRELATION_BYTES)
        transport.publish(
            protocol.topic(self.prefix, self.device_id, "up"),
            protocol.encode(kind, correlation, body),
        )
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            received = transport.poll(int(left * 1000))
            if received is None:
                continue
            try:
                envelope = protocol.decode(received[1])
            except ProtocolError:
                continue
            if envelope.correlation == correlation:
                return Answer(envelope.kind, envelope.body)
        return None

    def enroll(self, *, boot_count: int = 1, timeout: float = 10.0) -> Answer:
        body: dict[str, object] = {
            "device_id": self.device_id,
            "hwmodel": "probe-board",
            "swname": "probe",
            "swversion": "1.0.0",
            "rot": "software",
            "boot_count": boot_count,
        }
        answer = self.request("enroll", body, timeout=timeout)
        assert answer is not None and answer.kind == "enrolled", f"enroll answered {answer}"
        return answer

    def heartbeat(self, seq: int, *, boot_count: int = 1, timeout: float = 5.0) -> Answer | None:
        return self.request(
            "heartbeat", {"seq": seq, "uptime": seq, "boot_count": boot_count}, timeout=timeout
        )


@dataclass
class Traffic:
    """What a :class:`HeartbeatDriver` saw; read it under :attr:`lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    last_sent: int = 0
    last_acked: int = 0
    acked_at: float = 0.0
    """``time.monotonic()`` of the latest acknowledgement."""
    codes: Counter[str] = field(default_factory=Counter)
    refusals: list[tuple[str, object, float]] = field(default_factory=list)
    """(code, ``retry_after`` or None, ``time.monotonic()``) of every error answer, in order."""
    silences: int = 0
    """Requests with no answer in time, or that the broker did not take."""
    errors: list[str] = field(default_factory=list)


class HeartbeatDriver:
    """Heartbeats from one device as fast as the device's rate allows, from a thread.

    A heartbeat that is answered with a retry (``unavailable``, ``busy``) is
    sent again after the ``retry_after`` the server asked for; one that gets no
    answer is sent again, like a device whose request timed out. The sequence
    number only moves past an acknowledged or unanswered one, never past one the
    server said it did not record.
    """

    def __init__(
        self,
        device: ProbeDevice,
        *,
        interval: float = 0.25,
        timeout: float = 2.0,
        reconnect: bool = False,
    ) -> None:
        self.device = device
        self.traffic = Traffic()
        self._interval = interval
        self._timeout = timeout
        self._reconnect = reconnect
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"beats-{device.device_id}", daemon=True
        )

    def start(self, *, after_seq: int = 0) -> HeartbeatDriver:
        with self.traffic.lock:
            self.traffic.last_sent = after_seq
            self.traffic.last_acked = after_seq
        self._thread.start()
        return self

    def stop(self) -> Traffic:
        self._stop.set()
        self._thread.join(timeout=self._timeout + 15)
        assert not self._thread.is_alive(), "the heartbeat driver did not stop"
        return self.traffic

    def acked_beyond(self, seq: int) -> bool:
        with self.traffic.lock:
            return self.traffic.last_acked > seq

    def count(self, code: str) -> int:
        with self.traffic.lock:
            return self.traffic.codes[code]

    def _run(self) -> None:
        traffic = self.traffic
        with traffic.lock:
            seq = traffic.last_sent + 1
        while not self._stop.is_set():
            with traffic.lock:
                traffic.last_sent = max(traffic.last_sent, seq)
            try:
                answer = self.device.heartbeat(seq, timeout=self._timeout)
            except TransportError as exc:
                answer = None
                with traffic.lock:
                    traffic.errors.append(exc.reason)
                if self._reconnect:
                    self._try_reconnect()
                else:
                    self._stop.wait(self._interval)
            pause = self._interval
            with traffic.lock:
                if answer is None:
                    traffic.silences += 1
                    seq += 1  # it may have been recorded: a repeat would be refused as a replay
                    continue
                traffic.codes[answer.code] += 1
                retry = answer.body.get("retry_after")
                if answer.kind == "error":
                    traffic.refusals.append((answer.code, retry, time.monotonic()))
                if isinstance(retry, int):
                    pause = retry / 1000
                if answer.kind == "heartbeat-ack":
                    traffic.last_acked = max(traffic.last_acked, int(str(answer.body["seq"])))
                    traffic.acked_at = time.monotonic()
                    seq += 1
                elif not isinstance(retry, int):
                    seq += 1  # refused for good (e.g. a replay): go on with the next one
            self._stop.wait(pause)

    def _try_reconnect(self) -> None:
        try:
            self.device.connect()
        except TransportError as exc:
            with self.traffic.lock:
                self.traffic.errors.append(f"reconnect: {exc.reason}")
            self._stop.wait(self._interval)
