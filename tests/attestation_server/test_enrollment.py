"""The attestation server's handlers on their own: no broker, a real database on each engine.

The gateway tests drive these handlers over MQTT; here they are called the way
the gateway calls them, inside one transaction per batch, so each outcome is
checked without the transport in the way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from attestation_server.enrollment import EnrollmentService
from attestation_server.registry import DeviceRegistry
from device_runtime.core.errors import NotEnrolled, Replayed
from fleet_platform.gateway import Request
from fleet_platform.storage import Database

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def service(database: Database) -> EnrollmentService:
    return EnrollmentService(registry=DeviceRegistry(database=database), heartbeat_interval=30)


def _enroll(device_id: str, *, boot: int = 1, rot: str = "software") -> Request:
    body: dict[str, object] = {
        "device_id": device_id,
        "hwmodel": "board",
        "swname": "fw",
        "swversion": "1.0.0",
        "rot": rot,
        "boot_count": boot,
    }
    return Request(device_id, "enroll", body, NOW)


def _beat(device_id: str, seq: int, *, boot: int = 1, at: datetime = NOW) -> Request:
    return Request(device_id, "heartbeat", {"seq": seq, "uptime": seq, "boot_count": boot}, at)


def test_enroll_answers_the_interval_and_records_the_claim(
    service: EnrollmentService, database: Database
) -> None:
    with database.transaction("test") as tx:
        [answer] = service.enrollments([_enroll("dev-1", rot="tpm")], tx)
    assert answer == {"heartbeat_interval": 30, "server_time": int(NOW.timestamp())}
    record = service.registry.get("dev-1")
    assert record is not None and (record.rot_claimed, record.rot_verified) == ("tpm", None)


def test_a_batch_of_heartbeats_gets_one_outcome_each_in_order(
    service: EnrollmentService, database: Database
) -> None:
    with database.transaction("enroll") as tx:
        for device_id in ("dev-1", "dev-2"):
            service.enrollments([_enroll(device_id, boot=3)], tx)
    with database.transaction("first beats") as tx:
        service.heartbeats([_beat("dev-2", 5, boot=3)], tx)
    batch = [
        _beat("dev-1", 1, boot=3),
        _beat("dev-2", 5, boot=3),
        _beat("stranger", 1),
        _beat("dev-1", 9, boot=2),
    ]
    with database.transaction("batch") as tx:
        outcomes = service.heartbeats(batch[:3], tx)
        [rolled_back] = service.heartbeats(batch[3:], tx)
    assert outcomes[0] == {"seq": 1, "server_time": int(NOW.timestamp())}
    assert isinstance(outcomes[1], Replayed)
    assert isinstance(outcomes[2], NotEnrolled)
    assert isinstance(rolled_back, Replayed) and "backwards" in rolled_back.reason


def test_what_a_refusal_records_survives_the_batch(
    service: EnrollmentService, database: Database
) -> None:
    """The security event explaining a refusal is committed with the rest of the batch."""
    with database.transaction("enroll") as tx:
        service.enrollments([_enroll("dev-1", boot=4)], tx)
    with database.transaction("batch") as tx:
        [refusal] = service.heartbeats([_beat("dev-1", 1, boot=1, at=NOW + timedelta(1))], tx)
    assert isinstance(refusal, Replayed)
    assert [e.kind for e in service.registry.events()] == ["security", "enrolled"]
