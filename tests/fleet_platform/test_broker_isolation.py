"""Per-device isolation on the real broker: identity comes from the client certificate.

The devices here hold the application-plane grant (the quarantine of devices
without one is tested in test_broker_grants.py), so what is tested is the
isolation that holds between granted devices.

Negative checks need no sleeps: every publish waits for its PUBACK, after which
mosquitto has already routed it, and a later "marker" message on a topic the
receiver may read proves that anything routed earlier would have arrived first.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet_platform.broker import MosquittoBroker
from fleet_platform.pki import CertificateAuthority, IssuedCredential
from tests.broker_fixtures import Grant, MqttSession, session_to
from tests.components import binary

Issue = Callable[[str], IssuedCredential]
Open = Callable[..., MqttSession]
PREFIX = "sevenfold"


def up(device: str) -> str:
    return f"{PREFIX}/d/{device}/up"


def down(device: str) -> str:
    return f"{PREFIX}/d/{device}/down"


def fresh(name: str) -> str:
    """Unique ids: the broker is shared by the whole session, topics must not collide."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def connect(open_session: Open, credential: IssuedCredential, **options: str) -> MqttSession:
    session = open_session(credential, client_id=options.pop("client_id", fresh("c")), **options)
    assert session.accepted(), f"broker refused {credential.cert_path.name}: {session.connack}"
    return session


@pytest.fixture
def devices(grant: Grant) -> tuple[str, str]:
    """Two devices, both granted the application plane."""
    a, b = fresh("dev-a"), fresh("dev-b")
    grant(a, b)
    return a, b


def test_device_publishes_to_own_up_and_server_receives(
    mqtt_session: Open, client_credentials: Issue, devices: tuple[str, str]
) -> None:
    a, _ = devices
    server = connect(mqtt_session, client_credentials("sevenfold-server"))
    assert server.subscribe(f"{PREFIX}/d/+/up") == [1]
    device = connect(mqtt_session, client_credentials(a))
    device.publish(up(a), b"reading")
    assert server.receive() == (up(a), b"reading")


def test_device_receives_own_down_from_server(
    mqtt_session: Open, client_credentials: Issue, devices: tuple[str, str]
) -> None:
    a, _ = devices
    device = connect(mqtt_session, client_credentials(a))
    assert device.subscribe(down(a)) == [1]
    server = connect(mqtt_session, client_credentials("sevenfold-server"))
    server.publish(down(a), b"command")
    assert device.receive() == (down(a), b"command")


def test_device_cannot_publish_into_another_devices_up(
    mqtt_session: Open, client_credentials: Issue, devices: tuple[str, str]
) -> None:
    a, b = devices
    server = connect(mqtt_session, client_credentials("sevenfold-server"))
    assert server.subscribe(up(b)) == [1]
    assert server.subscribe(up(a)) == [1]
    attacker = connect(mqtt_session, client_credentials(a))
    attacker.publish(up(b), b"forged")
    attacker.publish(up(a), b"marker")
    assert server.receive() == (up(a), b"marker")
    assert server.receive(timeout=0.2) is None


def test_device_cannot_publish_into_another_devices_down_or_its_own(
    mqtt_session: Open, client_credentials: Issue, devices: tuple[str, str]
) -> None:
    a, b = devices
    victim = connect(mqtt_session, client_credentials(b))
    assert victim.subscribe(down(b)) == [1]
    attacker = connect(mqtt_session, client_credentials(a))
    assert attacker.subscribe(down(a)) == [1]
    attacker.publish(down(b), b"forged command")
    attacker.publish(down(a), b"self-issued command")
    server = connect(mqtt_session, client_credentials("sevenfold-server"))
    server.publish(down(b), b"marker")
    server.publish(down(a), b"marker")
    assert victim.receive() == (down(b), b"marker")
    assert attacker.receive() == (down(a), b"marker")


@pytest.mark.parametrize("pattern", ["exact", f"{PREFIX}/d/+/down", "#"])
def test_device_cannot_read_another_devices_down(
    mqtt_session: Open, client_credentials: Issue, devices: tuple[str, str], pattern: str
) -> None:
    a, b = devices
    spy = connect(mqtt_session, client_credentials(a))
    granted = spy.subscribe(down(b) if pattern == "exact" else pattern)
    # Mosquitto 2.0 grants the subscription and enforces "read" on each delivery;
    # a refusal (0x80) would be just as safe.
    assert granted in ([1], [0x80])
    assert spy.subscribe(down(a)) == [1]
    server = connect(mqtt_session, client_credentials("sevenfold-server"))
    server.publish(down(b), b"secret for b")
    server.publish(up(b), b"secret from b")
    server.publish(down(a), b"marker")
    assert spy.receive() == (down(a), b"marker")
    assert spy.receive(timeout=0.2) is None


def test_client_without_certificate_is_refused(
    mqtt_session: Open, mtls_broker: MosquittoBroker
) -> None:
    context = ssl.create_default_context(cafile=str(mtls_broker.ca_path))
    anonymous = mqtt_session(client_id=fresh("anon"), context=context)
    assert not anonymous.accepted()
    assert anonymous.connack is None


def test_client_with_certificate_from_another_ca_is_refused(
    mqtt_session: Open, mtls_broker: MosquittoBroker, tmp_path: Path
) -> None:
    rogue = CertificateAuthority.create(common_name="Rogue CA", directory=tmp_path / "rogue")
    forged = rogue.issue_client(common_name="sevenfold-server", directory=tmp_path / "forged")
    context = ssl.create_default_context(cafile=str(mtls_broker.ca_path))
    context.load_cert_chain(certfile=str(forged.cert_path), keyfile=str(forged.key_path))
    impostor = mqtt_session(client_id=fresh("rogue"), context=context)
    assert not impostor.accepted()
    assert impostor.connack is None


def test_identity_comes_from_certificate_not_client_id_or_username(
    mqtt_session: Open, client_credentials: Issue, devices: tuple[str, str]
) -> None:
    a, b = devices
    server = connect(mqtt_session, client_credentials("sevenfold-server"))
    assert server.subscribe(up(a)) == [1]
    assert server.subscribe(up(b)) == [1]
    holder = connect(mqtt_session, client_credentials(a), client_id=b, username="sevenfold-server")
    assert holder.subscribe(f"{PREFIX}/d/#") == [1]
    holder.publish(up(b), b"claims to be b")
    holder.publish(up(a), b"as a")
    assert server.receive() == (up(a), b"as a")
    assert server.receive(timeout=0.2) is None
    server.publish(down(b), b"for b only")
    server.publish(down(a), b"for a")
    # Not even its own up topic is readable: a device only writes there.
    assert holder.receive() == (down(a), b"for a")
    assert holder.receive(timeout=0.2) is None


def test_custom_prefix_and_several_server_identities(
    fleet_ca: CertificateAuthority, client_credentials: Issue, tmp_path: Path
) -> None:
    with MosquittoBroker.start(
        directory=tmp_path / "broker",
        authority=fleet_ca,
        prefix="plant7/fleet",
        server_identities=("ops.a", "ops.b"),
        grants=("dev-p",),
        mosquitto=binary("mosquitto"),
    ) as broker:
        sessions: list[MqttSession] = []
        try:
            for name in ("ops.b", "dev-p"):
                session = session_to(broker, client_credentials(name), client_id=fresh(name))
                sessions.append(session)
                assert session.accepted()
            ops, device = sessions
            assert ops.subscribe("plant7/fleet/d/#") == [1]
            device.publish(f"{PREFIX}/d/dev-p/up", b"old tree")
            device.publish("plant7/fleet/d/dev-p/up", b"new tree")
            assert ops.receive() == ("plant7/fleet/d/dev-p/up", b"new tree")
        finally:
            for session in sessions:
                session.close()
