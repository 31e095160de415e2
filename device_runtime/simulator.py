"""Simulated CPython devices: the real agent, ports and protocol, minus the board.

Each simulated device has its own directory (key, certificate, durable
counters), its own software root of trust and its own mTLS connection, exactly
like a Linux-class device running the runtime; only the hardware is missing.
Certificates come from a ``certify`` callable (a factory CA), so the key never
leaves the device's root of trust, even here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from device_runtime.core.agent import DeviceAgent
from device_runtime.core.errors import SevenfoldError
from device_runtime.ports.cpython.atomic_file import write_atomic
from device_runtime.ports.cpython.clock import SystemClock
from device_runtime.ports.cpython.crypto import random_bytes
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.ports.cpython.transport import MqttTransport
from device_runtime.rot.software import KIND, SoftwareRootOfTrust

Certify = Callable[[bytes, str], bytes]
"""(CSR PEM, device id) -> certificate PEM."""

CERT_FILE = "device.crt"


@dataclass(slots=True)
class SimulatedDevice:
    device_id: str
    directory: Path
    boot_count: int = 0
    beats: int = 0
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerAddress:
    host: str
    port: int
    ca_path: Path
    prefix: str


class SimulatedFleet:
    """Provisions and runs a handful of simulated devices, one thread each."""

    def __init__(
        self,
        *,
        directory: Path,
        broker: BrokerAddress,
        certify: Certify,
        count: int,
        hwmodel: str = "sim-board-1",
        swversion: str = "1.0.0",
        device_ids: Sequence[str] | None = None,
    ) -> None:
        self.broker = broker
        self.certify = certify
        self.hwmodel = hwmodel
        self.swversion = swversion
        ids = (
            list(device_ids)
            if device_ids is not None
            else [f"sim-{n:04d}" for n in range(1, count + 1)]
        )
        self.devices = [
            SimulatedDevice(device_id=device_id, directory=directory / device_id)
            for device_id in ids
        ]
        self._threads: list[threading.Thread] = []

    def provision(self) -> None:
        """Factory step: a key in each device's root of trust and a certificate for it.

        A device already provisioned (over its console, by a factory station)
        keeps the certificate it has."""
        for device in self.devices:
            rot = SoftwareRootOfTrust.open(directory=device.directory)
            cert_path = device.directory / CERT_FILE
            if not cert_path.exists():
                pem = self.certify(rot.csr(common_name=device.device_id), device.device_id)
                write_atomic(cert_path, pem, mode=0o600)

    def start(self, *, beats: int) -> None:
        for device in self.devices:
            thread = threading.Thread(
                target=self._run, args=(device, beats), name=device.device_id, daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wait(self, timeout: float) -> bool:
        """True when every device finished (successfully or not) within *timeout*."""
        return all(device.done.wait(timeout) for device in self.devices)

    def _run(self, device: SimulatedDevice, beats: int) -> None:
        rot = SoftwareRootOfTrust.open(directory=device.directory)
        transport = MqttTransport(
            host=self.broker.host,
            port=self.broker.port,
            client_id=device.device_id,
            ca_path=self.broker.ca_path,
            cert_path=device.directory / CERT_FILE,
            key_path=rot.key_path,
        )
        agent = DeviceAgent(
            device_id=device.device_id,
            hwmodel=self.hwmodel,
            swname="sevenfold-sim",
            swversion=self.swversion,
            rot=KIND,
            transport=transport,
            clock=SystemClock(),
            store=DirectoryStore(directory=device.directory),
            random_bytes=random_bytes,
            prefix=self.broker.prefix,
        )
        try:
            device.boot_count = agent.boot()
            agent.enroll()
            agent.run(beats=beats, on_beat=lambda _answer: _count_beat(device))
        except SevenfoldError as exc:
            device.error = exc.explain()
        finally:
            transport.close()
            device.done.set()


def _count_beat(device: SimulatedDevice) -> None:
    device.beats += 1
