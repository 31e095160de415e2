"""The broker refuses packets too large for any protocol message, at the exact boundary.

The limit is computed by ``max_packet_size`` for the longest topic a device id
allows (a board's attestation down topic on the recovery listener, as servers
name it); a publish one byte over it makes mosquitto disconnect the sender
without routing the message. "Nothing delivered" needs no sleep: a later marker
on the receiver's topic would arrive after anything routed before it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from device_runtime.core import protocol
from fleet_platform.broker_config import (
    LONGEST_DEVICE_ID,
    max_packet_size,
    recovery_topic,
)
from fleet_platform.pki import CertificateAuthority, IssuedCredential
from tests.broker_fixtures import WAIT, Grant, MqttSession, delivered_on_recovery

Issue = Callable[[str], IssuedCredential]
Open = Callable[..., MqttSession]
PREFIX = "sevenfold"
SERVER = protocol.SERVER_IDENTITY


def longest_device_id() -> str:
    """A unique device id of the greatest length, so its topics are the longest there are."""
    head = f"lim-{uuid.uuid4().hex[:8]}-"
    return head + "x" * (LONGEST_DEVICE_ID - len(head))


def connect(
    open_session: Open, credential: IssuedCredential, *, recovery: bool = False
) -> MqttSession:
    session = open_session(credential, client_id=f"c-{uuid.uuid4().hex[:8]}", recovery=recovery)
    assert session.accepted(), f"broker refused {credential.cert_path.name}: {session.connack}"
    return session


def refused(session: MqttSession, topic: str, payload: bytes) -> bool:
    """Publish at QoS 1 and report whether the broker hung up instead of acknowledging."""
    session.client.publish(topic, payload, qos=1)
    return session.disconnected.wait(WAIT)


def largest_payload(topic: str) -> bytes:
    """A payload that makes a QoS 1 PUBLISH on *topic* exactly as large as the broker allows.

    Counted as mosquitto counts: type byte, topic length and bytes, packet id, payload.
    """
    size = max_packet_size(PREFIX) - (1 + 2 + len(topic) + 2)
    return bytes(range(256)) * (size // 256) + b"\x07" * (size % 256)


@pytest.mark.parametrize("direction", ["recovery attestation down", "down", "up"])
def test_largest_message_on_the_longest_topic_passes_one_byte_more_disconnects(
    mqtt_session: Open,
    client_credentials: Issue,
    manufacturer_ca: CertificateAuthority,
    grant: Grant,
    tmp_path: Path,
    direction: str,
) -> None:
    device_id = longest_device_id()
    grant(device_id)
    receive_on_recovery = False
    if direction == "recovery attestation down":
        # Servers reach a board on the recovery listener under the mount point's name.
        seen = protocol.topic(PREFIX, device_id, "att/down")
        topic, sender = recovery_topic(seen), SERVER
        receiver = manufacturer_ca.issue_client(
            common_name=device_id, directory=tmp_path / "manufacturer", days=1
        )
        receive_on_recovery = True
    elif direction == "down":
        topic = seen = protocol.topic(PREFIX, device_id, "down")
        sender, receiver = SERVER, client_credentials(device_id)
    else:
        topic = seen = protocol.topic(PREFIX, device_id, "up")
        sender, receiver = device_id, client_credentials(SERVER)
    subscriber = connect(mqtt_session, receiver, recovery=receive_on_recovery)
    assert subscriber.subscribe(seen) == [1]
    publisher = connect(mqtt_session, client_credentials(sender))
    largest = largest_payload(topic)
    # The recovery attestation down topic is the longest there is: exactly the protocol's
    # limit fits on it, and a little more on the others.
    extra = len(recovery_topic(protocol.topic(PREFIX, device_id, "att/down"))) - len(topic)
    assert len(largest) == protocol.MAX_MESSAGE + extra
    assert extra == {"recovery attestation down": 0, "down": 13, "up": 15}[direction]
    publisher.publish(topic, largest)
    received = subscriber.receive()
    assert received is not None and received[1] == largest
    assert received[0] in (delivered_on_recovery(seen) if receive_on_recovery else (seen,))

    for oversized in (largest + b"!", b"\x00" * (64 * protocol.MAX_MESSAGE)):
        assert refused(publisher, topic, oversized)
        publisher = connect(mqtt_session, client_credentials(sender))
    publisher.publish(topic, b"marker")
    assert subscriber.receive() == (received[0], b"marker")
    assert subscriber.receive(timeout=0.2) is None
