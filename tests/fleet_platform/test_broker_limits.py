"""The broker refuses packets too large for any protocol message, at the exact boundary.

The limit is computed by ``max_packet_size`` for the longest topic a device id
allows; a publish one byte over it makes mosquitto disconnect the sender
without routing the message. "Nothing delivered" needs no sleep: a later marker
on the receiver's topic would arrive after anything routed before it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from device_runtime.core import protocol
from fleet_platform.broker_config import LONGEST_DEVICE_ID, max_packet_size
from fleet_platform.pki import IssuedCredential
from tests.broker_fixtures import WAIT, MqttSession

Issue = Callable[[str], IssuedCredential]
Open = Callable[..., MqttSession]
PREFIX = "sevenfold"
SERVER = protocol.SERVER_IDENTITY


def longest_device_id() -> str:
    """A unique device id of the greatest length, so its topics are the longest there are."""
    head = f"lim-{uuid.uuid4().hex[:8]}-"
    return head + "x" * (LONGEST_DEVICE_ID - len(head))


def connect(open_session: Open, credential: IssuedCredential) -> MqttSession:
    session = open_session(credential, client_id=f"c-{uuid.uuid4().hex[:8]}")
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


@pytest.mark.parametrize("direction", ["down", "up"])
def test_largest_message_on_the_longest_topic_passes_one_byte_more_disconnects(
    mqtt_session: Open, client_credentials: Issue, direction: str
) -> None:
    device_id = longest_device_id()
    if direction == "down":
        topic, sender, receiver = protocol.topic(PREFIX, device_id, "down"), SERVER, device_id
    else:
        topic, sender, receiver = protocol.topic(PREFIX, device_id, "up"), device_id, SERVER
    subscriber = connect(mqtt_session, client_credentials(receiver))
    assert subscriber.subscribe(topic) == [1]
    publisher = connect(mqtt_session, client_credentials(sender))
    largest = largest_payload(topic)
    # A down topic is the longest there is: exactly the protocol's limit fits on it.
    assert len(largest) == protocol.MAX_MESSAGE + (2 if direction == "up" else 0)
    publisher.publish(topic, largest)
    assert subscriber.receive() == (topic, largest)

    for oversized in (largest + b"!", b"\x00" * (64 * protocol.MAX_MESSAGE)):
        assert refused(publisher, topic, oversized)
        publisher = connect(mqtt_session, client_credentials(sender))
    publisher.publish(topic, b"marker")
    assert subscriber.receive() == (topic, b"marker")
    assert subscriber.receive(timeout=0.2) is None
