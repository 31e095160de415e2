"""The device registry on every engine: enrollment, the monotonic rules, the audit trail.

The replay and reorder rules are raced with real threads against SQLite and
PostgreSQL: whatever the interleaving, a report is accepted once, a sequence
never goes backwards and a boot count never rewinds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from attestation_server.records import DeviceRecord
from attestation_server.registry import (
    BOOT_REGRESSED,
    SECURITY,
    Claim,
    DeviceRegistry,
    Enrollment,
    Heartbeat,
)
from device_runtime.core.errors import NotEnrolled, Replayed, StorageError
from fleet_platform.event_budget import EventBudget
from fleet_platform.storage import Database

NOW = datetime(2026, 11, 22, 8, 0, 0, 250_000, tzinfo=UTC)
FINGERPRINT = "a1" * 32
T = TypeVar("T")


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
    boot_count: int = 7,
) -> Enrollment:
    return registry.enroll(
        device_id,
        hwmodel="board-a",
        swname="sensor-fw",
        swversion=swversion,
        rot_claimed="tpm",
        boot_count=boot_count,
        heartbeat_interval=interval,
        cert_fingerprint=FINGERPRINT,
        now=now,
    )


def _beat(
    registry: DeviceRegistry, device_id: str, seq: int, *, boot: int = 7, at: datetime = NOW
) -> DeviceRecord:
    """Heartbeat, then read the stored record back (the write itself returns nothing)."""
    registry.heartbeat(device_id, seq=seq, uptime=seq, boot_count=boot, now=at)
    record = registry.get(device_id)
    assert record is not None
    return record


def _race(threads: int, work: Callable[[int], T]) -> list[T | BaseException]:
    """Run *work(i)* on *threads* threads released at the same instant."""
    start = threading.Barrier(threads)

    def run(worker: int) -> T | BaseException:
        start.wait()
        try:
            return work(worker)
        except (Replayed, NotEnrolled) as exc:
            return exc

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return [done.result() for done in [pool.submit(run, w) for w in range(threads)]]


def test_enroll_stores_the_claim_and_an_event(registry: DeviceRegistry) -> None:
    enrollment = _enroll(registry, "dev-1")

    assert enrollment.new_boot
    assert enrollment.record == DeviceRecord(
        device_id="dev-1",
        enrolled_at=NOW,
        last_seen=NOW,
        hwmodel="board-a",
        swname="sensor-fw",
        swversion="1.0.0",
        rot_claimed="tpm",
        rot_verified=None,
        cert_fingerprint=FINGERPRINT,
        boot_count=7,
        last_seq=None,
        last_uptime=None,
        heartbeat_interval=60,
    )
    assert registry.get("dev-1") == enrollment.record
    [event] = registry.events()
    assert (event.device_id, event.kind, event.code, event.at) == ("dev-1", "enrolled", None, NOW)
    assert "tpm root of trust (claimed)" in event.reason


def test_a_claimed_root_of_trust_is_never_recorded_as_verified(registry: DeviceRegistry) -> None:
    """A software device that says ``tpm`` is stored as a claim; only attestation verifies."""
    _enroll(registry, "dev-1")
    record = registry.get("dev-1")
    assert record is not None
    assert (record.rot_claimed, record.rot_verified) == ("tpm", None)


def test_a_new_boot_starts_a_new_sequence(registry: DeviceRegistry) -> None:
    _enroll(registry, "dev-1")
    _beat(registry, "dev-1", 5, at=NOW + timedelta(minutes=5))
    later = NOW + timedelta(hours=1)

    enrollment = registry.enroll(
        "dev-1",
        hwmodel="board-b",
        swname="sensor-fw",
        swversion="2.0.0",
        rot_claimed="dice",
        boot_count=8,
        heartbeat_interval=30,
        now=later,
    )

    record = enrollment.record
    assert enrollment.new_boot
    assert (record.hwmodel, record.swversion, record.rot_claimed) == ("board-b", "2.0.0", "dice")
    assert (record.boot_count, record.last_seq, record.last_uptime) == (8, None, None)
    assert (record.enrolled_at, record.last_seen, record.heartbeat_interval) == (later, later, 30)
    assert [event.kind for event in registry.events()] == ["enrolled", "enrolled"]


def test_a_replayed_enroll_does_not_reset_the_sequence(registry: DeviceRegistry) -> None:
    """Defect: a replayed enroll cleared last_seq, so old heartbeats passed again."""
    _enroll(registry, "dev-1")
    _beat(registry, "dev-1", 5)
    replay = _enroll(registry, "dev-1", now=NOW + timedelta(seconds=10))

    assert not replay.new_boot
    assert replay.record.last_seq == 5
    assert replay.record.enrolled_at == NOW
    with pytest.raises(Replayed):
        _beat(registry, "dev-1", 3)
    assert [event.kind for event in registry.events()] == ["enrolled"]


def test_a_heartbeat_from_an_earlier_boot_is_refused_as_a_security_event(
    registry: DeviceRegistry,
) -> None:
    """Defect: a heartbeat from boot 6 was accepted and rewound boot_count from 7."""
    _enroll(registry, "dev-1")
    _beat(registry, "dev-1", 1)

    with pytest.raises(Replayed, match="boot count went backwards: 6 after 7"):
        _beat(registry, "dev-1", 99, boot=6)

    record = registry.get("dev-1")
    assert record is not None and (record.boot_count, record.last_seq) == (7, 1)
    security = [event for event in registry.events() if event.kind == SECURITY]
    assert [event.code for event in security] == [BOOT_REGRESSED]


def test_an_enroll_from_an_earlier_boot_is_refused_and_changes_nothing(
    registry: DeviceRegistry,
) -> None:
    _enroll(registry, "dev-1")
    _beat(registry, "dev-1", 4)
    before = registry.get("dev-1")

    with pytest.raises(Replayed, match="backwards"):
        _enroll(registry, "dev-1", boot_count=3, swversion="0.9.0", now=NOW + timedelta(hours=1))

    assert registry.get("dev-1") == before
    assert registry.events()[0].code == BOOT_REGRESSED


def test_heartbeats_must_strictly_increase_within_a_boot(registry: DeviceRegistry) -> None:
    """Defect: seq N+2 then N+1 both passed and last_seq went backwards."""
    _enroll(registry, "dev-1")
    _beat(registry, "dev-1", 3)
    with pytest.raises(Replayed, match="not after 3"):
        _beat(registry, "dev-1", 2)
    with pytest.raises(Replayed):
        _beat(registry, "dev-1", 3)
    assert _beat(registry, "dev-1", 4).last_seq == 4


def test_a_heartbeat_from_a_later_boot_moves_the_boot_on(registry: DeviceRegistry) -> None:
    _enroll(registry, "dev-1")
    _beat(registry, "dev-1", 50)
    record = _beat(registry, "dev-1", 1, boot=8)
    assert (record.boot_count, record.last_seq) == (8, 1)


def test_identical_heartbeats_raced_are_accepted_once(registry: DeviceRegistry) -> None:
    """Defect: identical heartbeats sent at once were acknowledged once per worker."""
    _enroll(registry, "dev-1")
    outcomes = _race(8, lambda worker: _beat(registry, "dev-1", 1))
    accepted = [o for o in outcomes if isinstance(o, DeviceRecord)]
    assert len(accepted) == 1
    assert all(isinstance(o, Replayed) for o in outcomes if o not in accepted)


def test_raced_sequence_numbers_never_go_backwards(registry: DeviceRegistry) -> None:
    _enroll(registry, "dev-1")
    seen: list[int] = []
    lock = threading.Lock()

    def beat(worker: int) -> None:
        for seq in range(worker, 240, 8):
            try:
                record = _beat(registry, "dev-1", seq)
            except Replayed:
                continue
            with lock:
                seen.append(record.last_seq or 0)

    _race(8, beat)
    record = registry.get("dev-1")
    assert record is not None and record.last_seq == max(seen)
    # Each thread's view of what it wrote only ever rises: no accepted write undid a later one.
    assert seen and max(seen) >= 232


def test_raced_boots_keep_the_highest(registry: DeviceRegistry) -> None:
    _enroll(registry, "dev-1", boot_count=1)
    outcomes = _race(
        6,
        lambda worker: _enroll(
            registry, "dev-1", boot_count=10 - worker, now=NOW + timedelta(seconds=worker)
        ),
    )
    record = registry.get("dev-1")
    assert record is not None and record.boot_count == 10
    refused = [o for o in outcomes if isinstance(o, Replayed)]
    assert len(refused) == sum(1 for e in registry.events() if e.code == BOOT_REGRESSED)


def test_heartbeat_updates_liveness(registry: DeviceRegistry) -> None:
    _enroll(registry, "dev-1")
    seen = NOW + timedelta(seconds=61)

    registry.heartbeat("dev-1", seq=1, uptime=61, boot_count=7, now=seen)
    record = registry.get("dev-1")

    assert record is not None
    assert (record.last_seq, record.last_uptime, record.boot_count) == (1, 61, 7)
    assert record.last_seen == seen
    assert record.enrolled_at == NOW


def test_counters_reach_what_storage_holds(registry: DeviceRegistry) -> None:
    """Defect: seq = 2**63 raised a bare ValueError from the driver in a worker."""
    _enroll(registry, "dev-1")
    top = 2**63 - 1
    assert _beat(registry, "dev-1", top).last_seq == top
    with pytest.raises(ValueError, match="seq"):
        _beat(registry, "dev-1", top + 1)


def test_heartbeat_from_an_unknown_device_raises_not_enrolled(registry: DeviceRegistry) -> None:
    with pytest.raises(NotEnrolled) as raised:
        _beat(registry, "stranger", 1, boot=1)
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
    record = registry.get(_enroll(registry, "dev-1", interval=20).record.device_id)
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
    enrollment = _enroll(registry, "dev-1", now=NOW.astimezone(eastern))
    stored = registry.get("dev-1")
    assert stored is not None
    assert stored.enrolled_at == NOW
    assert stored.enrolled_at.utcoffset() == timedelta(0)
    assert enrollment.record.last_seen.tzinfo == UTC
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
        ("rot_claimed", "hsm"),
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
        "rot_claimed": "tpm",
        "boot_count": 1,
        "heartbeat_interval": 60,
        "cert_fingerprint": FINGERPRINT,
        "now": NOW,
    }
    fields[field] = value
    with pytest.raises(ValueError, match=field):
        registry.enroll("dev-1", **fields)  # type: ignore[arg-type]
    assert registry.list_devices() == []


def test_fingerprint_is_stored_in_lower_case(registry: DeviceRegistry) -> None:
    enrollment = registry.enroll(
        "dev-1",
        hwmodel="h",
        swname="s",
        swversion="v",
        rot_claimed="software",
        boot_count=0,
        heartbeat_interval=1,
        cert_fingerprint=FINGERPRINT.upper(),
        now=NOW,
    )
    assert enrollment.record.cert_fingerprint == FINGERPRINT


def test_schema_constraints_back_up_validation(database: Database) -> None:
    for rot in ("rot_claimed", "rot_verified"):
        with pytest.raises(IntegrityError), database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO devices (device_id, enrolled_at, last_seen, hwmodel, swname,"
                    f" swversion, rot_claimed, {rot}, boot_count, heartbeat_interval)"
                    " VALUES ('d', :now, :now, 'h', 's', 'v', 'tpm', 'hsm', 0, 60)"
                    if rot == "rot_verified"
                    else "INSERT INTO devices (device_id, enrolled_at, last_seen, hwmodel, swname,"
                    " swversion, rot_claimed, boot_count, heartbeat_interval)"
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
    for code in ("bad-cbor", "too-large"):
        registry.record_event(
            device_id=None,
            kind="rejected",
            code=code,
            reason="tie",
            now=NOW + timedelta(seconds=60),
        )

    events = registry.events()
    assert [event.code for event in events[:2]] == ["too-large", "bad-cbor"]
    assert [event.device_id for event in events[2:]] == ["d50", "d40", "d30", "d20", "d10"]
    assert [event.at for event in events] == sorted((event.at for event in events), reverse=True)
    assert registry.events(limit=3) == events[:3]
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


def test_events_per_device_are_rationed_and_the_gap_is_reported(database: Database) -> None:
    registry = DeviceRegistry(database=database, budget=EventBudget(per_window=3, window_s=60))
    for second in range(10):
        registry.record_event(
            device_id="noisy",
            kind="rejected",
            code="bad-cbor",
            reason="garbage",
            now=NOW + timedelta(seconds=second),
        )
    registry.record_event(
        device_id="quiet", kind="rejected", code="bad-cbor", reason="once", now=NOW
    )
    assert registry.record_event(
        device_id="noisy", kind="rejected", code="bad-cbor", reason="later",
        now=NOW + timedelta(seconds=61),
    )  # fmt: skip
    noisy = [event for event in registry.events(limit=100) if event.device_id == "noisy"]
    assert len(noisy) == 4
    assert "7 earlier events of this device were not recorded" in noisy[0].reason
    assert any(event.device_id == "quiet" for event in registry.events())


def test_concurrent_heartbeats_of_many_devices(registry: DeviceRegistry) -> None:
    threads, beats = 6, 15
    for worker in range(threads):
        _enroll(registry, f"own-{worker}")

    def beat(worker: int) -> None:
        for seq in range(beats):
            _beat(registry, f"own-{worker}", seq, at=NOW + timedelta(seconds=seq))

    _race(threads, beat)
    for worker in range(threads):
        record = registry.get(f"own-{worker}")
        assert record is not None
        assert (record.last_seq, record.last_uptime) == (beats - 1, beats - 1)
        assert record.last_seen == NOW + timedelta(seconds=beats - 1)


def test_concurrent_enrollment_of_one_device_keeps_one_row(registry: DeviceRegistry) -> None:
    outcomes = _race(6, lambda worker: _enroll(registry, "racer", swversion=f"1.0.{worker}"))
    [stored] = registry.list_devices()
    assert stored.swversion in {o.record.swversion for o in outcomes if isinstance(o, Enrollment)}
    assert sum(1 for o in outcomes if isinstance(o, Enrollment) and o.new_boot) == 1
    assert [event.kind for event in registry.events()] == ["enrolled"]


def test_driver_failures_surface_as_storage_errors(database: Database) -> None:
    registry = DeviceRegistry(database=database)
    database.downgrade(revision="base")
    with pytest.raises(StorageError) as raised:
        registry.list_devices()
    assert raised.value.code == "storage"
    assert "list devices" in raised.value.reason


def test_a_batch_of_heartbeats_is_judged_report_by_report(
    registry: DeviceRegistry, database: Database
) -> None:
    for device_id in ("fresh", "replay", "clone"):
        _enroll(registry, device_id)
    _beat(registry, "replay", 9)
    reports = [
        Heartbeat(device_id="fresh", seq=1, uptime=1, boot_count=7, at=NOW),
        Heartbeat(device_id="replay", seq=9, uptime=9, boot_count=7, at=NOW),
        Heartbeat(device_id="clone", seq=1, uptime=1, boot_count=6, at=NOW),
        Heartbeat(device_id="stranger", seq=1, uptime=1, boot_count=1, at=NOW),
    ]
    with database.transaction("batch") as tx:
        outcomes = registry.heartbeats(reports, tx=tx)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], Replayed) and "not after 9" in outcomes[1].reason
    assert isinstance(outcomes[2], Replayed) and "backwards" in outcomes[2].reason
    assert isinstance(outcomes[3], NotEnrolled)
    fresh = registry.get("fresh")
    assert fresh is not None and (fresh.last_seq, fresh.last_seen) == (1, NOW)
    assert [e.code for e in registry.events() if e.kind == SECURITY] == [BOOT_REGRESSED]
    with (
        pytest.raises(ValueError, match="one heartbeat per device"),
        database.transaction("x") as tx,
    ):
        registry.heartbeats(reports[:1] * 2, tx=tx)


def test_a_batch_larger_than_one_statement_is_recorded_whole(
    registry: DeviceRegistry, database: Database
) -> None:
    ids = [f"dev-{n}" for n in range(250)]
    for device_id in ids:
        _enroll(registry, device_id)
    reports = [Heartbeat(device_id=d, seq=5, uptime=5, boot_count=7, at=NOW) for d in ids]
    with database.transaction("batch") as tx:
        assert registry.heartbeats(reports, tx=tx) == [None] * len(ids)
    assert {record.last_seq for record in registry.list_devices()} == {5}


def test_a_clone_cannot_spend_its_budget_to_hide_a_boot_regression(database: Database) -> None:
    """Defect: ~30 garbage messages used up the device's event budget, and the boot count
    going backwards was then never recorded."""
    registry = DeviceRegistry(database=database, budget=EventBudget(per_window=3, window_s=60))
    _enroll(registry, "dev-1")
    for second in range(10):
        registry.record_event(
            device_id="dev-1", kind="rejected", code="bad-cbor", reason="garbage",
            now=NOW + timedelta(seconds=second),
        )  # fmt: skip
    for repeat in range(5):
        with pytest.raises(Replayed, match="backwards"):
            _beat(registry, "dev-1", 1, boot=2, at=NOW + timedelta(seconds=20 + repeat))
    with pytest.raises(Replayed, match="backwards"):
        _beat(registry, "dev-1", 1, boot=3, at=NOW + timedelta(seconds=30))
    security = [e for e in registry.events(limit=100) if e.kind == SECURITY]
    assert len(security) == 2, "each new regression is recorded once, its repeats are not"
    assert {e.reason.split(":")[1].split("(")[0].strip() for e in security} == {
        "2 after 7",
        "3 after 7",
    }


def _verify(database: Database, device_id: str) -> None:
    """Stand-in for attestation, which is what will set this: mark the device proven."""
    with database.engine.begin() as connection:
        connection.execute(
            text("UPDATE devices SET rot_verified = 'tpm' WHERE device_id = :d"), {"d": device_id}
        )


def test_verification_lasts_only_as_long_as_what_was_verified(
    registry: DeviceRegistry, database: Database
) -> None:
    _enroll(registry, "dev-1")
    _verify(database, "dev-1")
    same = _enroll(registry, "dev-1", now=NOW + timedelta(seconds=1))
    assert same.record.rot_verified == "tpm", "the same boot and claim keep it"
    changed = _enroll(registry, "dev-1", swversion="6.6.6", now=NOW + timedelta(seconds=2))
    assert changed.record.rot_verified is None, "a changed claim is no longer what was verified"
    _verify(database, "dev-1")
    rebooted = _enroll(registry, "dev-1", boot_count=8, now=NOW + timedelta(seconds=3))
    assert rebooted.record.rot_verified is None, "a new boot must be attested again"


def test_the_audit_trail_is_pruned_by_age_and_by_size(registry: DeviceRegistry) -> None:
    """Rationing bounds the rate; retention bounds what piles up over months."""
    for days_ago in (400, 100, 40, 10, 1):
        at = NOW - timedelta(days=days_ago)
        registry.record_event(device_id="d", kind="rejected", code="c", reason="r", now=at)
        registry.record_event(device_id="d", kind=SECURITY, code=BOOT_REGRESSED, reason="r", now=at)
    assert registry.prune_events(NOW) == 4, "three old rejections, one year-old security event"
    kept = registry.events(limit=100)
    assert sorted((e.kind, (NOW - e.at).days) for e in kept) == [
        ("rejected", 1), ("rejected", 10),
        ("security", 1), ("security", 10), ("security", 40), ("security", 100),
    ]  # fmt: skip
    assert registry.prune_events(NOW, max_rows=5) == 1
    assert [e.kind for e in registry.events(limit=100)].count("rejected") == 1
    assert registry.prune_events(NOW, max_rows=1) == 1, "security events outlast the cap"
    assert {e.kind for e in registry.events(limit=100)} == {SECURITY}


def test_a_batch_of_enrollments_is_judged_claim_by_claim(
    registry: DeviceRegistry, database: Database
) -> None:
    for device_id in ("rebooted", "again", "clone"):
        _enroll(registry, device_id)

    def claim(device_id: str, boot: int) -> Claim:
        return Claim(
            device_id=device_id, hwmodel="board-a", swname="sensor-fw", swversion="1.0.0",
            rot_claimed="tpm", boot_count=boot, at=NOW + timedelta(minutes=1),
        )  # fmt: skip

    claims = [claim("fresh", 1), claim("rebooted", 8), claim("again", 7), claim("clone", 6)]
    with database.transaction("batch") as tx:
        outcomes = registry.enrollments(claims, heartbeat_interval=60, tx=tx)
    fresh, rebooted, again, clone = outcomes
    assert isinstance(fresh, Enrollment) and fresh.new_boot
    assert isinstance(rebooted, Enrollment) and rebooted.new_boot
    assert isinstance(again, Enrollment) and not again.new_boot
    assert isinstance(clone, Replayed)
    enrolled = [e.device_id for e in registry.events(limit=100) if e.kind == "enrolled"]
    assert sorted(enrolled) == ["again", "clone", "fresh", "rebooted", "rebooted"]
