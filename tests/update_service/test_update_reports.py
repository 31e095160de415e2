"""``update-status`` through the whole server: broker, two gateway processes, the database.

Devices are real MQTT sessions over mutual TLS to the server's managed
Mosquitto; the server runs its in-process gateway and one gateway process in
the same share group, so a report and its resend can reach different
gateways. Every request is answered once, every key recorded once, and hostile
reports are refused with their specific reason while the gateways live on.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from device_runtime.core import cbor, protocol
from fleet_platform import api_tokens
from fleet_platform.pki import fleet_authority
from fleet_platform.server_config import ServerConfig
from sevenfold.server import FleetServer
from tests.broker_fixtures import MqttSession, session_to
from tests.components import binary, free_port
from tests.fleet_platform.storage.database_fixtures import fresh_postgresql_database
from tests.sevenfold.test_scale_out import _wait_for, _wait_until_the_child_answers

pytestmark = [pytest.mark.timeout(300), pytest.mark.xdist_group("fleet-server")]

DEVICES = 6
KEYS = 8
SEQUENCE = {1: "checking", 5: "reverted", 6: "failed", 7: "installed", 8: "booted"}
"""The state each key reports; keys 2-4 are one download's progress."""
BOOT = 2


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FleetServer]:
    binary("mosquitto")
    state = tmp_path_factory.mktemp("fleet") / "state"
    if request.param == "postgresql":
        urls = fresh_postgresql_database()
        url: str | None = next(urls)
    else:
        urls, url = iter(()), None
    config = ServerConfig(
        database_url=url,
        state_dir=state,
        http_port=0,
        broker_port=free_port(),
        recovery_port=free_port(),
        attestation_gate=False,
        gateway_processes=2,
    )
    with FleetServer(config=config) as server:
        [child] = server.gateway_children
        _wait_for(lambda: child.health().ok, "the child gateway")
        _wait_until_the_child_answers(
            server, fleet_authority(state), tmp_path_factory.mktemp("probe")
        )
        _wait_for(lambda: _healthy(server), "the child's first health report")
        yield server
    for _ in urls:  # drops the PostgreSQL database
        pass


def _healthy(fleet: FleetServer) -> bool:
    return httpx.get(f"{fleet.http_url}/healthz", timeout=5).status_code == 200


def _session(fleet: FleetServer, device_id: str, tmp: Path) -> MqttSession:
    assert fleet.broker is not None
    credential = fleet_authority(fleet.config.state_dir).issue_client(
        common_name=device_id, directory=tmp / device_id
    )
    session = session_to(fleet.broker, credential, client_id=device_id)
    assert session.accepted()
    assert session.subscribe(protocol.topic("sevenfold", device_id, "down")) == [1]
    assert session.subscribe(protocol.topic("sevenfold", device_id, "att/down")) == [1]
    return session


def _body(seq: int, state: str = "installed", **fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "state": state,
        "from_version": "1.0.0",
        "to_version": "1.1.0",
        "target": "board/fw-1.1.0.img",
        "boot_count": BOOT,
        "seq": seq,
    }
    body.update(fields)
    return body


def _send(session: MqttSession, device_id: str, payload: bytes, leaf: str = "up") -> None:
    session.publish(protocol.topic("sevenfold", device_id, leaf), payload)


def _answers(session: MqttSession, count: int) -> dict[bytes, protocol.Envelope]:
    answers: dict[bytes, protocol.Envelope] = {}
    for _ in range(count):
        received = session.receive(timeout=10)
        assert received is not None, f"only {len(answers)} of {count} answers came"
        envelope = protocol.decode(received[1], protocol.MAX_DOWN_MESSAGE)
        assert envelope.correlation not in answers, "a request was answered twice"
        answers[envelope.correlation] = envelope
    return answers


def _report_like_a_device(fleet: FleetServer, device_id: str, tmp: Path) -> list[str]:
    """Each key sent twice at once (a resend racing its original), the next after both
    answers; progress in between. Returns the answer kinds."""
    session = _session(fleet, device_id, tmp)
    kinds: list[str] = []
    try:
        for seq in range(1, KEYS + 1):
            if 2 <= seq <= 4:
                body = _body(seq, "downloading", done=seq * 100, total=400)
            else:
                body = _body(seq, SEQUENCE[seq])
            sent = [os.urandom(8), os.urandom(8)]
            for correlation in sent:
                _send(session, device_id, protocol.encode("update-status", correlation, body))
            answers = _answers(session, 2)
            assert set(answers) == set(sent)
            for envelope in answers.values():
                kinds.append(envelope.kind)
                assert envelope.body == {"boot_count": BOOT, "seq": seq}, envelope.body
    finally:
        session.close()
    return kinds


def test_concurrent_devices_through_two_gateways_record_each_key_once(
    fleet: FleetServer, tmp_path: Path
) -> None:
    history = fleet.update_history
    assert history is not None and fleet.registry is not None
    results: dict[str, list[str]] = {}

    def device(index: int) -> None:
        device_id = f"dev-race-{index}"
        results[device_id] = _report_like_a_device(fleet, device_id, tmp_path)

    threads = [threading.Thread(target=device, args=(i,)) for i in range(DEVICES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == DEVICES
    for device_id, kinds in results.items():
        assert kinds == ["update-status-ack"] * (2 * KEYS), (device_id, kinds)
        entries = history.page(device_id)
        # Keys 2-4 are one download, merged into one row.
        assert [e.seq for e in entries] == [8, 7, 6, 5, 4, 1], (device_id, entries)
        assert entries[-2].done == 400
        assert history.last_key(device_id) == (BOOT, KEYS)
    rejected = [e for e in fleet.registry.events(limit=1000) if e.kind == "rejected"]
    assert not [e for e in rejected if (e.device_id or "").startswith("dev-race-")]
    failures = [
        e
        for e in fleet.registry.events(limit=1000)
        if e.code in ("update-failed", "update-reverted")
    ]
    # Keys 5 and 6 are reverted and failed for every device: one event each, whoever served it.
    assert len(failures) == 2 * DEVICES


HOSTILE = [
    ("unknown state", _body(1, "exploded"), "bad-field", "must be one of"),
    ("bytes past the total", _body(1, "downloading", done=9, total=5), "bad-field", "past"),
    ("bytes without a total", _body(1, "downloading", done=9), "bad-field", "needs"),
    ("seq zero", _body(0), "bad-field", "out of range"),
    ("boot count past 32 bits", _body(1, boot_count=2**32), "bad-field", "out of range"),
    ("negative total", _body(1, total=-1), "bad-field", "out of range"),
    ("long target", _body(1, target="t" * 129), "too-large", "longer than 128"),
    ("long reason", _body(1, reason="r" * 257), "too-large", "longer than 256"),
    ("control character", _body(1, reason="ok\x1b[2J"), "bad-field", "control character"),
    ("a device named", _body(1, device_id="dev-other"), "bad-field", "unexpected field"),
    ("state as bytes", _body(1, state=b"installed"), "bad-field", "must be text"),
    ("missing key", {k: v for k, v in _body(1).items() if k != "seq"}, "bad-field", "missing"),
]


def test_hostile_reports_are_refused_with_their_reason_and_nothing_dies(
    fleet: FleetServer, tmp_path: Path
) -> None:
    device_id = "dev-hostile"
    session = _session(fleet, device_id, tmp_path)
    try:
        for name, body, code, reason in HOSTILE:
            correlation = os.urandom(8)
            raw = {"v": 1, "t": "update-status", "id": correlation, "b": body}
            _send(session, device_id, cbor.dumps(raw))
            [answer] = _answers(session, 1).values()
            assert answer.kind == "error", name
            assert answer.body["code"] == code, (name, answer.body)
            assert reason in str(answer.body["reason"]), (name, answer.body)
        # On the attestation plane it is not a request at all.
        correlation = os.urandom(8)
        _send(session, device_id, protocol.encode("update-status", correlation, _body(1)), "att/up")
        [answer] = _answers(session, 1).values()
        assert answer.body["code"] == "unknown-type"
        # The gateways live on: a good report is recorded, the same key again acknowledged.
        for _ in range(2):
            _send(session, device_id, protocol.encode("update-status", os.urandom(8), _body(3)))
            [answer] = _answers(session, 1).values()
            assert answer.kind == "update-status-ack"
        _send(session, device_id, protocol.encode("update-status", os.urandom(8), _body(2)))
        [answer] = _answers(session, 1).values()
        assert answer.body["code"] == "replayed"
        assert "(2, 2) is not after (2, 3)" in str(answer.body["reason"])
    finally:
        session.close()
    assert fleet.update_history is not None
    assert [e.seq for e in fleet.update_history.page(device_id)] == [3]
    assert _healthy(fleet)


def test_operators_page_through_a_devices_updates(fleet: FleetServer, tmp_path: Path) -> None:
    device_id = "dev-paged"
    session = _session(fleet, device_id, tmp_path)
    try:
        for seq in range(1, 6):
            _send(session, device_id, protocol.encode("update-status", os.urandom(8), _body(seq)))
            [answer] = _answers(session, 1).values()
            assert answer.kind == "update-status-ack"
    finally:
        session.close()
    token = api_tokens.load_or_create(fleet.config.state_dir, name=api_tokens.OPERATOR)
    url = f"{fleet.http_url}/api/v1/devices/{device_id}/updates"
    assert httpx.get(url, timeout=5).status_code == 401
    headers = {"Authorization": f"Bearer {token}"}
    first = httpx.get(url, params={"limit": 3}, headers=headers, timeout=5).json()
    assert [e["seq"] for e in first["entries"]] == [5, 4, 3]
    rest = httpx.get(
        url, params={"limit": 3, "before": first["next_before"]}, headers=headers, timeout=5
    ).json()
    assert [e["seq"] for e in rest["entries"]] == [2, 1]
    assert rest["next_before"] is None
    assert httpx.get(url, params={"limit": 0}, headers=headers, timeout=5).status_code == 422
    spec = httpx.get(f"{fleet.http_url}/openapi.json", timeout=5).json()
    assert "/api/v1/devices/{device_id}/updates" in spec["paths"]
