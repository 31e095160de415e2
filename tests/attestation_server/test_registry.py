"""Enrollment, heartbeats, liveness and the audit trail, on every engine."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from attestation_server.records import DeviceRecord
from attestation_server.registry import DeviceRegistry
from device_runtime.core.errors import NotEnrolled, StorageError
from fleet_platform.storage import Database

NOW = datetime(2026, 11, 22, 8, 0, 0, 250_000, tzinfo=UTC)
FINGERPRINT = "a1" * 32


@pytest.fixture
def registry(database: Database) -> DeviceRegistry:
    return DeviceRegistry(database=database)


def _enroll(
    registry: DeviceRegistry,
    device_id: str,
    *,
    now: datetime = NOW,
    swversion: str = "1.0.0",
    interval: int = 60,
) -> DeviceRecord:
    return registry.enroll(
        device_id,
        hwmodel="board-a",
        swname="sensor-fw",
        swversion=swversion,
        rot="tpm",
        boot_count=7,
        heartbeat_interval=interval,
        cert_fingerprint=FINGERPRINT,
        now=now,
    )


def test_enroll_stores_the_device_and_an_event(registry: DeviceRegistry) -> None:
    record = _enroll(registry, "dev-1")

    assert record == DeviceRecord(
        device_id="dev-1",
        enrolled_at=NOW,
        last_seen=NOW,
        hwmodel="board-a",
        swname="sensor-fw",
        swversion="1.0.0",
        rot="tpm",
        cert_fingerprint=FINGERPRINT,
        boot_count=7,
        last_seq=None,
        last_uptime=None,
        heartbeat_interval=60,
    )
    assert registry.get("dev-1") == record
    [event] = registry.events()
    assert (event.device_id, event.kind, event.code, event.at) == ("dev-1", "enrolled", None, NOW)
    assert "tpm" in event.reason


def test_reenrollment_replaces_the_record(registry: DeviceRegistry) -> None:
    _enroll(registry, "dev-1")
    registry.heartbeat("dev-1", seq=5, uptime=300, boot_count=7, now=NOW + timedelta(minutes=5))
    later = NOW + timedelta(hours=1)

    record = registry.enroll(
        "dev-1",
        hwmodel="board-b",
        swname="sensor-fw",
        swversion="2.0.0",
        rot="dice",
        boot_count=8,
        heartbeat_interval=30,
        cert_fingerprint=None,
        now=later,
    )

    assert record.enrolled_at == record.last_seen == later
    assert (record.hwmodel, record.swversion, record.rot) == ("board-b", "2.0.0", "dice")
    assert (record.boot_count, record.heartbeat_interval) == (8, 30)
    assert record.cert_fingerprint is None
    assert (record.last_seq, record.last_uptime) == (None, None)
    assert registry.list_devices() == [record]
    assert [event.kind for event in registry.events()] == ["enrolled", "enrolled"]


def test_fingerprint_is_stored_in_lower_case(registry: DeviceRegistry) -> None:
    record = registry.enroll(
        "dev-1",
        hwmodel="h",
        swname="s",
        swversion="v",
        rot="software",
        boot_count=0,
        heartbeat_interval=1,
        cert_fingerprint=FINGERPRINT.upper(),
        now=NOW,
    )
    assert record.cert_fingerprint == FINGERPRINT


def test_heartbeat_updates_liveness(registry: DeviceRegistry) -> None:
    _enroll(registry, "dev-1")
    seen = NOW + timedelta(seconds=61)

    record = registry.heartbeat("dev-1", seq=1, uptime=61, boot_count=7, now=seen)

    assert (record.last_seq, record.last_uptime, record.boot_count) == (1, 61, 7)
    assert record.last_seen == seen
    assert record.enrolled_at == NOW
    assert registry.get("dev-1") == record


def test_heartbeat_from_an_unknown_device_raises_not_enrolled(registry: DeviceRegistry) -> None:
    with pytest.raises(NotEnrolled) as raised:
        registry.heartbeat("stranger", seq=1, uptime=1, boot_count=1, now=NOW)
    assert raised.value.code == "not-enrolled"
    assert registry.get("stranger") is None
    assert registry.list_devices() == []


def test_get_of_an_unknown_device_is_none(registry: DeviceRegistry) -> None:
    assert registry.get("nobody") is None


def test_devices_are_listed_by_id(registry: DeviceRegistry) -> None:
    for device_id in ("m-2", "a-9", "z-1", "b-0"):
        _enroll(registry, device_id)
    assert [record.device_id for record in registry.list_devices()] == ["a-9", "b-0", "m-2", "z-1"]


def test_status_turns_offline_after_three_missed_intervals(registry: DeviceRegistry) -> None:
    record = registry.get(_enroll(registry, "dev-1", interval=20).device_id)
    assert record is not None

    assert record.status(NOW) == "online"
    assert record.status(NOW - timedelta(seconds=5)) == "online"
    assert record.status(NOW + timedelta(seconds=60)) == "online"
    assert record.status(NOW + timedelta(seconds=60, microseconds=1)) == "offline"
    tokyo = timezone(timedelta(hours=9))
    assert record.status((NOW + timedelta(seconds=60)).astimezone(tokyo)) == "online"
    with pytest.raises(ValueError, match="timezone-aware"):
        record.status(NOW.replace(tzinfo=None))


def test_timestamps_come_back_as_utc(registry: DeviceRegistry) -> None:
    eastern = timezone(timedelta(hours=-5))
    record = _enroll(registry, "dev-1", now=NOW.astimezone(eastern))
    stored = registry.get("dev-1")
    assert stored is not None
    assert stored.enrolled_at == NOW
    assert stored.enrolled_at.utcoffset() == timedelta(0)
    assert record.last_seen.tzinfo == UTC
    assert registry.events()[0].at.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused(registry: DeviceRegistry) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _enroll(registry, "dev-1", now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="timezone-aware"):
        registry.record_event(
            device_id=None, kind="rejected", code="c", reason="r", now=NOW.replace(tzinfo=None)
        )
    assert registry.list_devices() == []
    assert registry.events() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rot", "hsm"),
        ("cert_fingerprint", "a1" * 31),
        ("cert_fingerprint", "zz" * 32),
        ("boot_count", -1),
        ("boot_count", 2**63),
        ("heartbeat_interval", 0),
        ("heartbeat_interval", True),
    ],
)
def test_enroll_refuses_invalid_fields(registry: DeviceRegistry, field: str, value: object) -> None:
    fields: dict[str, object] = {
        "hwmodel": "h",
        "swname": "s",
        "swversion": "v",
        "rot": "tpm",
        "boot_count": 1,
        "heartbeat_interval": 60,
        "cert_fingerprint": FINGERPRINT,
        "now": NOW,
    }
    fields[field] = value
    with pytest.raises(ValueError, match=field):
        registry.enroll("dev-1", **fields)  # type: ignore[arg-type]
    assert registry.list_devices() == []


def test_heartbeat_refuses_negative_counters(registry: DeviceRegistry) -> None:
    _enroll(registry, "dev-1")
    with pytest.raises(ValueError, match="seq"):
        registry.heartbeat("dev-1", seq=-1, uptime=1, boot_count=1, now=NOW)
    record = registry.get("dev-1")
    assert record is not None
    assert record.last_seq is None


def test_schema_constraints_back_up_validation(database: Database) -> None:
    with pytest.raises(IntegrityError), database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO devices (device_id, enrolled_at, last_seen, hwmodel, swname,"
                " swversion, rot, boot_count, heartbeat_interval)"
                " VALUES ('d', :now, :now, 'h', 's', 'v', 'hsm', 0, 60)"
            ),
            {"now": NOW},
        )


def test_events_are_newest_first_and_limited(registry: DeviceRegistry) -> None:
    offsets = [30, 10, 50, 20, 40]
    for offset in offsets:
        registry.record_event(
            device_id=f"d{offset}",
            kind="rejected",
            code="bad-field",
            reason=f"at +{offset}s",
            now=NOW + timedelta(seconds=offset),
        )
    registry.record_event(
        device_id=None,
        kind="rejected",
        code="bad-cbor",
        reason="tie",
        now=NOW + timedelta(seconds=60),
    )
    registry.record_event(
        device_id=None,
        kind="rejected",
        code="too-large",
        reason="tie",
        now=NOW + timedelta(seconds=60),
    )

    events = registry.events()
    assert [event.code for event in events[:2]] == ["too-large", "bad-cbor"]
    assert [event.device_id for event in events[2:]] == ["d50", "d40", "d30", "d20", "d10"]
    assert [event.at for event in events] == sorted((event.at for event in events), reverse=True)
    assert registry.events(limit=3) == events[:3]
    assert registry.events(limit=1)[0].code == "too-large"
    with pytest.raises(ValueError, match="limit"):
        registry.events(limit=0)


def test_events_may_name_unknown_devices(registry: DeviceRegistry) -> None:
    registry.record_event(
        device_id="never-enrolled", kind="rejected", code="not-enrolled", reason="r", now=NOW
    )
    [event] = registry.events()
    assert (event.device_id, event.kind, event.code, event.reason) == (
        "never-enrolled",
        "rejected",
        "not-enrolled",
        "r",
    )
    assert registry.get("never-enrolled") is None


def test_concurrent_heartbeats_from_threads(registry: DeviceRegistry) -> None:
    threads, beats = 6, 15
    for worker in range(threads):
        _enroll(registry, f"own-{worker}")
    _enroll(registry, "shared")
    start = threading.Barrier(threads)

    def beat(worker: int) -> None:
        start.wait()
        for seq in range(beats):
            at = NOW + timedelta(seconds=seq)
            registry.heartbeat(f"own-{worker}", seq=seq, uptime=seq, boot_count=7, now=at)
            registry.heartbeat("shared", seq=worker * beats + seq, uptime=seq, boot_count=7, now=at)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for done in [pool.submit(beat, worker) for worker in range(threads)]:
            done.result()

    for worker in range(threads):
        record = registry.get(f"own-{worker}")
        assert record is not None
        assert (record.last_seq, record.last_uptime) == (beats - 1, beats - 1)
        assert record.last_seen == NOW + timedelta(seconds=beats - 1)
    shared = registry.get("shared")
    assert shared is not None
    assert shared.last_seq is not None
    assert 0 <= shared.last_seq < threads * beats
    assert shared.last_uptime == shared.last_seq % beats


def test_concurrent_enrollment_of_one_device_keeps_one_row(registry: DeviceRegistry) -> None:
    threads = 6
    start = threading.Barrier(threads)

    def enroll(worker: int) -> DeviceRecord:
        start.wait()
        return _enroll(registry, "racer", swversion=f"1.0.{worker}")

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = [done.result() for done in [pool.submit(enroll, w) for w in range(threads)]]

    [stored] = registry.list_devices()
    assert stored.swversion in {record.swversion for record in results}
    assert len(registry.events()) == threads


def test_driver_failures_surface_as_storage_errors(database: Database) -> None:
    registry = DeviceRegistry(database=database)
    database.downgrade(revision="base")
    with pytest.raises(StorageError) as raised:
        registry.list_devices()
    assert raised.value.code == "storage"
    assert "list devices" in raised.value.reason
