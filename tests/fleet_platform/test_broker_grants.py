"""Attestation-gated access on the real broker: the grant set, quarantine, the recovery listener.

A grant change reaches connections that are already open (mosquitto reloads
the ACL file on SIGHUP), so a quarantined device keeps its session and its
attestation topics and loses only the application plane. "Not delivered"
needs no sleep: one publisher's messages reach a subscriber in order, so a
marker arriving first proves the earlier message was dropped.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from device_runtime.core import protocol
from fleet_platform.broker import MosquittoBroker
from fleet_platform.broker_config import (
    recovery_topic,
)
from fleet_platform.pki import CertificateAuthority, IssuedCredential
from fleet_platform.process_supervisor import ProcessSupervisor, RestartBackoff
from fleet_platform.server_replicas import replica_identity
from tests.broker_fixtures import (
    Grant,
    IssueCredential,
    MqttSession,
    OpenSession,
    StartBroker,
    delivered_on_recovery,
    session_to,
)

PREFIX = "sevenfold"
SERVER = protocol.SERVER_IDENTITY
QUARANTINE_BOUND_S = 10.0
"""How long a revoked grant may take to stop the application plane (measured: about 0.6 s)."""


def fresh(name: str) -> str:
    """Unique ids: the session broker is shared, topics must not collide."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def connected(session: MqttSession) -> MqttSession:
    assert session.accepted(), f"refused: {session.connack} {session.connect_error}"
    return session


@pytest.fixture
def sessions() -> Iterator[list[MqttSession]]:
    """Sessions to brokers of a test's own, closed afterwards."""
    opened: list[MqttSession] = []
    yield opened
    for session in opened:
        session.close()


Connect = Callable[..., MqttSession]


@pytest.fixture
def connect_to(sessions: list[MqttSession]) -> Connect:
    """Callable connecting ``(broker, credential, recovery=False)``; closed afterwards."""

    def connect(
        broker: MosquittoBroker, credential: IssuedCredential, *, recovery: bool = False
    ) -> MqttSession:
        session = session_to(broker, credential, client_id=fresh("c"), recovery=recovery)
        sessions.append(session)
        return connected(session)

    return connect


def watching(open_session: OpenSession, credential: IssuedCredential) -> MqttSession:
    """A server session subscribed to everything on both listeners' trees."""
    server = connected(open_session(credential, client_id=fresh("srv")))
    assert server.subscribe(f"{recovery_topic(PREFIX)}/d/#") == [1]
    assert server.subscribe(f"{PREFIX}/d/#") == [1]
    return server


def on_recovery(
    open_session: OpenSession, authority: CertificateAuthority, tmp_path: Path, name: str
) -> MqttSession:
    """A board named *name* by *authority* on the recovery listener, subscribed to everything."""
    credential = manufacturer_credential(authority, tmp_path, name)
    board = connected(open_session(credential, client_id=fresh("b"), recovery=True))
    assert board.subscribe("#") == [1]
    return board


def manufacturer_credential(
    authority: CertificateAuthority, tmp_path: Path, name: str
) -> IssuedCredential:
    return authority.issue_client(common_name=name, directory=tmp_path / "boards", days=1)


def delivered(device: MqttSession, server: MqttSession, device_id: str, n: int) -> bool:
    """Whether an application request from *device* still reaches *server*.

    The request goes first, an attestation message second; the server sees
    the attestation message first exactly when the request was dropped.
    """
    device.publish(protocol.topic(PREFIX, device_id, "up"), f"request {n}".encode())
    device.publish(protocol.topic(PREFIX, device_id, "att/up"), f"evidence {n}".encode())
    first = server.receive()
    assert first is not None, "the attestation plane stopped too"
    if first == (protocol.topic(PREFIX, device_id, "up"), f"request {n}".encode()):
        assert server.receive() == (
            protocol.topic(PREFIX, device_id, "att/up"),
            f"evidence {n}".encode(),
        )
        return True
    assert first == (protocol.topic(PREFIX, device_id, "att/up"), f"evidence {n}".encode())
    return False


def seconds_until(
    expected: bool, device: MqttSession, server: MqttSession, device_id: str
) -> float:
    """Seconds until a request's delivery is *expected*, probing without pause."""
    started = time.monotonic()
    n = 0
    while delivered(device, server, device_id, n) != expected:
        n += 1
        assert time.monotonic() - started < QUARANTINE_BOUND_S, "the grant change never applied"
    return time.monotonic() - started


def test_a_revoked_grant_quarantines_an_open_connection_and_a_new_grant_lifts_it(
    start_broker: StartBroker, client_credentials: IssueCredential, connect_to: Connect
) -> None:
    device_id = fresh("dev-q")
    broker = start_broker(grants=[device_id])
    server = connect_to(broker, client_credentials(SERVER))
    assert server.subscribe(f"{PREFIX}/d/+/up") == [1]
    assert server.subscribe(f"{PREFIX}/d/+/att/up") == [1]
    device = connect_to(broker, client_credentials(device_id))
    assert device.subscribe(protocol.topic(PREFIX, device_id, "down")) == [1]
    assert device.subscribe(protocol.topic(PREFIX, device_id, "att/down")) == [1]
    assert delivered(device, server, device_id, 0)

    broker.apply_grants([])
    quarantine_s = seconds_until(False, device, server, device_id)
    assert quarantine_s < QUARANTINE_BOUND_S
    assert broker.granted == ()
    # The same connection: requests dropped, attestation both ways still open.
    assert not device.disconnected.is_set()
    server.publish(protocol.topic(PREFIX, device_id, "down"), b"response")
    server.publish(protocol.topic(PREFIX, device_id, "att/down"), b"challenge")
    assert device.receive() == (protocol.topic(PREFIX, device_id, "att/down"), b"challenge")
    assert not delivered(device, server, device_id, 1)

    broker.apply_grants([device_id])
    restore_s = seconds_until(True, device, server, device_id)
    server.publish(protocol.topic(PREFIX, device_id, "down"), b"response again")
    assert device.receive() == (protocol.topic(PREFIX, device_id, "down"), b"response again")
    assert not device.disconnected.is_set()
    print(f"quarantine in force after {quarantine_s:.3f}s, lifted after {restore_s:.3f}s")


def test_a_board_on_the_recovery_listener_reaches_only_its_attestation_topics(
    mqtt_session: OpenSession,
    client_credentials: IssueCredential,
    manufacturer_ca: CertificateAuthority,
    grant: Grant,
    tmp_path: Path,
) -> None:
    board_id, other_id = fresh("board"), fresh("other")
    # Even a device id granted on the fleet listener has only attestation here.
    grant(board_id, other_id)
    server = watching(mqtt_session, client_credentials(SERVER))
    board = on_recovery(mqtt_session, manufacturer_ca, tmp_path, board_id)

    board.publish(protocol.topic(PREFIX, board_id, "up"), b"request")
    board.publish(protocol.topic(PREFIX, other_id, "up"), b"forged request")
    board.publish(protocol.topic(PREFIX, other_id, "att/up"), b"forged evidence")
    board.publish(protocol.topic(PREFIX, board_id, "att/down"), b"self-issued challenge")
    board.publish(protocol.topic(PREFIX, board_id, "att/up"), b"evidence")
    assert server.receive() == (
        recovery_topic(protocol.topic(PREFIX, board_id, "att/up")),
        b"evidence",
    )
    assert server.receive(timeout=0.2) is None

    for topic in (
        protocol.topic(PREFIX, other_id, "down"),
        protocol.topic(PREFIX, other_id, "att/down"),
        recovery_topic(protocol.topic(PREFIX, other_id, "att/down")),
        recovery_topic(protocol.topic(PREFIX, board_id, "down")),
    ):
        server.publish(topic, b"not for the board")
    server.publish(recovery_topic(protocol.topic(PREFIX, board_id, "att/down")), b"challenge")
    received = board.receive()
    assert received is not None and received[1] == b"challenge"
    assert received[0] in delivered_on_recovery(protocol.topic(PREFIX, board_id, "att/down"))
    assert board.receive(timeout=0.2) is None
    assert not board.disconnected.is_set()


def test_a_manufacturer_certificate_in_a_servers_name_gets_only_its_own_attestation_topics(
    mqtt_session: OpenSession,
    client_credentials: IssueCredential,
    manufacturer_ca: CertificateAuthority,
    grant: Grant,
    tmp_path: Path,
) -> None:
    victim_id = fresh("victim")
    grant(victim_id)
    # The second replica watches: the impostor holds the first one's name.
    observer = replica_identity(1)
    server = watching(mqtt_session, client_credentials(observer))
    victim = connected(mqtt_session(client_credentials(victim_id), client_id=fresh("v")))
    assert victim.subscribe(f"{PREFIX}/d/{victim_id}/#") == [1]
    impostor = on_recovery(mqtt_session, manufacturer_ca, tmp_path, SERVER)
    assert impostor.subscribe(f"{PREFIX}/d/#") == [1]

    # Whatever it sends stays under the mount point, and only its own att/up passes.
    impostor.publish(protocol.topic(PREFIX, victim_id, "down"), b"forged response")
    impostor.publish(protocol.topic(PREFIX, victim_id, "att/down"), b"forged challenge")
    impostor.publish(protocol.topic(PREFIX, victim_id, "up"), b"forged request")
    impostor.publish(protocol.topic(PREFIX, SERVER, "att/up"), b"its own evidence")
    assert server.receive() == (
        recovery_topic(protocol.topic(PREFIX, SERVER, "att/up")),
        b"its own evidence",
    )
    assert server.receive(timeout=0.2) is None

    # It reads nothing of the fleet's traffic, neither a device's nor a board's.
    victim.publish(protocol.topic(PREFIX, victim_id, "up"), b"victim's request")
    server.publish(protocol.topic(PREFIX, victim_id, "down"), b"victim's response")
    server.publish(recovery_topic(protocol.topic(PREFIX, victim_id, "att/down")), b"a board's")
    server.publish(recovery_topic(protocol.topic(PREFIX, SERVER, "att/down")), b"marker")
    received = impostor.receive()
    assert received is not None and received[1] == b"marker"
    assert received[0] in delivered_on_recovery(protocol.topic(PREFIX, SERVER, "att/down"))
    assert impostor.receive(timeout=0.2) is None
    assert server.receive() == (protocol.topic(PREFIX, victim_id, "up"), b"victim's request")
    assert victim.receive() == (protocol.topic(PREFIX, victim_id, "down"), b"victim's response")
    assert victim.receive(timeout=0.2) is None


def test_a_manufacturer_certificate_in_a_fleet_name_takes_that_session_over(
    start_broker: StartBroker,
    client_credentials: IssueCredential,
    manufacturer_ca: CertificateAuthority,
    connect_to: Connect,
    tmp_path: Path,
) -> None:
    """Pins a limit of mosquitto 2.0: client ids are one namespace across listeners.

    ``use_username_as_clientid`` makes the CN the client id on both listeners,
    and the mount point does not separate ids, so a recovery session under a
    fleet name ends the fleet session of that name. A trusted manufacturer CA
    can thus disconnect a server or a device (nothing more: the ACL above
    holds). If this fails, mosquitto started keeping the listeners' ids apart.
    """
    broker = start_broker(manufacturer_cas=[manufacturer_ca.cert_path.read_bytes()])
    server = connect_to(broker, client_credentials(SERVER))
    connect_to(broker, manufacturer_credential(manufacturer_ca, tmp_path, SERVER), recovery=True)
    assert server.disconnected.wait(5.0)


def test_each_listener_accepts_only_its_own_certificates(
    mqtt_session: OpenSession,
    client_credentials: IssueCredential,
    manufacturer_ca: CertificateAuthority,
    start_broker: StartBroker,
    connect_to: Connect,
    tmp_path: Path,
) -> None:
    board = manufacturer_credential(manufacturer_ca, tmp_path, fresh("board"))
    device = client_credentials(fresh("dev"))
    on_fleet = mqtt_session(board, client_id=fresh("b"))
    on_recovery = mqtt_session(device, client_id=fresh("d"), recovery=True)
    for refused in (on_fleet, on_recovery):
        assert not refused.accepted()
        assert refused.connack is None, "refused in the TLS handshake, before MQTT"
    # With no manufacturer CA given, the recovery listener trusts the fleet CA instead.
    broker = start_broker()
    assert (broker.directory / "recovery-ca.pem").read_bytes() == broker.ca_path.read_bytes()
    connect_to(broker, device, recovery=True)
    refused_board = session_to(broker, board, client_id=fresh("b"), recovery=True)
    try:
        assert not refused_board.accepted()
    finally:
        refused_board.close()


def test_a_broker_killed_and_restarted_by_the_supervisor_keeps_the_current_grants(
    start_broker: StartBroker, client_credentials: IssueCredential, connect_to: Connect
) -> None:
    before, during, after = fresh("dev-before"), fresh("dev-during"), fresh("dev-after")
    broker = start_broker(grants=[before])
    supervisor = ProcessSupervisor(
        broker, backoff=RestartBackoff(first_delay=1.0, max_delay=1.0, stable_after=60.0)
    ).start()
    try:
        broker.apply_grants([during])
        killed = broker.pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        # Changed while no broker runs: the file alone carries it to the next process.
        broker.apply_grants([after])
        deadline = time.monotonic() + 10.0
        while not supervisor.health().ok:
            assert time.monotonic() < deadline, "the supervisor did not restart the broker"
            time.sleep(0.05)
        assert supervisor.health().restarts == 1
        server = connect_to(broker, client_credentials(SERVER))
        assert server.subscribe(f"{PREFIX}/d/+/up") == [1]
        assert server.subscribe(f"{PREFIX}/d/+/att/up") == [1]
        for device_id in (before, during, after):
            device = connect_to(broker, client_credentials(device_id))
            assert delivered(device, server, device_id, 0) == (device_id == after)
    finally:
        supervisor.stop()
