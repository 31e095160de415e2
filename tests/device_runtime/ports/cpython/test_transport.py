"""The paho transport keeps its subscriptions across every kind of reconnect.

Sessions are clean, so a broker forgets subscriptions with the connection.
paho reconnects by itself after a lost connection and the caller may close
and connect again; either way, messages for the subscribed topics must arrive
afterwards. The broker is a real Mosquitto that this test stops and starts
again on the same port.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_runtime.core.errors import TransportError
from device_runtime.ports.cpython.transport import MqttTransport
from fleet_platform.pki import CertificateAuthority
from tests.device_runtime.cpython_devices import device_transport
from tests.device_runtime.restartable_broker import RestartableBroker

DEVICE = "dev-t"
DOWN = f"sevenfold/d/{DEVICE}/down"
RECONNECT_WAIT_S = 20.0


@pytest.fixture
def transport(
    restartable_broker: RestartableBroker, fleet_ca: CertificateAuthority, tmp_path: Path
) -> Iterator[MqttTransport]:
    restartable_broker.grant(DEVICE)
    device = device_transport(
        authority=fleet_ca,
        port=restartable_broker.port,
        device_id=DEVICE,
        directory=tmp_path / "device",
    )
    yield device
    device.close()


def delivered(broker: RestartableBroker, device: MqttTransport, payload: bytes) -> bool:
    """Publish to the device until it receives *payload* or the wait is over."""
    server = broker.server_session(f"server-{payload.decode()}")
    try:
        deadline = time.monotonic() + RECONNECT_WAIT_S
        while time.monotonic() < deadline:
            server.publish(DOWN, payload)
            got = device.poll(500)
            if got is not None:
                return got == (DOWN, payload)
        return False
    finally:
        server.close()


@pytest.mark.parametrize("interruption", ["close-and-connect", "broker-restart"])
def test_subscriptions_survive_a_new_connection(
    interruption: str, restartable_broker: RestartableBroker, transport: MqttTransport
) -> None:
    transport.connect()
    transport.subscribe(DOWN)
    assert delivered(restartable_broker, transport, b"before")
    if interruption == "close-and-connect":
        transport.close()
        transport.connect()
    else:
        restartable_broker.restart()
        # No call on the transport in between: paho notices and reconnects by itself.
    assert delivered(restartable_broker, transport, b"after")


def test_using_a_closed_transport_is_a_transport_error(transport: MqttTransport) -> None:
    with pytest.raises(TransportError, match="not connected"):
        transport.publish(DOWN, b"x")
    with pytest.raises(TransportError, match="not connected"):
        transport.subscribe(DOWN)


def test_connect_twice_is_a_transport_error(transport: MqttTransport) -> None:
    transport.connect()
    with pytest.raises(TransportError, match="already connected"):
        transport.connect()
