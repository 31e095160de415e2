"""Scale-out without duplicates: replicas and gateway processes answer every request once.

Defect this guards against: every replica subscribed to the same up topics, so
with N replicas every message was processed N times (and the copies were then
refused as replays). Servers now subscribe in one MQTT share group, named from
a secret in the database they share, each with its own certificate.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from attestation_server.registry import DeviceRegistry
from device_runtime.core import protocol
from fleet_platform import api_tokens
from fleet_platform.broker import MosquittoBroker
from fleet_platform.pki import CertificateAuthority, fleet_authority
from fleet_platform.server_config import RuntimeInfo, ServerConfig
from fleet_platform.server_replicas import replica_identities
from fleet_platform.storage import open_database
from sevenfold.server import MIGRATIONS, FleetServer
from tests.broker_fixtures import MqttSession, session_to
from tests.components import binary, free_port
from tests.fleet_platform.storage.database_fixtures import fresh_postgresql_database

DEVICES = 12
BEATS = 10


def _enroll_body(device_id: str) -> dict[str, object]:
    return {
        "device_id": device_id,
        "hwmodel": "board",
        "swname": "fw",
        "swversion": "1.0.0",
        "rot": "software",
        "boot_count": 1,
    }


def _drive(sessions: dict[str, MqttSession]) -> Counter[bytes]:
    """Enroll every device, then send BEATS heartbeats each; count answers per request."""
    sent: list[bytes] = []
    for device_id, session in sessions.items():
        correlation = os.urandom(8)
        sent.append(correlation)
        session.publish(
            protocol.topic("sevenfold", device_id, "up"),
            protocol.encode("enroll", correlation, _enroll_body(device_id)),
        )
    answers: Counter[bytes] = Counter()
    kinds: Counter[str] = Counter()
    _collect(sessions, answers, kinds, expected=len(sent))
    for seq in range(1, BEATS + 1):
        for device_id, session in sessions.items():
            correlation = os.urandom(8)
            sent.append(correlation)
            body = {"seq": seq, "uptime": seq, "boot_count": 1}
            session.publish(
                protocol.topic("sevenfold", device_id, "up"),
                protocol.encode("heartbeat", correlation, body),
            )
        _collect(sessions, answers, kinds, expected=len(sent))
    # A duplicate would arrive within moments of the original: wait for stragglers.
    _collect(sessions, answers, kinds, expected=len(sent) + 1, timeout=1.5)
    assert set(answers) == set(sent), "every request is answered"
    assert max(answers.values()) == 1, "no request is answered twice"
    assert kinds == Counter({"enrolled": DEVICES, "heartbeat-ack": DEVICES * BEATS})
    return answers


def _collect(
    sessions: dict[str, MqttSession],
    answers: Counter[bytes],
    kinds: Counter[str],
    *,
    expected: int,
    timeout: float = 15.0,
) -> None:
    deadline = time.monotonic() + timeout
    while sum(answers.values()) < expected and time.monotonic() < deadline:
        for session in sessions.values():
            received = session.receive(timeout=0.01)
            if received is not None:
                envelope = protocol.decode(received[1])
                answers[envelope.correlation] += 1
                kinds[envelope.kind] += 1


def _sessions(
    broker: MosquittoBroker, authority: CertificateAuthority, tmp: Path
) -> Iterator[dict[str, MqttSession]]:
    sessions: dict[str, MqttSession] = {}
    try:
        for index in range(DEVICES):
            device_id = f"dev-{index:02d}"
            credential = authority.issue_client(common_name=device_id, directory=tmp / "devices")
            session = session_to(broker, credential, client_id=device_id)
            assert session.accepted()
            assert session.subscribe(protocol.topic("sevenfold", device_id, "down")) == [1]
            sessions[device_id] = session
        yield sessions
    finally:
        for session in sessions.values():
            session.close()


def _served(state: Path) -> int:
    """Requests a running server answered 'ok', from its own /metrics."""
    info = RuntimeInfo.read(state)
    assert info is not None
    token = api_tokens.read(state)
    text = httpx.get(
        f"{info.http_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=5
    ).text
    for line in text.splitlines():
        if line.startswith('sevenfold_gateway_answers_total{code="ok"}'):
            return int(line.split()[-1])
    return 0


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    yield from fresh_postgresql_database()


def test_two_replicas_on_postgresql_answer_every_request_exactly_once(
    tmp_path: Path, postgresql_url: str
) -> None:
    url = postgresql_url
    authority = CertificateAuthority.create(common_name="Replica CA", directory=tmp_path / "ca")
    identities = replica_identities(2)
    broker = MosquittoBroker.start(
        directory=tmp_path / "broker",
        authority=authority,
        server_identities=identities,
        grants=None,  # its devices hold fleet certificates and do not attest
        mosquitto=binary("mosquitto"),
    )
    servers: list[subprocess.Popen[bytes]] = []
    states = [tmp_path / f"replica-{index}" for index in range(2)]
    try:
        for state, identity in zip(states, identities, strict=True):
            credential = authority.issue_client(common_name=identity, directory=tmp_path / "ids")
            servers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "sevenfold.cli",
                        "server",
                        "--state",
                        str(state),
                        "--http-port",
                        "0",
                        "--database",
                        url,
                        "--service",
                        "attestation",
                        "--broker-host",
                        broker.host,
                        "--broker-port",
                        str(broker.port),
                        "--broker-ca",
                        str(broker.ca_path),
                        "--cert",
                        str(credential.cert_path),
                        "--key",
                        str(credential.key_path),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
        for state, server in zip(states, servers, strict=True):
            _wait_until_serving(state, server)
        for sessions in _sessions(broker, authority, tmp_path):
            _drive(sessions)
        served = [_served(state) for state in states]
        assert sum(served) == DEVICES * (BEATS + 1)
        assert all(count > 0 for count in served), f"both replicas take a share: {served}"
        with open_database(url, migrations=MIGRATIONS) as database:
            registry = DeviceRegistry(database=database)
            assert {record.last_seq for record in registry.list_devices()} == {BEATS}
            assert not [event for event in registry.events(limit=1000) if event.kind == "rejected"]
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            server.wait(timeout=30)
        broker.stop()


def test_gateway_processes_share_the_load_and_a_killed_one_comes_back(tmp_path: Path) -> None:
    binary("mosquitto")
    config = ServerConfig(
        state_dir=tmp_path / "state",
        http_port=0,
        broker_port=free_port(),
        recovery_port=free_port(),
        attestation_gate=False,
        gateway_processes=2,
        services=("attestation",),
    )
    with FleetServer(config=config) as fleet:
        assert fleet.broker is not None and fleet.gateway is not None
        [child] = fleet.gateway_children
        _wait_for(lambda: child.health().ok, "the child gateway")
        authority = fleet_authority(config.state_dir)
        _wait_until_the_child_answers(fleet, authority, tmp_path)
        before = fleet.metrics.value("sevenfold_gateway_answers_total", "ok")
        for sessions in _sessions(fleet.broker, authority, tmp_path):
            _drive(sessions)
        in_process = fleet.metrics.value("sevenfold_gateway_answers_total", "ok") - before
        assert 0 < in_process < DEVICES * (BEATS + 1), "the child served its share"

        pid = child.child.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: not child.health().ok or child.health().restarts == 1, "the death")
        healthz = httpx.get(f"{fleet.http_url}/healthz", timeout=5)
        if healthz.status_code == 503:
            assert not healthz.json()["checks"]["gateway process 1"]["ok"]
        _wait_for(lambda: child.health().ok and child.health().restarts == 1, "the restart")
        _wait_for(
            lambda: httpx.get(f"{fleet.http_url}/healthz", timeout=5).status_code == 200,
            "the restarted child to report a healthy gateway",
        )


def _wait_until_the_child_answers(
    fleet: FleetServer, authority: CertificateAuthority, tmp: Path, timeout: float = 20.0
) -> None:
    """A probe device enrolls until an answer comes that the in-process gateway did not count.

    The broker does not log connections, so this is how the test knows the
    child has joined the share group. The in-process gateway counts an answer
    before it sends it, so an answer that arrives uncounted came from the child.
    """
    assert fleet.broker is not None
    device_id = "dev-probe"
    credential = authority.issue_client(common_name=device_id, directory=tmp / "probe")
    session = session_to(fleet.broker, credential, client_id=device_id)
    try:
        assert session.accepted()
        assert session.subscribe(protocol.topic("sevenfold", device_id, "down")) == [1]
        deadline = time.monotonic() + timeout
        while True:
            counted = fleet.metrics.value("sevenfold_gateway_answers_total", "ok")
            session.publish(
                protocol.topic("sevenfold", device_id, "up"),
                protocol.encode("enroll", os.urandom(8), _enroll_body(device_id)),
            )
            assert session.receive() is not None, "the probe's enroll went unanswered"
            if fleet.metrics.value("sevenfold_gateway_answers_total", "ok") == counted:
                return
            assert time.monotonic() < deadline, "the child gateway never answered"
            time.sleep(0.25)  # inside the per-device rate limit
    finally:
        session.close()


def _wait_for(condition: object, what: str, timeout: float = 20.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _wait_until_serving(state: Path, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            assert server.stderr is not None
            pytest.fail(f"replica exited: {server.stderr.read().decode(errors='replace')}")
        info = RuntimeInfo.read(state)
        if info is not None and info.pid == server.pid:
            return
        assert time.monotonic() < deadline, "replica did not start"
        time.sleep(0.1)
