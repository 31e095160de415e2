"""The update history on SQLite and PostgreSQL: each key once, progress merged, rows bounded.

Concurrency is real: threads released at one instant, each with its own
connection from the engine's pool, send the same report or interleaved keys.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection

from device_runtime.core.errors import Replayed
from fleet_platform.storage import Database
from update_service.update_history import UpdateHistory, UpdateReport

T = TypeVar("T")
NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
DEVICE = "dev-upd"


def report(seq: int, state: str = "checking", *, boot: int = 3, **fields: object) -> UpdateReport:
    values: dict[str, object] = {
        "device_id": DEVICE,
        "boot_count": boot,
        "seq": seq,
        "state": state,
        "from_version": "1.0.0",
        "to_version": "1.1.0",
        "target": "board/fw-1.1.0.img",
        "at": NOW + timedelta(seconds=seq),
    }
    values.update(fields)
    return UpdateReport(**values)  # type: ignore[arg-type]


class Events:
    """The security-event hook, noting what it was asked to write."""

    def __init__(self) -> None:
        self.written: list[tuple[str, str, str]] = []

    def __call__(
        self, tx: Connection, *, device_id: str, code: str, reason: str, now: datetime
    ) -> None:
        self.written.append((device_id, code, reason))


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def history(database: Database, events: Events) -> UpdateHistory:
    return UpdateHistory(database=database, security_event=events)


def _race(threads: int, work: Callable[[int], T]) -> list[T | Replayed]:
    start = threading.Barrier(threads)

    def run(worker: int) -> T | Replayed:
        start.wait()
        try:
            return work(worker)
        except Replayed as exc:
            return exc

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return [done.result() for done in [pool.submit(run, w) for w in range(threads)]]


def test_a_report_is_recorded_and_its_resend_acknowledged_once(history: UpdateHistory) -> None:
    assert history.record(report(1)) == "recorded"
    assert history.record(report(1)) == "duplicate"
    [entry] = history.page(DEVICE)
    assert (entry.state, entry.boot_count, entry.seq) == ("checking", 3, 1)
    assert history.last_key(DEVICE) == (3, 1)


def test_an_older_key_is_refused_with_both_keys(history: UpdateHistory) -> None:
    history.record(report(5))
    with pytest.raises(Replayed, match=r"\(3, 4\) is not after \(3, 5\)"):
        history.record(report(4, "confirmed"))
    with pytest.raises(Replayed, match=r"\(2, 9\) is not after \(3, 5\)"):
        history.record(report(9, "confirmed", boot=2))
    assert [entry.seq for entry in history.page(DEVICE)] == [5]


def test_a_new_boot_starts_its_sequence_again(history: UpdateHistory) -> None:
    history.record(report(7, "installed"))
    assert history.record(report(1, "booted", boot=4)) == "recorded"
    assert [(e.boot_count, e.state) for e in history.page(DEVICE)] == [
        (4, "booted"),
        (3, "installed"),
    ]


def test_progress_of_one_download_is_merged_into_one_row(history: UpdateHistory) -> None:
    history.record(report(1))
    assert history.record(report(2, "downloading", done=0, total=100)) == "recorded"
    assert history.record(report(3, "downloading", done=40, total=100)) == "merged"
    assert history.record(report(4, "downloading", done=100, total=100)) == "merged"
    other = report(5, "downloading", done=5, total=50, target="board/fw-1.1.0.delta")
    assert history.record(other) == "recorded"
    entries = history.page(DEVICE)
    assert [(e.state, e.target, e.done, e.seq) for e in entries] == [
        ("downloading", "board/fw-1.1.0.delta", 5, 5),
        ("downloading", "board/fw-1.1.0.img", 100, 4),
        ("checking", "board/fw-1.1.0.img", None, 1),
    ]
    merged = entries[1]
    assert merged.first_at == NOW + timedelta(seconds=2)
    assert merged.at == NOW + timedelta(seconds=4)


def test_at_most_max_rows_per_device_the_oldest_pruned(database: Database) -> None:
    history = UpdateHistory(database=database, max_rows=5)
    states = ("checking", "installed")
    for seq in range(1, 13):
        history.record(report(seq, states[seq % 2]))
    history.record(report(1, device_id="dev-other"))
    assert [entry.seq for entry in history.page(DEVICE)] == [12, 11, 10, 9, 8]
    assert len(history.page("dev-other")) == 1


def test_pages_walk_back_through_the_history(history: UpdateHistory) -> None:
    for seq in range(1, 8):
        history.record(report(seq, ("checking", "failed")[seq % 2]))
    first = history.page(DEVICE, limit=3)
    second = history.page(DEVICE, limit=3, before=first[-1].id)
    third = history.page(DEVICE, limit=3, before=second[-1].id)
    assert [e.seq for e in first + second + third] == [7, 6, 5, 4, 3, 2, 1]
    assert history.page("never-reported") == []


def test_reverts_and_failures_are_security_events(history: UpdateHistory, events: Events) -> None:
    history.record(report(1, "reverted", reason="trial boot did not confirm"))
    history.record(report(2, "failed", reason="hash mismatch", to_version="1.2.0"))
    history.record(report(3, "confirmed"))
    assert [(device, code) for device, code, _ in events.written] == [
        (DEVICE, "update-reverted"),
        (DEVICE, "update-failed"),
    ]
    assert "'1.0.0' to '1.1.0' was reverted: trial boot did not confirm" in events.written[0][2]


def test_a_repeated_failure_is_one_event_per_window(history: UpdateHistory, events: Events) -> None:
    for seq in range(1, 6):
        history.record(report(seq, "failed", reason="again"))
    assert len(events.written) == 1
    assert len(history.page(DEVICE)) == 5


def test_the_same_report_raced_is_recorded_once(history: UpdateHistory) -> None:
    outcomes = _race(8, lambda _: history.record(report(1, "installed")))
    assert sorted(map(str, outcomes)) == ["duplicate"] * 7 + ["recorded"]
    assert len(history.page(DEVICE)) == 1


def test_raced_keys_never_go_backwards(history: UpdateHistory) -> None:
    outcomes = _race(8, lambda worker: history.record(report(worker + 1, "booted")))
    recorded = [o for o in outcomes if o == "recorded"]
    refused = [o for o in outcomes if isinstance(o, Replayed)]
    assert len(recorded) + len(refused) == 8 and recorded
    assert history.last_key(DEVICE) == (3, 8)
    seqs = [entry.seq for entry in history.page(DEVICE)]
    assert seqs == sorted(seqs, reverse=True), "rows are in key order: none went backwards"


def test_many_devices_reporting_at_once_each_keep_their_own_history(
    history: UpdateHistory,
) -> None:
    def device(worker: int) -> list[str]:
        return [
            history.record(report(seq, "checking", device_id=f"dev-{worker}"))
            for seq in range(1, 6)
        ]

    outcomes = _race(6, device)
    assert all(o == ["recorded"] * 5 for o in outcomes)
    assert all(len(history.page(f"dev-{w}")) == 5 for w in range(6))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(keys=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 4)), min_size=1, max_size=12))
def test_any_order_of_keys_keeps_the_high_water_mark(
    database: Database, keys: list[tuple[int, int]]
) -> None:
    """Whatever order keys arrive in, a key is recorded iff it is above every key before it."""
    device = f"dev-h{abs(hash(tuple(keys))) % 10**9}"
    history = UpdateHistory(database=database)
    best: tuple[int, int] | None = None
    for boot, seq in keys:
        try:
            outcome = history.record(report(seq, "installed", boot=boot, device_id=device))
        except Replayed:
            outcome = "replayed"
        if best is None or (boot, seq) > best:
            assert outcome == "recorded"
            best = (boot, seq)
        elif (boot, seq) == best:
            assert outcome == "duplicate"
        else:
            assert outcome == "replayed"
    assert history.last_key(device) == best
