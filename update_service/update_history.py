"""Each device's update history, recorded from its ``update-status`` reports.

Every report carries its idempotency key ``(boot_count, seq)``
(:mod:`device_runtime.core.update_status`). What happens to it is decided by
the database, in the statement that writes it, never by reading first:

* the device's ``update_reporters`` row is upserted on the condition that the
  key is newer than the one it holds, so of two gateways holding the same
  report exactly one records it, and the row lock serialises one device's
  reports on PostgreSQL (SQLite's writers are serial anyway);
* a key equal to the last recorded is a resend whose answer was lost: it is
  acknowledged again and recorded nothing; an older key is refused
  (``replayed``) with both keys in the reason;
* a ``downloading`` report of the download the device's newest row is about
  (same target, same versions) updates that row instead of adding one;
* past ``max_rows`` rows for the device, the oldest go in the same transaction;
* a ``reverted`` or ``failed`` report is a security event, through the hook
  the server composition hands in (the audit trail belongs to the attestation
  server), at most once per window for the same device, state and target.

Every method takes an optional open transaction, so the gateway can serve a
batch in one commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, cast

from sqlalchemy import Connection, RowMapping, Table, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from device_runtime.core.errors import Replayed
from device_runtime.core.update_status import STATES
from fleet_platform.event_budget import OncePerWindow
from fleet_platform.storage import Database
from fleet_platform.storage.timestamps import require_aware
from update_service.tables import UpdateHistoryEntry, UpdateReporter

log = logging.getLogger(__name__)

MAX_ROWS_PER_DEVICE = 1000
"""Rows of history kept per device; the oldest go first."""

SECURITY_REPEAT_S = 600.0
"""The same revert or failure (device, state, target, versions) is an event at most this often."""

ALARMING = {"reverted": "update-reverted", "failed": "update-failed"}
"""States that are security events, and their event codes."""

_REPORTERS = cast(Table, UpdateReporter.__table__)
_HISTORY = cast(Table, UpdateHistoryEntry.__table__)

Outcome = Literal["recorded", "merged", "duplicate"]


class SecurityEvent(Protocol):
    """Writes one security event inside *tx* (``TrustStore.security_event``'s shape)."""

    def __call__(
        self, tx: Connection, *, device_id: str, code: str, reason: str, now: datetime
    ) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateReport:
    """One ``update-status`` report, from the device its certificate proves."""

    device_id: str
    boot_count: int
    seq: int
    state: str
    from_version: str
    to_version: str
    target: str
    at: datetime
    done: int | None = None
    total: int | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        """The protocol checked all of this; a report that fails it here is a caller's bug."""
        if self.state not in STATES:
            raise ValueError(f"unknown update state {self.state!r}")
        if self.boot_count < 0 or self.seq < 1:
            raise ValueError("an idempotency key is a boot count >= 0 and a seq >= 1")
        if self.done is not None and (self.total is None or not 0 <= self.done <= self.total):
            raise ValueError("bytes done must lie between 0 and the total")
        require_aware(self.at, name="at")


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One stored step of a device's update history."""

    id: int
    device_id: str
    boot_count: int
    seq: int
    state: str
    from_version: str
    to_version: str
    target: str
    done: int | None
    total: int | None
    reason: str | None
    first_at: datetime
    at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> HistoryEntry:
        return cls(**{name: row[name] for name in _ENTRY_FIELDS})


_ENTRY_FIELDS = tuple(column.name for column in _HISTORY.columns)


class UpdateHistory:
    """Records reports and pages through them; safe to share between threads."""

    def __init__(
        self,
        *,
        database: Database,
        security_event: SecurityEvent | None = None,
        max_rows: int = MAX_ROWS_PER_DEVICE,
    ) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self._database = database
        self._security_event = security_event
        self._repeats = OncePerWindow(window_s=SECURITY_REPEAT_S)
        self.max_rows = max_rows
        dialect = sqlite if database.dialect == "sqlite" else postgresql
        inserted = dialect.insert(_REPORTERS)
        stored = _REPORTERS.c
        self._advance = inserted.on_conflict_do_update(
            index_elements=[stored.device_id],
            set_={
                "boot_count": inserted.excluded.boot_count,
                "seq": inserted.excluded.seq,
                "reported_at": inserted.excluded.reported_at,
            },
            where=or_(
                stored.boot_count < inserted.excluded.boot_count,
                and_(
                    stored.boot_count == inserted.excluded.boot_count,
                    stored.seq < inserted.excluded.seq,
                ),
            ),
        ).returning(stored.device_id)

    def record(self, report: UpdateReport, tx: Connection | None = None) -> Outcome:
        """Record *report* once; raises Replayed for a key older than the last recorded."""
        with self._in(tx, "record an update report") as connection:
            advanced = connection.execute(
                self._advance,
                {
                    "device_id": report.device_id,
                    "boot_count": report.boot_count,
                    "seq": report.seq,
                    "reported_at": report.at,
                },
            ).first()
            if advanced is None:
                return self._not_newer(connection, report)
            if report.state == "downloading" and self._merged(connection, report):
                return "merged"
            connection.execute(_HISTORY.insert().values(**history_row(report)))
            self._prune(connection, report.device_id)
            if report.state in ALARMING:
                self._alarm(connection, report)
            return "recorded"

    def page(
        self, device_id: str, *, limit: int = 50, before: int | None = None
    ) -> list[HistoryEntry]:
        """The device's newest *limit* entries, newest first, below entry id *before*."""
        if not 1 <= limit <= MAX_ROWS_PER_DEVICE:
            raise ValueError(f"limit must be between 1 and {MAX_ROWS_PER_DEVICE}")
        statement = select(_HISTORY).where(_HISTORY.c.device_id == device_id)
        if before is not None:
            statement = statement.where(_HISTORY.c.id < before)
        statement = statement.order_by(_HISTORY.c.id.desc()).limit(limit)
        with self._in(None, "list update history") as connection:
            return [HistoryEntry.from_row(row) for row in connection.execute(statement).mappings()]

    def last_key(self, device_id: str) -> tuple[int, int] | None:
        """The newest key recorded for *device_id*, if it ever reported."""
        statement = select(_REPORTERS.c.boot_count, _REPORTERS.c.seq).where(
            _REPORTERS.c.device_id == device_id
        )
        with self._in(None, "read an update reporter") as connection:
            row = connection.execute(statement).first()
        return None if row is None else (int(row[0]), int(row[1]))

    def _not_newer(self, connection: Connection, report: UpdateReport) -> Outcome:
        """The upsert matched nothing: the same key again, or an older one."""
        row = connection.execute(
            select(_REPORTERS.c.boot_count, _REPORTERS.c.seq).where(
                _REPORTERS.c.device_id == report.device_id
            )
        ).one()
        known = (int(row[0]), int(row[1]))
        if known == (report.boot_count, report.seq):
            return "duplicate"
        raise Replayed(
            f"update-status ({report.boot_count}, {report.seq}) is not after"
            f" ({known[0]}, {known[1]}), the last recorded"
        )

    def _merged(self, connection: Connection, report: UpdateReport) -> bool:
        """Progress of the download the newest row is about updates that row."""
        newest = (
            select(func.max(_HISTORY.c.id))
            .where(_HISTORY.c.device_id == report.device_id)
            .scalar_subquery()
        )
        merged = connection.execute(
            update(_HISTORY)
            .where(
                _HISTORY.c.id == newest,
                _HISTORY.c.state == "downloading",
                _HISTORY.c.target == report.target,
                _HISTORY.c.from_version == report.from_version,
                _HISTORY.c.to_version == report.to_version,
            )
            .values(
                boot_count=report.boot_count,
                seq=report.seq,
                done=report.done,
                total=report.total,
                reason=report.reason,
                at=report.at,
            )
        )
        return bool(merged.rowcount)

    def _prune(self, connection: Connection, device_id: str) -> None:
        """Past max_rows, the device's oldest rows go: everything up to the first one too many."""
        first_too_many = (
            select(_HISTORY.c.id)
            .where(_HISTORY.c.device_id == device_id)
            .order_by(_HISTORY.c.id.desc())
            .offset(self.max_rows)
            .limit(1)
            .scalar_subquery()
        )
        connection.execute(
            delete(_HISTORY).where(
                _HISTORY.c.device_id == device_id, _HISTORY.c.id <= first_too_many
            )
        )

    def _alarm(self, connection: Connection, report: UpdateReport) -> None:
        if self._security_event is None:
            return
        repeat = (
            report.device_id,
            report.state,
            report.target,
            report.from_version,
            report.to_version,
        )
        if not self._repeats.admit(repeat, report.at.timestamp()):
            return
        outcome = "was reverted" if report.state == "reverted" else "failed"
        reason = (
            f"update of {report.target!r} from {report.from_version!r} to"
            f" {report.to_version!r} {outcome}: {report.reason or 'no reason given'}"
        )
        log.warning("security event for %s: %s", report.device_id, reason)
        self._security_event(
            connection,
            device_id=report.device_id,
            code=ALARMING[report.state],
            reason=reason,
            now=report.at,
        )

    @contextmanager
    def _in(self, tx: Connection | None, operation: str) -> Iterator[Connection]:
        """The caller's transaction, or one of our own (a refusal has written nothing)."""
        if tx is not None:
            yield tx
            return
        with self._database.transaction(operation) as connection:
            yield connection


def history_row(report: UpdateReport) -> dict[str, object]:
    """The ``update_history`` row a report adds (progress merged into it later keeps
    ``first_at``)."""
    return {
        "device_id": report.device_id,
        "boot_count": report.boot_count,
        "seq": report.seq,
        "state": report.state,
        "from_version": report.from_version,
        "to_version": report.to_version,
        "target": report.target,
        "done": report.done,
        "total": report.total,
        "reason": report.reason,
        "first_at": report.at,
        "at": report.at,
    }
