"""Server replicas share the device traffic through one MQTT shared subscription.

Measured on Mosquitto 2.0.11, not assumed: its ACL file grants every SUBSCRIBE,
``$share/...`` filters included, and checks "read" on each message it
delivers, against the message's topic. Replicas therefore get their part of
the traffic through their read grant; a device's shared subscription yields
nothing; and a device in the servers' own group would be handed its turn of
messages, which the broker then drops, which is why the group name is secret.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from device_runtime.core import protocol
from fleet_platform.broker_config import BrokerError
from fleet_platform.pki import IssuedCredential
from fleet_platform.server_replicas import (
    replica_identities,
    replica_identity,
    share_group,
    shared_up_filter,
)
from tests.broker_fixtures import SESSION_BROKER_REPLICAS, Grant, MqttSession

Issue = Callable[[str], IssuedCredential]
Open = Callable[..., MqttSession]
PREFIX = "sevenfold"
MESSAGES = 24


def fresh(name: str) -> str:
    """Unique names: the broker is shared by the whole session."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def connect(open_session: Open, credential: IssuedCredential) -> MqttSession:
    session = open_session(credential, client_id=fresh("c"))
    assert session.accepted(), f"broker refused {credential.cert_path.name}: {session.connack}"
    return session


def drain(session: MqttSession) -> list[bytes]:
    """Everything already delivered to *session*; call after a marker proved routing is done."""
    payloads = []
    while (message := session.receive(timeout=0.2)) is not None:
        payloads.append(message[1])
    return payloads


@pytest.fixture
def replicas(mqtt_session: Open, client_credentials: Issue) -> list[MqttSession]:
    """Every server replica the session broker knows, each in the same secret share group."""
    group = share_group(fresh("operator-token"))
    sessions = []
    for identity in replica_identities(SESSION_BROKER_REPLICAS):
        session = connect(mqtt_session, client_credentials(identity))
        assert session.subscribe(shared_up_filter(PREFIX, group)) == [1]
        sessions.append(session)
    return sessions


def publish_requests(open_session: Open, issue: Issue, grant: Grant, device_id: str) -> set[bytes]:
    """*device_id*, granted the application plane, sends requests; what it sent."""
    grant(device_id)
    device = connect(open_session, issue(device_id))
    sent = {f"request {n}".encode() for n in range(MESSAGES)}
    for payload in sorted(sent):
        device.publish(protocol.topic(PREFIX, device_id, "up"), payload)
    return sent


def collect(replicas: list[MqttSession], expected: int) -> list[list[bytes]]:
    """What each replica received, waiting until *expected* messages arrived in all."""
    received: list[list[bytes]] = [[] for _ in replicas]
    misses = 0
    while sum(map(len, received)) < expected and misses < len(replicas) * 3:
        misses += 1
        for index, session in enumerate(replicas):
            message = session.receive(timeout=0.3)
            if message is not None:
                received[index].append(message[1])
                misses = 0
    for index, session in enumerate(replicas):
        received[index] += drain(session)
    return received


def test_replicas_in_one_group_get_every_message_exactly_once(
    replicas: list[MqttSession], mqtt_session: Open, client_credentials: Issue, grant: Grant
) -> None:
    sent = publish_requests(mqtt_session, client_credentials, grant, fresh("dev"))
    received = collect(replicas, len(sent))
    everything = [payload for part in received for payload in part]
    assert sorted(everything) == sorted(sent)
    assert all(received), f"a replica got nothing: {[len(part) for part in received]}"
    assert not any(session.disconnected.is_set() for session in replicas)


def test_two_sessions_with_one_identity_cannot_both_stay_connected(
    mqtt_session: Open, client_credentials: Issue
) -> None:
    credential = client_credentials(replica_identity(1))
    first = connect(mqtt_session, credential)
    connect(mqtt_session, credential)
    # use_username_as_clientid: the second session takes over the first one's client id.
    assert first.disconnected.wait(5.0)


@pytest.mark.parametrize(
    "shared_filter",
    [
        f"$share/spy/{PREFIX}/d/+/up",
        f"$share/spy/{PREFIX}/d/+/down",
        "$share/spy/#",
    ],
)
def test_device_shared_subscription_yields_nothing_of_other_devices(
    mqtt_session: Open, client_credentials: Issue, grant: Grant, shared_filter: str
) -> None:
    spy_id, victim_id = fresh("spy"), fresh("victim")
    grant(spy_id, victim_id)
    spy = connect(mqtt_session, client_credentials(spy_id))
    # Granted: mosquitto 2.0's ACL file does not check subscriptions, only deliveries.
    assert spy.subscribe(shared_filter) == [1]
    assert spy.subscribe(protocol.topic(PREFIX, spy_id, "down")) == [1]
    victim = connect(mqtt_session, client_credentials(victim_id))
    victim.publish(protocol.topic(PREFIX, victim_id, "up"), b"victim's request")
    server = connect(mqtt_session, client_credentials(protocol.SERVER_IDENTITY))
    server.publish(protocol.topic(PREFIX, victim_id, "down"), b"victim's response")
    server.publish(protocol.topic(PREFIX, spy_id, "down"), b"marker")
    assert spy.receive() == (protocol.topic(PREFIX, spy_id, "down"), b"marker")
    assert spy.receive(timeout=0.2) is None


def test_device_outside_the_secret_group_takes_nothing_from_the_replicas(
    replicas: list[MqttSession], mqtt_session: Open, client_credentials: Issue, grant: Grant
) -> None:
    spy_id = fresh("spy")
    grant(spy_id)
    spy = connect(mqtt_session, client_credentials(spy_id))
    for guess in ("sevenfold", "servers", "fleet", share_group("guess")):
        assert spy.subscribe(shared_up_filter(PREFIX, guess)) == [1]
    sent = publish_requests(mqtt_session, client_credentials, grant, fresh("dev"))
    received = collect(replicas, len(sent))
    assert sorted(payload for part in received for payload in part) == sorted(sent)
    assert drain(spy) == []


def test_device_that_knows_the_group_makes_replicas_miss_messages(
    mqtt_session: Open, client_credentials: Issue, grant: Grant
) -> None:
    """Pins the mosquitto behaviour the secret group name guards against.

    If this fails, mosquitto started refusing or skipping such subscribers and
    the group name no longer needs to be secret.
    """
    group = share_group(fresh("leaked"))
    server = connect(mqtt_session, client_credentials(protocol.SERVER_IDENTITY))
    assert server.subscribe(shared_up_filter(PREFIX, group)) == [1]
    intruder_id = fresh("intruder")
    grant(intruder_id)
    intruder = connect(mqtt_session, client_credentials(intruder_id))
    assert intruder.subscribe(shared_up_filter(PREFIX, group)) == [1]
    sent = publish_requests(mqtt_session, client_credentials, grant, fresh("dev"))
    received = collect([server], len(sent))[0]
    assert set(received) < sent
    assert drain(intruder) == []


def test_replica_identities_are_dotted_after_the_first() -> None:
    assert replica_identities(3) == ("sevenfold-server", "sevenfold-server.1", "sevenfold-server.2")
    for bad in (0, -1, True, "2"):
        with pytest.raises(BrokerError):
            replica_identities(bad)  # type: ignore[arg-type]
    with pytest.raises(BrokerError):
        replica_identity(-1)


def test_share_group_is_stable_per_secret_and_a_single_topic_level() -> None:
    group = share_group("operator token")
    assert group == share_group("operator token") != share_group("another token")
    assert group.startswith("sevenfold-") and len(group) == len("sevenfold-") + 32
    assert "operator" not in group
    assert shared_up_filter("plant7/fleet", group) == f"$share/{group}/plant7/fleet/d/+/up"
    with pytest.raises(BrokerError):
        share_group("")
    for bad_group in ("", "a/b", "a+", "#", "tab\there"):
        with pytest.raises(BrokerError):
            shared_up_filter(PREFIX, bad_group)
    with pytest.raises(BrokerError):
        shared_up_filter("a/#", group)


def test_fleet_ca_issues_client_certificates_for_replica_identities(
    client_credentials: Issue,
) -> None:
    for identity in replica_identities(3):
        credential = client_credentials(identity)
        certificate = x509.load_pem_x509_certificate(credential.cert_path.read_bytes())
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        assert [name.value for name in names] == [identity]
        assert credential.cert_path.name == f"{identity}.pem"
