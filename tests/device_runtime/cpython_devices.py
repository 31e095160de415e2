"""CPython devices for tests: the real agent with the real CPython ports.

One place builds them, so every test's device is configured the same way as
the simulator's and only the parts a test is about differ.
"""

from __future__ import annotations

from pathlib import Path

from device_runtime.core.agent import DeviceAgent
from device_runtime.ports.cpython.clock import SystemClock
from device_runtime.ports.cpython.crypto import random_bytes
from device_runtime.ports.cpython.storage import DirectoryStore
from device_runtime.ports.cpython.transport import MqttTransport
from fleet_platform.pki import CertificateAuthority


def device_transport(
    *, authority: CertificateAuthority, port: int, device_id: str, directory: Path
) -> MqttTransport:
    """The paho transport to a loopback broker, with a fresh certificate for *device_id*."""
    credential = authority.issue_client(common_name=device_id, directory=directory, days=1)
    return MqttTransport(
        host="127.0.0.1",
        port=port,
        client_id=device_id,
        ca_path=authority.cert_path,
        cert_path=credential.cert_path,
        key_path=credential.key_path,
        keepalive=5,
    )


def device_agent(
    *,
    device_id: str,
    transport: MqttTransport,
    state: Path,
    clock: SystemClock | None = None,
    **settings: int,
) -> DeviceAgent:
    """The agent over *transport*, keeping its counters in *state*; *settings* tune its waits."""
    return DeviceAgent(
        device_id=device_id,
        hwmodel="board",
        swname="fw",
        swversion="1.0.0",
        rot="software",
        transport=transport,
        clock=clock or SystemClock(),
        store=DirectoryStore(directory=state),
        random_bytes=random_bytes,
        **settings,
    )
