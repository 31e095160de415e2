"""``failure-report`` ingest on SQLite and PostgreSQL: each key once, gaps counted, refusals
specific, a flood told to wait.

Uploads are built the way a device builds them: records appended to a real outbox on a
flash-like file by the device's failure capture, its batch sent through the shared
protocol's encoder and decoder. Concurrency is real: threads released at one instant,
each with its own connection, serve the same upload (a resend racing its original) or
different devices' uploads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection

from device_runtime.core import cbor, failure_report, protocol
from device_runtime.core.errors import InvalidField, RateLimited, TooLarge
from device_runtime.core.failure_capture import FailureCapture
from device_runtime.core.outbox import Outbox, encode_record
from device_runtime.ports.cpython.block_device import FileBlockDevice
from device_runtime.ports.cpython.exception_frames import exception_frames
from failure_reports.failure_ingest import FailureReports
from failure_reports.failure_store import FailureStore
from fleet_platform.gateway import Body, Request
from fleet_platform.rate_limits import RateLimits
from fleet_platform.storage import Database
from tests.device_runtime.stepped_clock import SteppedClock

NOW = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)


def unlimited() -> RateLimits:
    return RateLimits(rate=1e9, burst=1_000_000)


def handler(database: Database, limits: RateLimits | None = None) -> FailureReports:
    def model(tx: Connection, device_id: str) -> str | None:
        return "mcu-board"

    return FailureReports(FailureStore(database=database), model, limits or unlimited())


def serve(reports: FailureReports, database: Database, device_id: str, records: bytes) -> Body:
    """One upload through the protocol's checks, served in its own transaction."""
    data = protocol.encode(failure_report.KIND, b"\x01" * 8, {"records": records})
    envelope = protocol.decode(data)
    with database.transaction("test upload") as tx:
        return reports.serve(Request(device_id, envelope.kind, envelope.body, NOW), tx)


def crashing_device(tmp_path: Path, boot: int = 1) -> tuple[FailureCapture, Outbox]:
    outbox = Outbox(
        FileBlockDevice(path=tmp_path / f"flash-{boot}", size=16384, erase_size=4096), boot
    )
    return FailureCapture(outbox, SteppedClock(), "2.0.1", exception_frames), outbox


def read_sensor() -> None:
    raise OSError("i2c bus stuck")


def keys(answer: Body) -> list[tuple[int, int]]:
    settled = answer["settled"]
    return [
        (
            int.from_bytes(settled[at : at + 4], "big"),
            int.from_bytes(settled[at + 4 : at + 8], "big"),
        )
        for at in range(0, len(settled), 8)
    ]


def test_a_crash_is_stored_once_with_what_grouping_needs(
    database: Database, tmp_path: Path
) -> None:
    capture, outbox = crashing_device(tmp_path)
    try:
        read_sensor()
    except OSError as exc:
        capture.crash(exc)
    capture.reboot("software-watchdog")
    capture.metrics(free_mem=20000, reconnects=1)
    reports = handler(database)
    batch = outbox.batch(failure_report.MAX_BATCH)
    answer = serve(reports, database, "dev-crash", batch)
    assert (answer["recorded"], answer["repeated"], answer["refused"]) == (3, 0, 0)
    assert keys(answer) == [(1, 1), (1, 2), (1, 3)]
    again = serve(reports, database, "dev-crash", batch)
    assert (again["recorded"], again["repeated"]) == (0, 3), "a resend stores nothing"
    crash, reboot, metrics = FailureStore(database=database).rows("dev-crash")
    assert crash["kind"] == "crash" and crash["code"] == "OSError"
    assert crash["firmware"] == "2.0.1" and crash["hwmodel"] == "mcu-board"
    assert crash["message"] == "i2c bus stuck"
    fingerprint = str(crash["fingerprint_input"]).split("\n")
    assert fingerprint[:2] == ["v1", "OSError"]
    assert fingerprint[-1] == "test_failure_ingest.py:read_sensor", "no line numbers, base names"
    assert json.loads(str(crash["frames"]))[-1][2] == "read_sensor"
    assert reboot["code"] == "software-watchdog"
    assert json.loads(str(metrics["metrics"]))["free_mem"] == 20000
    assert outbox.acknowledge(answer["settled"]) == 3 and outbox.pending() == 0


def test_keys_that_jump_are_taken_and_the_gap_counted(database: Database) -> None:
    reports = handler(database)
    payload = cbor.dumps({"k": "reboot", "reason": "brown-out", "fw": "1", "up": 0})
    records = b"".join(encode_record(4, seq, payload) for seq in (1, 2, 7, 9))
    answer = serve(reports, database, "dev-gap", records)
    assert answer["recorded"] == 4
    store = FailureStore(database=database)
    assert store.missing("dev-gap") == 5, "3-6 and 8 never came"


def record(kind: str, **fields: object) -> dict[str, object]:
    return {"k": kind, "fw": "1", "up": 0} | fields


def crash(**fields: object) -> dict[str, object]:
    return record("crash", type="E", msg="m", frames=[]) | fields


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (record("reboot", reason="cosmic-ray"), "unknown-reboot-reason"),
        (record("security", event="tamper", detail=""), "unknown-security-event"),
        (record("explosion"), "unknown-kind"),
        (record("reboot", reason="power-on", device="dev-other"), "identity-mismatch"),
        (crash(msg="m" * 500), "too-large"),
        (crash(frames=[["f", -1, "g"]]), "malformed"),
        (crash(frames=[[1, 2]]), "malformed"),
        (record("metrics", free_mem=1, reconnects=0), "malformed"),
        (record("reboot", reason="power-on", fw="1\x1b[2J"), "malformed"),
        (record("reboot", reason="power-on", extra=1), "malformed"),
    ],
)
def test_a_bad_record_is_refused_with_its_reason_and_settled(
    database: Database, body: dict[str, object], code: str
) -> None:
    reports = handler(database)
    good = cbor.dumps({"k": "reboot", "reason": "power-on", "fw": "1", "up": 0})
    records = encode_record(1, 1, cbor.dumps(body)) + encode_record(1, 2, good)
    answer = serve(reports, database, "dev-bad", records)
    assert (answer["recorded"], answer["refused"]) == (1, 1)
    assert keys(answer) == [(1, 1), (1, 2)], "a refused record is settled too"
    assert str(answer["reason"]).startswith(f"(1, 1) {code}:")


def test_a_record_that_is_not_cbor_is_malformed(database: Database) -> None:
    answer = serve(handler(database), database, "dev-junk", encode_record(1, 1, b"\xff\x00"))
    assert answer["refused"] == 1 and "malformed" in str(answer["reason"])


def test_a_torn_or_oversized_upload_is_refused_whole(database: Database) -> None:
    reports = handler(database)
    record = encode_record(1, 1, b"\xa0")
    with pytest.raises(InvalidField, match="CRC"):
        serve(reports, database, "dev-torn", record[:-1] + bytes([record[-1] ^ 1]))
    with pytest.raises(TooLarge):
        serve(reports, database, "dev-big", record * 200)
    assert FailureStore(database=database).count() == 0


def test_a_flood_from_one_device_is_told_to_wait_and_others_are_not(
    database: Database,
) -> None:
    reports = handler(database, RateLimits(rate=0.5, burst=3, notice_interval_s=0.0))
    payload = cbor.dumps({"k": "reboot", "reason": "power-on", "fw": "1", "up": 0})
    for seq in (1, 2, 3):
        serve(reports, database, "dev-flood", encode_record(1, seq, payload))
    with pytest.raises(RateLimited) as refused:
        serve(reports, database, "dev-flood", encode_record(1, 4, payload))
    assert 0 < refused.value.retry_after_ms <= 2000
    assert serve(reports, database, "dev-calm", encode_record(1, 1, payload))["recorded"] == 1
    assert FailureStore(database=database).count("dev-flood") == 3


def race(threads: int, work: Callable[[int], Body]) -> list[Body]:
    start = threading.Barrier(threads)

    def run(worker: int) -> Body:
        start.wait()
        return work(worker)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, range(threads)))


def test_concurrent_resends_store_each_record_once(database: Database) -> None:
    reports = handler(database)
    payload = cbor.dumps({"k": "reboot", "reason": "pin-reset", "fw": "1", "up": 0})
    records = b"".join(encode_record(2, seq, payload) for seq in range(1, 21))
    answers = race(6, lambda _: serve(reports, database, "dev-race", records))
    assert sum(int(a["recorded"]) for a in answers) == 20
    assert sum(int(a["repeated"]) for a in answers) == 5 * 20
    assert FailureStore(database=database).count("dev-race") == 20


def test_concurrent_devices_store_every_record(database: Database) -> None:
    reports = handler(database)
    payload = cbor.dumps({"k": "reboot", "reason": "power-on", "fw": "1", "up": 0})

    def device(worker: int) -> Body:
        last: Body = {}
        for batch in range(5):
            records = b"".join(encode_record(1, batch * 10 + n, payload) for n in range(1, 11))
            last = serve(reports, database, f"dev-c{worker}", records)
        return last

    race(6, device)
    store = FailureStore(database=database)
    assert [store.count(f"dev-c{w}") for w in range(6)] == [50] * 6
