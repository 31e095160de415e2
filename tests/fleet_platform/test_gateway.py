"""The gateway against a real mTLS Mosquitto: good requests served, bad ones refused.

Every hostile case must end in a specific, logged and recorded reason while the
server keeps answering everyone else.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from attestation_server.enrollment import EnrollmentService
from attestation_server.registry import DeviceRegistry
from device_runtime.core import cbor, protocol
from fleet_platform.broker import MosquittoBroker
from fleet_platform.event_budget import EventBudget
from fleet_platform.gateway import Gateway, Request
from fleet_platform.gateway_limits import GatewayLimits
from fleet_platform.storage import Database
from tests.broker_fixtures import Grant, IssueCredential, MqttSession, OpenSession
from tests.components import binary, free_port

CORRELATION = b"\x01\x02\x03\x04\x05\x06\x07\x08"


@pytest.fixture
def registry(database: Database) -> DeviceRegistry:
    return DeviceRegistry(database=database)


def make_gateway(
    broker: MosquittoBroker,
    credentials: IssueCredential,
    database: Database,
    registry: DeviceRegistry,
    **options: Any,
) -> Gateway:
    return Gateway(
        host=broker.host,
        port=broker.port,
        ca_path=broker.ca_path,
        credential=credentials("sevenfold-server"),
        database=database,
        record_rejection=registry.record_rejection,
        share_group=f"test-{uuid.uuid4().hex}",
        **options,
    )


@pytest.fixture
def gateway(
    mtls_broker: MosquittoBroker,
    client_credentials: IssueCredential,
    database: Database,
    registry: DeviceRegistry,
) -> Iterator[Gateway]:
    gateway = make_gateway(mtls_broker, client_credentials, database, registry)
    EnrollmentService(registry=registry, heartbeat_interval=30).register(gateway)
    gateway.start()
    yield gateway
    gateway.stop()


Device = Callable[[str], MqttSession]


@pytest.fixture
def device(
    gateway: Gateway, mqtt_session: OpenSession, client_credentials: IssueCredential, grant: Grant
) -> Device:
    def connect(device_id: str) -> MqttSession:
        grant(device_id)
        session = mqtt_session(client_credentials(device_id), client_id=device_id)
        assert session.accepted()
        assert session.subscribe(protocol.topic("sevenfold", device_id, "down")) == [1]
        return session

    return connect


def enroll_body(device_id: str) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "hwmodel": "board-1",
        "swname": "fw",
        "swversion": "1.0.0",
        "rot": "software",
        "boot_count": 1,
    }


def ask(session: MqttSession, device_id: str, payload: bytes) -> protocol.Envelope | None:
    session.publish(protocol.topic("sevenfold", device_id, "up"), payload)
    received = session.receive(timeout=3)
    return None if received is None else protocol.decode(received[1])


def raw(message: dict[str, Any]) -> bytes:
    return cbor.dumps(message)


def test_enroll_then_heartbeat(device: Device, registry: DeviceRegistry) -> None:
    a = device("dev-a")
    answer = ask(a, "dev-a", protocol.encode("enroll", CORRELATION, enroll_body("dev-a")))
    assert answer is not None and answer.kind == "enrolled"
    assert answer.correlation == CORRELATION
    assert answer.body["heartbeat_interval"] == 30
    beat = {"seq": 1, "uptime": 5, "boot_count": 1}
    answer = ask(a, "dev-a", protocol.encode("heartbeat", CORRELATION, beat))
    assert answer is not None and answer.kind == "heartbeat-ack"
    record = registry.get("dev-a")
    assert record is not None and record.last_seq == 1
    replayed = ask(a, "dev-a", protocol.encode("heartbeat", CORRELATION, beat))
    assert replayed is not None and replayed.kind == "error"
    assert replayed.body["code"] == "replayed" and "replayed" in replayed.body["reason"]


HOSTILE: list[tuple[str, bytes, str]] = [
    (
        "unknown type",
        raw({"v": 1, "t": "reboot-everyone", "id": CORRELATION, "b": {}}),
        "unknown-type",
    ),
    (
        "future version",
        raw({"v": 2, "t": "enroll", "id": CORRELATION, "b": {}}),
        "bad-version",
    ),
    (
        "wrong field type",
        raw({"v": 1, "t": "heartbeat", "id": CORRELATION, "b": {"seq": "1", "uptime": 1}}),
        "bad-field",
    ),
    (
        "response type sent as a request",
        protocol.encode("heartbeat-ack", CORRELATION, {"seq": 1, "server_time": 1}),
        "unknown-type",
    ),
    (
        "claims another device's identity",
        protocol.encode("enroll", CORRELATION, enroll_body("dev-b")),
        "identity-mismatch",
    ),
    (
        "heartbeat before enrollment",
        protocol.encode("heartbeat", CORRELATION, {"seq": 1, "uptime": 1, "boot_count": 1}),
        "not-enrolled",
    ),
]


@pytest.mark.parametrize(("case", "payload", "code"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_bad_request_gets_specific_error(
    case: str,
    payload: bytes,
    code: str,
    device: Device,
    registry: DeviceRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = device("dev-a")
    with caplog.at_level(logging.WARNING, logger="fleet_platform.gateway"):
        answer = ask(a, "dev-a", payload)
    assert answer is not None and answer.kind == "error", case
    assert answer.correlation == CORRELATION
    assert answer.body["code"] == code
    assert any(code in record.getMessage() for record in caplog.records)
    assert registry.events(limit=1)[0].code == code
    assert registry.get("dev-b") is None


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff\x00not cbor", "bad-cbor"),
        (b"\xa1", "bad-cbor"),
        (b"\x00" * (protocol.MAX_MESSAGE + 1), "too-large"),
        (b"\x9f" * 64, "bad-cbor"),
    ],
    ids=["garbage", "truncated", "oversized", "indefinite-nesting"],
)
def test_undecodable_payload_is_recorded_and_service_continues(
    payload: bytes, code: str, device: Device, registry: DeviceRegistry
) -> None:
    a = device("dev-a")
    a.publish(protocol.topic("sevenfold", "dev-a", "up"), payload)
    b = device("dev-c")
    answer = ask(b, "dev-c", protocol.encode("enroll", CORRELATION, enroll_body("dev-c")))
    assert answer is not None and answer.kind == "enrolled"
    assert a.receive(timeout=0.5) is None
    codes = [event.code for event in registry.events(limit=10) if event.device_id == "dev-a"]
    assert codes == [code]


def test_a_flood_of_garbage_is_answered_but_recorded_within_budget(
    mtls_broker: MosquittoBroker,
    client_credentials: IssueCredential,
    database: Database,
    mqtt_session: OpenSession,
    grant: Grant,
) -> None:
    registry = DeviceRegistry(database=database, budget=EventBudget(per_window=5, window_s=3600))
    gateway = make_gateway(mtls_broker, client_credentials, database, registry)
    gateway.start()
    try:
        grant("dev-f")
        session = mqtt_session(client_credentials("dev-f"), client_id="dev-f")
        assert session.accepted()
        session.subscribe(protocol.topic("sevenfold", "dev-f", "down"))
        unknown = raw({"v": 1, "t": "nope", "id": CORRELATION, "b": {}})
        for _ in range(20):
            session.publish(protocol.topic("sevenfold", "dev-f", "up"), unknown)
        answers = [session.receive(timeout=3) for _ in range(20)]
        assert all(answer is not None for answer in answers)
        events = [e for e in registry.events(limit=100) if e.device_id == "dev-f"]
        assert len(events) == 5
        assert gateway.metrics.value("sevenfold_gateway_answers_total", "unknown-type") == 20
    finally:
        gateway.stop()


def _running_gateway(
    broker: MosquittoBroker,
    credentials: IssueCredential,
    database: Database,
    registry: DeviceRegistry,
    **options: Any,
) -> Gateway:
    gateway = make_gateway(broker, credentials, database, registry, **options)
    EnrollmentService(registry=registry, heartbeat_interval=30).register(gateway)
    gateway.start()
    return gateway


def _enrolled(device: Device, device_id: str) -> MqttSession:
    session = device(device_id)
    answer = ask(session, device_id, protocol.encode("enroll", CORRELATION, enroll_body(device_id)))
    assert answer is not None and answer.kind == "enrolled"
    return session


def _beat(seq: int, correlation: bytes = CORRELATION) -> bytes:
    return protocol.encode("heartbeat", correlation, {"seq": seq, "uptime": 1, "boot_count": 1})


def test_counters_storage_cannot_hold_never_stop_a_worker(device: Device) -> None:
    """Defect: four heartbeats with seq = 2**63 killed all four workers."""
    a = _enrolled(device, "dev-a")
    huge = raw({"v": 1, "t": "heartbeat", "id": CORRELATION,
                "b": {"seq": 2**63, "uptime": 1, "boot_count": 1}})  # fmt: skip
    for _ in range(8):
        answer = ask(a, "dev-a", huge)
        assert answer is not None and answer.kind == "error"
    answer = ask(a, "dev-a", _beat(1))
    assert answer is not None and answer.kind == "heartbeat-ack"


def test_an_unexpected_fault_is_answered_logged_once_and_counted(
    gateway: Gateway, device: Device, caplog: pytest.LogCaptureFixture
) -> None:
    a = _enrolled(device, "dev-a")

    def broken(request: Request, tx: Any) -> dict[str, Any]:
        raise RuntimeError("a bug a device can reach")

    gateway.handle("heartbeat", broken)
    with caplog.at_level(logging.ERROR, logger="fleet_platform.gateway"):
        for seq in range(1, 6):
            answer = ask(a, "dev-a", _beat(seq))
            assert answer is not None and answer.kind == "error"
            assert answer.body["code"] == "internal"
            assert "a bug" not in str(answer.body["reason"])
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1 and "RuntimeError" in tracebacks[0].getMessage()
    assert gateway.metrics.total("sevenfold_gateway_internal_errors_total") == 5
    assert gateway.health().ok
    b = _enrolled(device, "dev-b")
    assert b.client.is_connected()


def test_a_storage_outage_is_answered_unavailable_and_service_resumes(
    gateway: Gateway, device: Device, database: Database
) -> None:
    """Defect: a storage error killed the worker that met it."""
    a = _enrolled(device, "dev-a")
    database.downgrade(revision="base")
    try:
        answer = ask(a, "dev-a", _beat(1))
        assert answer is not None and answer.kind == "error"
        assert answer.body["code"] == "unavailable"
        assert isinstance(answer.body["retry_after"], int) and answer.body["retry_after"] > 0
    finally:
        database.upgrade()
    assert gateway.health().ok
    again = _enrolled(device, "dev-a")
    answer = ask(again, "dev-a", _beat(1))
    assert answer is not None and answer.kind == "heartbeat-ack"


def test_identical_heartbeats_at_once_are_acknowledged_once(
    device: Device, registry: DeviceRegistry
) -> None:
    a = _enrolled(device, "dev-a")
    for _ in range(10):
        a.publish(protocol.topic("sevenfold", "dev-a", "up"), _beat(1))
    answers = [a.receive(timeout=3) for _ in range(10)]
    kinds = [protocol.decode(answer[1]).kind for answer in answers if answer is not None]
    assert kinds.count("heartbeat-ack") == 1
    assert kinds.count("error") == 9


def test_a_device_over_its_rate_is_told_to_wait_and_others_are_unaffected(
    mtls_broker: MosquittoBroker,
    client_credentials: IssueCredential,
    database: Database,
    registry: DeviceRegistry,
    mqtt_session: OpenSession,
    grant: Grant,
) -> None:
    limits = GatewayLimits(rate=1.0, burst=3)
    gateway = _running_gateway(mtls_broker, client_credentials, database, registry, limits=limits)
    try:
        grant("dev-r", "dev-o")
        session = mqtt_session(client_credentials("dev-r"), client_id="dev-r")
        assert session.accepted()
        session.subscribe(protocol.topic("sevenfold", "dev-r", "down"))
        enroll = protocol.encode("enroll", CORRELATION, enroll_body("dev-r"))
        for _ in range(30):
            session.publish(protocol.topic("sevenfold", "dev-r", "up"), enroll)
        answers = []
        while (received := session.receive(timeout=1.5)) is not None:
            answers.append(protocol.decode(received[1]))
        enrolled = [a for a in answers if a.kind == "enrolled"]
        limited = [a for a in answers if a.kind == "error" and a.body["code"] == "rate-limited"]
        assert 3 <= len(enrolled) <= 5
        assert 1 <= len(limited) <= 3
        assert all(0 < int(a.body["retry_after"]) <= 1000 for a in limited)  # type: ignore[call-overload]
        assert gateway.metrics.value("sevenfold_gateway_dropped_total", "rate-limited") > 0
        other = mqtt_session(client_credentials("dev-o"), client_id="dev-o")
        assert other.accepted()
        other.subscribe(protocol.topic("sevenfold", "dev-o", "down"))
        answer = ask(other, "dev-o", protocol.encode("enroll", CORRELATION, enroll_body("dev-o")))
        assert answer is not None and answer.kind == "enrolled"
        assert len([e for e in registry.events(limit=100) if e.device_id == "dev-r"]) == 1
    finally:
        gateway.stop()


def test_an_overloaded_server_answers_busy_never_silence(
    mtls_broker: MosquittoBroker,
    client_credentials: IssueCredential,
    database: Database,
    registry: DeviceRegistry,
    mqtt_session: OpenSession,
    grant: Grant,
) -> None:
    """Defect: with the request queue full, requests were dropped without an answer."""
    limits = GatewayLimits(workers=1, batch=1, per_device_queue=2, total_queue=2)
    gateway = _running_gateway(mtls_broker, client_credentials, database, registry, limits=limits)
    slow = threading.Event()

    def slow_enroll(request: Request, tx: Any) -> dict[str, Any]:
        slow.wait(0.3)
        return {"heartbeat_interval": 30, "server_time": 0}

    gateway.handle("enroll", slow_enroll)
    try:
        sessions = []
        for index in range(6):
            device_id = f"dev-{index}"
            grant(device_id)
            session = mqtt_session(client_credentials(device_id), client_id=device_id)
            assert session.accepted()
            session.subscribe(protocol.topic("sevenfold", device_id, "down"))
            sessions.append((device_id, session))
        for device_id, session in sessions:
            session.publish(
                protocol.topic("sevenfold", device_id, "up"),
                protocol.encode("enroll", CORRELATION, enroll_body(device_id)),
            )
        answers = []
        for _, session in sessions:
            received = session.receive(timeout=5)
            assert received is not None, "every request gets an answer"
            answers.append(protocol.decode(received[1]))
        busy = [a for a in answers if a.kind == "error" and a.body["code"] == "busy"]
        assert busy and len(busy) + sum(a.kind == "enrolled" for a in answers) == 6
        assert all(int(a.body["retry_after"]) >= limits.busy_retry_min_ms for a in busy)  # type: ignore[call-overload]
    finally:
        slow.set()
        gateway.stop()


def test_health_follows_the_broker_connection(
    fleet_ca: Any, client_credentials: IssueCredential, database: Database,
    registry: DeviceRegistry, tmp_path: Path,
) -> None:  # fmt: skip
    port = free_port()
    broker = MosquittoBroker.start(
        directory=tmp_path / "broker", authority=fleet_ca, port=port, mosquitto=binary("mosquitto")
    )
    gateway = _running_gateway(broker, client_credentials, database, registry)
    try:
        assert gateway.health().ok
        broker.stop()
        deadline = time.monotonic() + 10
        while gateway.health().ok and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not gateway.health().ok
        assert "broker" in gateway.health().detail
        broker = MosquittoBroker.start(
            directory=tmp_path / "broker", authority=fleet_ca, port=port,
            mosquitto=binary("mosquitto"),
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while not gateway.health().ok and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gateway.health().ok
    finally:
        gateway.stop()
        broker.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_health_reports_a_dead_worker(gateway: Gateway, device: Device) -> None:
    """Nothing a device sends can end a worker; if one ends anyway, liveness says so."""
    a = _enrolled(device, "dev-a")

    def fatal(request: Request, tx: Any) -> dict[str, Any]:
        raise SystemExit("a worker ended by something no handler may catch")

    gateway.handle("heartbeat", fatal)
    a.publish(protocol.topic("sevenfold", "dev-a", "up"), _beat(1))
    deadline = time.monotonic() + 5
    while gateway.health().ok and time.monotonic() < deadline:
        time.sleep(0.02)
    health = gateway.health()
    assert not health.ok and "worker threads not running" in health.detail


def test_a_lost_race_with_another_gateway_is_retried_whole(
    gateway: Gateway, device: Device
) -> None:
    """A deadlock or serialization failure writes nothing: the batch is simply tried again."""
    a = _enrolled(device, "dev-a")
    calls: list[int] = []

    def losing_once(request: Request, tx: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            conflict = type("Conflict", (Exception,), {"sqlstate": "40P01"})()
            raise OperationalError("UPDATE devices ...", None, conflict)
        return {"seq": request.body["seq"], "server_time": 0}

    gateway.handle("heartbeat", losing_once)
    answer = ask(a, "dev-a", _beat(1))
    assert answer is not None and answer.kind == "heartbeat-ack"
    assert len(calls) == 2
    assert gateway.metrics.value("sevenfold_gateway_batch_retries_total", "conflict") == 1
    assert gateway.metrics.value("sevenfold_gateway_answers_total", "ok") == 2, "counted once"


def test_storage_that_neither_answers_nor_fails_is_unhealthy_then_unavailable(
    gateway: Gateway, device: Device, database: Database, database_url: str
) -> None:
    """A table locked by someone else: the request fails in seconds instead of hanging the
    worker, and liveness says the gateway is stuck while it lasts."""
    a = _enrolled(device, "dev-a")
    release = threading.Event()
    locked = threading.Event()

    def hold_the_lock() -> None:
        if database.dialect == "sqlite":
            path = database_url.removeprefix("sqlite:///")
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            locked.set()
            release.wait(30)
            holder.execute("ROLLBACK")
            holder.close()
        else:
            with database.engine.connect() as holder:
                holder.execute(text("SET lock_timeout = 0"))
                holder.execute(text("LOCK TABLE devices IN ACCESS EXCLUSIVE MODE"))
                locked.set()
                release.wait(30)
                holder.rollback()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        a.publish(protocol.topic("sevenfold", "dev-a", "up"), _beat(1))
        unhealthy_seen = False
        received = None
        while received is None and time.monotonic() - started < 40:
            unhealthy_seen = unhealthy_seen or not gateway.health().ok
            received = a.receive(timeout=0.2)
        assert received is not None, "the request was answered, not left hanging"
        answer = protocol.decode(received[1])
        assert answer.kind == "error" and answer.body["code"] == "unavailable"
        assert unhealthy_seen, "liveness reported the stuck gateway"
    finally:
        release.set()
        holder.join(timeout=30)
    deadline = time.monotonic() + 10
    while not gateway.health().ok and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gateway.health().ok
