"""The registry of enrolled devices and the audit trail of what happened to them.

The monotonic rules a device's reports must follow are enforced by the database
in the statement that writes them, never by reading first and writing after:

* a boot count never goes backwards (a lower one is the first sign of a cloned
  or rolled-back device, and is recorded as a security event);
* within one boot, heartbeat sequence numbers strictly increase;
* an enrollment never lowers either: a repeated enroll in the same boot keeps
  the sequence, only a new boot starts a new one.

Each rule is the ``WHERE`` clause of one conditional ``UPDATE`` or upsert, so
two workers (or two server replicas) racing with the same report cannot both
win on SQLite or PostgreSQL. Only when the write matched nothing does the
registry read the row, to say why.

Every write method takes an optional open transaction (``tx``), so the gateway
can serve a batch of requests in one commit; without one it opens its own.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from attestation_server.records import DeviceRecord, EventRecord
from attestation_server.tables import Device, DeviceEvent
from device_runtime.core.errors import NotEnrolled, ProtocolError, Replayed
from device_runtime.core.protocol import MAX_COUNTER, ROOTS_OF_TRUST
from fleet_platform.event_budget import EventBudget, OncePerWindow
from fleet_platform.storage import Database
from fleet_platform.storage.timestamps import require_aware

MAX_HEARTBEAT_INTERVAL = 2**31 - 1
"""Largest heartbeat interval, in seconds, an INTEGER column holds."""

FINGERPRINT_LENGTH = 64
"""Hex digits of a SHA-256 digest."""

SECURITY = "security"
"""Event kind of what an operator must look at: a device behaving like a clone or a rollback."""

BOOT_REGRESSED = "boot-regressed"

EVENT_RETENTION = timedelta(days=30)
SECURITY_RETENTION = timedelta(days=365)
MAX_EVENTS = 1_000_000
"""Rows the audit trail may hold; past it the oldest events other than security ones go."""
_PRUNE_CHUNK = 10_000

SECURITY_REPEAT_S = 600.0
"""A security event is written every time something new happens, and a repeat of the
same one (same device, same boots) at most once per this many seconds."""

_CLAIM = (
    "last_seen",
    "hwmodel",
    "swname",
    "swversion",
    "rot_claimed",
    "cert_fingerprint",
    "heartbeat_interval",
)
"""What an enroll refreshes: what the device says about itself, and when it said it."""

_DEVICES = cast(Table, Device.__table__)
_EVENTS = cast(Table, DeviceEvent.__table__)

log = logging.getLogger(__name__)

_ROWS_PER_STATEMENT = 100
"""Reports per batch statement: 500 parameters, far below every engine's limit."""

_CLAIMED: dict[str, Any] = {name: bindparam(f"p_{name}") for name in _CLAIM}
_ENROLL_NEW_BOOT = (
    update(_DEVICES)
    .where(
        _DEVICES.c.device_id == bindparam("p_device_id"),
        _DEVICES.c.boot_count < bindparam("p_boot_count"),
    )
    .values(
        enrolled_at=bindparam("p_enrolled_at"),
        boot_count=bindparam("p_boot_count"),
        last_seq=None,
        last_uptime=None,
        rot_verified=None,
        **_CLAIMED,
    )
    .returning(*_DEVICES.c)
)
"""An enroll in a later boot: replace the claim and start the sequence over.

What attestation verified was verified of the boot it attested; a new boot has
to be attested again before anything about it counts as verified."""

_UNCHANGED_CLAIM = and_(
    *(
        _DEVICES.c[name] == bindparam(f"p_{name}")
        for name in ("hwmodel", "swname", "swversion", "rot_claimed")
    )
)

_ENROLL_SAME_BOOT = (
    update(_DEVICES)
    .where(
        _DEVICES.c.device_id == bindparam("p_device_id"),
        _DEVICES.c.boot_count == bindparam("p_boot_count"),
    )
    .values(
        rot_verified=case((_UNCHANGED_CLAIM, _DEVICES.c.rot_verified), else_=None),
        **_CLAIMED,
    )
    .returning(*_DEVICES.c)
)
"""An enroll repeated in the same boot: refresh the claim, keep the sequence; a claim that
changed (other hardware, software or root of trust) is no longer what was verified."""

_INSERT_EVENT = insert(_EVENTS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """One device's report that it is alive, as the registry records it."""

    device_id: str
    seq: int
    uptime: int
    boot_count: int
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """What a device says about itself when it enrolls, as the registry records it."""

    device_id: str
    hwmodel: str
    swname: str
    swversion: str
    rot_claimed: str
    boot_count: int
    at: datetime
    cert_fingerprint: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Enrollment:
    """The stored device after an enroll, and whether it started a new boot."""

    record: DeviceRecord
    new_boot: bool


class DeviceRegistry:
    """Enrollment, liveness and audit events of the fleet, safe to share between threads.

    *budget* rations the events written per device, so a device that keeps
    misbehaving (or keeps rebooting) cannot fill the audit table; what is
    rationed away is counted and reported in the next event that is written.
    Security events are not rationed with the rest: a clone that first spends
    its device's budget on garbage must still leave its boot regression on
    record; only an identical repeat is held back.
    """

    def __init__(self, *, database: Database, budget: EventBudget | None = None) -> None:
        self._database = database
        self._budget = budget or EventBudget()
        self._security_events = OncePerWindow(window_s=SECURITY_REPEAT_S)
        self._heartbeat_statements: dict[int, str] = {}
        dialect_impl = _DEVICES.c.last_seen.type.dialect_impl(database.engine.dialect)
        # Timestamps go through the column type's own conversion, so a batch stores
        # them exactly as every other statement does.
        self._timestamp = dialect_impl.bind_processor(database.engine.dialect) or _as_is
        dialect = sqlite if database.dialect == "sqlite" else postgresql
        self._insert_device = (
            dialect.insert(_DEVICES)
            .on_conflict_do_nothing(index_elements=[_DEVICES.c.device_id])
            .returning(*_DEVICES.c)
        )

    def enroll(
        self,
        device_id: str,
        *,
        hwmodel: str,
        swname: str,
        swversion: str,
        rot_claimed: str,
        boot_count: int,
        heartbeat_interval: int,
        now: datetime,
        cert_fingerprint: str | None = None,
        tx: Connection | None = None,
    ) -> Enrollment:
        """Insert the device or refresh it; a new boot starts a new heartbeat sequence.

        Raises :class:`Replayed` when *boot_count* is lower than one already seen
        (after recording a security event); the stored record is left untouched.
        """
        claim = Claim(
            device_id=device_id,
            hwmodel=hwmodel,
            swname=swname,
            swversion=swversion,
            rot_claimed=rot_claimed,
            boot_count=boot_count,
            at=now,
            cert_fingerprint=cert_fingerprint,
        )
        with self._in(tx, "enroll") as connection:
            [outcome] = self.enrollments(
                [claim], heartbeat_interval=heartbeat_interval, tx=connection
            )
            if isinstance(outcome, ProtocolError):
                raise outcome
            return outcome

    def enrollments(
        self, claims: Sequence[Claim], *, heartbeat_interval: int, tx: Connection
    ) -> list[Enrollment | ProtocolError]:
        """Enroll many devices (one claim each) at once; an outcome per claim, in order.

        A fleet that boots together enrolls together, so first enrollments are one
        multi-row insert; only devices already known go on to the conditional
        updates (a new boot, the same boot, or a refusal), one by one.
        """
        if len({claim.device_id for claim in claims}) != len(claims):
            raise ValueError("a batch holds at most one enroll per device")
        if not _is_int(heartbeat_interval) or not 0 < heartbeat_interval <= MAX_HEARTBEAT_INTERVAL:
            raise ValueError("heartbeat_interval must be a positive number of seconds")
        rows = [_device_values(claim, heartbeat_interval) for claim in claims]
        inserted = (
            {row["device_id"]: row for row in tx.execute(self._insert_device, rows).mappings()}
            if rows
            else {}
        )
        outcomes: list[Enrollment | ProtocolError] = []
        events: list[dict[str, Any]] = []
        for claim, values in zip(claims, rows, strict=True):
            row = inserted.get(claim.device_id)
            new_boot = row is not None
            if row is None:
                try:
                    row, new_boot = self._refresh(tx, values)
                except Replayed as refusal:
                    outcomes.append(refusal)
                    continue
            outcomes.append(Enrollment(record=DeviceRecord.from_row(row), new_boot=new_boot))
            if new_boot:
                events.append(
                    {
                        "device_id": claim.device_id,
                        "kind": "enrolled",
                        "code": None,
                        "reason": (
                            f"boot {claim.boot_count}: {claim.rot_claimed} root of trust"
                            f" (claimed), {claim.hwmodel} running {claim.swname} {claim.swversion}"
                        ),
                        "at": values["enrolled_at"],
                    }
                )
        self._write_events(tx, events)
        return outcomes

    def heartbeat(
        self,
        device_id: str,
        *,
        seq: int,
        uptime: int,
        boot_count: int,
        now: datetime,
        tx: Connection | None = None,
    ) -> None:
        """Record that the device is alive, if this report is newer than every one before.

        Raises :class:`NotEnrolled` for an unknown device and :class:`Replayed`
        for a sequence number that is not after the last one in this boot, or a
        boot before the last one seen (which also records a security event).
        """
        report = Heartbeat(
            device_id=device_id, seq=seq, uptime=uptime, boot_count=boot_count, at=now
        )
        with self._in(tx, "heartbeat") as connection:
            [refusal] = self.heartbeats([report], tx=connection)
            if refusal is not None:
                raise refusal

    def heartbeats(
        self, reports: Sequence[Heartbeat], *, tx: Connection
    ) -> list[ProtocolError | None]:
        """Record many devices' heartbeats (one each) with one statement; a refusal per report.

        This is the fleet's most frequent write, so it is one conditional
        ``UPDATE ... FROM (VALUES ...)`` for the whole batch: one round trip to
        the database, however many devices. The rows it did not match are the
        refused reports, and only those are read back, to say why.
        """
        if len({report.device_id for report in reports}) != len(reports):
            raise ValueError("a batch holds at most one heartbeat per device")
        for report in reports:
            _check_device_id(report.device_id)
            _check_counter(report.seq, name="seq")
            _check_counter(report.uptime, name="uptime")
            _check_counter(report.boot_count, name="boot_count")
            require_aware(report.at, name="now")
        accepted: set[str] = set()
        if self._database.dialect == "postgresql":
            # Rows are locked in one order, whatever order the batch came in, so two
            # gateways serving overlapping devices wait for each other, never deadlock.
            tx.execute(
                select(_DEVICES.c.device_id)
                .where(_DEVICES.c.device_id.in_(sorted(report.device_id for report in reports)))
                .order_by(_DEVICES.c.device_id)
                .with_for_update()
            ).all()
        for start in range(0, len(reports), _ROWS_PER_STATEMENT):
            chunk = reports[start : start + _ROWS_PER_STATEMENT]
            sql = self._heartbeat_sql(len(chunk))
            params = tuple(
                value
                for report in chunk
                for value in (
                    report.device_id,
                    report.seq,
                    report.uptime,
                    report.boot_count,
                    self._timestamp(report.at),
                )
            )
            accepted.update(row[0] for row in tx.exec_driver_sql(sql, params))
        return [
            None if report.device_id in accepted else self._refusal(tx, report)
            for report in reports
        ]

    def _refusal(self, connection: Connection, report: Heartbeat) -> ProtocolError:
        """Why the conditional write did not take this report (read only when it did not)."""
        known = connection.execute(
            select(_DEVICES.c.boot_count, _DEVICES.c.last_seq).where(
                _DEVICES.c.device_id == report.device_id
            )
        ).one_or_none()
        if known is None:
            return NotEnrolled(f"device {report.device_id!r} is not enrolled")
        if report.boot_count < known.boot_count:
            try:
                self._boot_regressed(connection, report.device_id, report.boot_count, report.at)
            except Replayed as refusal:
                return refusal
        return Replayed(
            f"heartbeat {report.seq} is not after {known.last_seq} in boot {report.boot_count}:"
            " replayed or reordered"
        )

    def _heartbeat_sql(self, rows: int) -> str:
        """The batch statement for *rows* reports, in this driver's parameter style."""
        cached = self._heartbeat_statements.get(rows)
        if cached is not None:
            return cached
        mark = "?" if self._database.engine.dialect.paramstyle == "qmark" else "%s"
        row = "(" + ", ".join([mark] * 5) + ")"
        # Only placeholders are put into the text; every value is a bound parameter.
        sql = (
            f"WITH v(id, seq, uptime, boot, seen) AS (VALUES {', '.join([row] * rows)}) "  # noqa: S608
            "UPDATE devices SET last_seen = v.seen, last_seq = v.seq, last_uptime = v.uptime,"
            " boot_count = v.boot FROM v WHERE devices.device_id = v.id"
            " AND (devices.boot_count < v.boot OR (devices.boot_count = v.boot"
            " AND (devices.last_seq IS NULL OR devices.last_seq < v.seq)))"
            " RETURNING devices.device_id"
        )
        self._heartbeat_statements[rows] = sql
        return sql

    def get(self, device_id: str) -> DeviceRecord | None:
        """The device's record, or None if it never enrolled."""
        with self._in(None, "get") as connection:
            row = (
                connection.execute(select(_DEVICES).where(_DEVICES.c.device_id == device_id))
                .mappings()
                .one_or_none()
            )
        return None if row is None else DeviceRecord.from_row(row)

    def list_devices(self) -> list[DeviceRecord]:
        """Every enrolled device, ordered by device id."""
        with self._in(None, "list devices") as connection:
            rows = connection.execute(select(_DEVICES).order_by(_DEVICES.c.device_id)).mappings()
            return [DeviceRecord.from_row(row) for row in rows]

    def record_event(
        self,
        *,
        device_id: str | None,
        kind: str,
        code: str | None,
        reason: str,
        now: datetime,
        tx: Connection | None = None,
    ) -> bool:
        """Append an audit event unless the device's budget is spent; True if written.

        The device need not exist (rejections of unknown ids are events too).
        """
        if not kind:
            raise ValueError("kind must not be empty")
        at = require_aware(now, name="now")
        with self._in(tx, "record event") as connection:
            return self._write_event(
                connection, device_id=device_id, kind=kind, code=code, reason=reason, at=at
            )

    def record_rejection(
        self, device_id: str, error: ProtocolError, now: datetime, tx: Connection | None = None
    ) -> bool:
        """The gateway's hook: a message from *device_id* was rejected with *error*."""
        return self.record_event(
            device_id=device_id,
            kind="rejected",
            code=error.code,
            reason=error.reason,
            now=now,
            tx=tx,
        )

    def events(self, *, limit: int = 100) -> list[EventRecord]:
        """The newest *limit* events, newest first (ties broken by insertion order)."""
        if not _is_int(limit) or limit < 1:
            raise ValueError("limit must be a positive integer")
        statement = select(_EVENTS).order_by(_EVENTS.c.at.desc(), _EVENTS.c.id.desc()).limit(limit)
        with self._in(None, "list events") as connection:
            return [EventRecord.from_row(row) for row in connection.execute(statement).mappings()]

    def prune_events(
        self,
        now: datetime,
        *,
        keep: timedelta = EVENT_RETENTION,
        keep_security: timedelta = SECURITY_RETENTION,
        max_rows: int = MAX_EVENTS,
    ) -> int:
        """Delete what the audit trail no longer needs; how many events were deleted.

        Rationing bounds how fast a device adds events, not how many pile up over
        months: events older than *keep* go (security events after *keep_security*),
        and past *max_rows* the oldest other events go first. In short
        transactions of at most 10,000 rows, so a large trail never locks the
        table for long.
        """
        at = require_aware(now, name="now")
        c = _EVENTS.c
        deleted = self._delete_events((c.kind != SECURITY) & (c.at < at - keep))
        deleted += self._delete_events((c.kind == SECURITY) & (c.at < at - keep_security))
        with self._in(None, "count events") as connection:
            total = connection.execute(select(func.count()).select_from(_EVENTS)).scalar_one()
        if total > max_rows:
            deleted += self._delete_events(c.kind != SECURITY, limit=total - max_rows)
        return deleted

    def _delete_events(self, condition: ColumnElement[bool], *, limit: int | None = None) -> int:
        deleted = 0
        while limit is None or deleted < limit:
            chunk = _PRUNE_CHUNK if limit is None else min(_PRUNE_CHUNK, limit - deleted)
            oldest = select(_EVENTS.c.id).where(condition).order_by(_EVENTS.c.id).limit(chunk)
            with self._in(None, "prune events") as connection:
                removed = connection.execute(
                    delete(_EVENTS).where(_EVENTS.c.id.in_(oldest.scalar_subquery()))
                ).rowcount
            deleted += removed
            if removed < chunk:
                break
        return deleted

    def _boot_regressed(
        self, connection: Connection, device_id: str, boot_count: int, at: datetime
    ) -> None:
        """Record the security event and refuse: this boot comes before one already seen."""
        known = connection.execute(
            select(_DEVICES.c.boot_count).where(_DEVICES.c.device_id == device_id)
        ).scalar_one()
        reason = (
            f"boot count went backwards: {boot_count} after {known}"
            " (a cloned or rolled-back device, or a replay)"
        )
        if self._security_events.admit((device_id, boot_count, known), at.timestamp()):
            log.warning("security event for %s: %s", device_id, reason)
            connection.execute(
                _INSERT_EVENT,
                {
                    "device_id": device_id,
                    "at": at,
                    "kind": SECURITY,
                    "code": BOOT_REGRESSED,
                    "reason": reason,
                },
            )
        raise Replayed(reason)

    def _write_event(
        self,
        connection: Connection,
        *,
        device_id: str | None,
        kind: str,
        code: str | None,
        reason: str,
        at: datetime,
    ) -> bool:
        event = {"device_id": device_id, "at": at, "kind": kind, "code": code, "reason": reason}
        return self._write_events(connection, [event]) == 1

    def _write_events(self, connection: Connection, events: list[dict[str, Any]]) -> int:
        """Insert those of *events* each device's budget admits, in one statement; how many."""
        admitted: list[dict[str, Any]] = []
        for event in events:
            accepted, suppressed = self._budget.admit(
                event["device_id"] or "", event["at"].timestamp()
            )
            if not accepted:
                continue
            if suppressed:
                note = f" ({suppressed} earlier events of this device were not recorded)"
                event = {**event, "reason": event["reason"] + note}
            admitted.append(event)
        if admitted:
            connection.execute(_INSERT_EVENT, admitted)
        return len(admitted)

    @contextmanager
    def _in(self, tx: Connection | None, operation: str) -> Iterator[Connection]:
        """The caller's transaction, or a new one of our own.

        A refusal (ProtocolError) commits what was written before it, as in the
        gateway's batches: the security event that explains a refusal must stay.
        """
        if tx is not None:
            yield tx
            return
        refusal: ProtocolError | None = None
        with self._database.transaction(operation) as connection:
            try:
                yield connection
            except ProtocolError as exc:
                refusal = exc
        if refusal is not None:
            raise refusal

    def _refresh(self, connection: Connection, values: dict[str, Any]) -> tuple[RowMapping, bool]:
        """(the stored row, whether this enroll began a boot) for a device already known.

        A higher boot count replaces the record and starts a new sequence; the same
        boot count refreshes what the device claims and keeps the sequence; a lower
        one refuses. Racing enrolls each take exactly one of these paths, because
        each step writes only if its condition holds.
        """
        params = {f"p_{name}": value for name, value in values.items()}
        newer_boot = connection.execute(_ENROLL_NEW_BOOT, params).mappings().one_or_none()
        if newer_boot is not None:
            return newer_boot, True
        same_boot = connection.execute(_ENROLL_SAME_BOOT, params).mappings().one_or_none()
        if same_boot is not None:
            return same_boot, False
        device_id, boot_count = values["device_id"], values["boot_count"]
        self._boot_regressed(connection, device_id, boot_count, values["last_seen"])
        raise AssertionError("unreachable")


def _device_values(claim: Claim, heartbeat_interval: int) -> dict[str, Any]:
    """The devices row a first enrollment inserts (checked: a bad value is the caller's bug)."""
    _check_device_id(claim.device_id)
    if claim.rot_claimed not in ROOTS_OF_TRUST:
        raise ValueError(
            f"rot_claimed must be one of {', '.join(ROOTS_OF_TRUST)}, not {claim.rot_claimed!r}"
        )
    _check_counter(claim.boot_count, name="boot_count")
    at = require_aware(claim.at, name="now")
    return {
        "device_id": claim.device_id,
        "enrolled_at": at,
        "last_seen": at,
        "hwmodel": claim.hwmodel,
        "swname": claim.swname,
        "swversion": claim.swversion,
        "rot_claimed": claim.rot_claimed,
        "rot_verified": None,
        "cert_fingerprint": _normalise_fingerprint(claim.cert_fingerprint),
        "boot_count": claim.boot_count,
        "last_seq": None,
        "last_uptime": None,
        "heartbeat_interval": heartbeat_interval,
    }


def _as_is(value: Any) -> Any:
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_device_id(device_id: str) -> None:
    if not isinstance(device_id, str) or not device_id:
        raise ValueError("device_id must be a non-empty string")


def _check_counter(value: int, *, name: str) -> None:
    if not _is_int(value) or not 0 <= value <= MAX_COUNTER:
        raise ValueError(f"{name} must be an integer between 0 and {MAX_COUNTER}")


def _normalise_fingerprint(fingerprint: str | None) -> str | None:
    if fingerprint is None:
        return None
    lowered = fingerprint.lower()
    if len(lowered) != FINGERPRINT_LENGTH or not set(lowered) <= set(string.hexdigits):
        raise ValueError("cert_fingerprint must be the SHA-256 of the certificate, in hex")
    return lowered
