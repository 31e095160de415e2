"""The gateway against a real mTLS Mosquitto: good requests served, bad ones refused.

Every hostile case must end in a specific, logged and recorded reason while the
server keeps answering everyone else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from attestation_server.enrollment import EnrollmentService
from attestation_server.registry import DeviceRegistry
from device_runtime.core import cbor, protocol
from fleet_platform.broker import MosquittoBroker
from fleet_platform.gateway import Gateway
from fleet_platform.rejection_budget import RejectionBudget
from fleet_platform.storage import Database
from tests.broker_fixtures import IssueCredential, MqttSession, OpenSession

CORRELATION = b"\x01\x02\x03\x04\x05\x06\x07\x08"


@pytest.fixture
def registry(database: Database) -> DeviceRegistry:
    return DeviceRegistry(database=database)


@pytest.fixture
def gateway(
    mtls_broker: MosquittoBroker, client_credentials: IssueCredential, registry: DeviceRegistry
) -> Iterator[Gateway]:
    gateway = Gateway(
        host=mtls_broker.host,
        port=mtls_broker.port,
        ca_path=mtls_broker.ca_path,
        credential=client_credentials("sevenfold-server"),
        record_rejection=registry.record_rejection,
    )
    EnrollmentService(registry=registry, heartbeat_interval=30).register(gateway)
    gateway.start()
    yield gateway
    gateway.stop()


Device = Callable[[str], MqttSession]


@pytest.fixture
def device(
    gateway: Gateway, mqtt_session: OpenSession, client_credentials: IssueCredential
) -> Device:
    def connect(device_id: str) -> MqttSession:
        session = mqtt_session(client_credentials(device_id), client_id=device_id)
        assert session.accepted()
        assert session.subscribe(protocol.topic_down("sevenfold", device_id)) == [1]
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
    session.publish(protocol.topic_up("sevenfold", device_id), payload)
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
    assert replayed.body["code"] == "bad-field" and "replayed" in replayed.body["reason"]


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
    a.publish(protocol.topic_up("sevenfold", "dev-a"), payload)
    b = device("dev-c")
    answer = ask(b, "dev-c", protocol.encode("enroll", CORRELATION, enroll_body("dev-c")))
    assert answer is not None and answer.kind == "enrolled"
    assert a.receive(timeout=0.5) is None
    codes = [event.code for event in registry.events(limit=10) if event.device_id == "dev-a"]
    assert codes == [code]


def test_a_flood_of_garbage_is_answered_but_recorded_within_budget(
    mtls_broker: MosquittoBroker,
    client_credentials: IssueCredential,
    registry: DeviceRegistry,
    mqtt_session: OpenSession,
) -> None:
    gateway = Gateway(
        host=mtls_broker.host,
        port=mtls_broker.port,
        ca_path=mtls_broker.ca_path,
        credential=client_credentials("sevenfold-server"),
        record_rejection=registry.record_rejection,
        budget=RejectionBudget(per_window=5, window_s=3600),
    )
    gateway.start()
    try:
        session = mqtt_session(client_credentials("dev-f"), client_id="dev-f")
        assert session.accepted()
        session.subscribe(protocol.topic_down("sevenfold", "dev-f"))
        unknown = raw({"v": 1, "t": "nope", "id": CORRELATION, "b": {}})
        for _ in range(20):
            session.publish(protocol.topic_up("sevenfold", "dev-f"), unknown)
        answers = [session.receive(timeout=3) for _ in range(20)]
        assert all(answer is not None for answer in answers)
        events = [e for e in registry.events(limit=100) if e.device_id == "dev-f"]
        assert len(events) == 5
    finally:
        gateway.stop()
