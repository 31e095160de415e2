"""The registry of enrolled devices and the audit trail of what happened to them.

Every method is one short transaction whose first statement writes (an upsert,
an UPDATE ... RETURNING or an INSERT). On SQLite that takes the write lock up
front, where the busy timeout applies, instead of upgrading a read snapshot that
another thread may already have outdated; on PostgreSQL the row lock makes
concurrent heartbeats for one device serialize rather than lose updates.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from attestation_server.records import DeviceRecord, EventRecord
from attestation_server.tables import Device, DeviceEvent
from device_runtime.core.errors import NotEnrolled, ProtocolError, StorageError
from device_runtime.core.protocol import ROOTS_OF_TRUST
from fleet_platform.storage import Database
from fleet_platform.storage.timestamps import require_aware

MAX_COUNTER = 2**63 - 1
"""Largest counter a BIGINT column holds; devices report counters as CBOR uints."""

MAX_HEARTBEAT_INTERVAL = 2**31 - 1
"""Largest heartbeat interval, in seconds, an INTEGER column holds."""

FINGERPRINT_LENGTH = 64
"""Hex digits of a SHA-256 digest."""


class DeviceRegistry:
    """Enrollment, liveness and audit events of the fleet, safe to share between threads."""

    def __init__(self, *, database: Database) -> None:
        self._database = database

    def enroll(
        self,
        device_id: str,
        *,
        hwmodel: str,
        swname: str,
        swversion: str,
        rot: str,
        boot_count: int,
        heartbeat_interval: int,
        cert_fingerprint: str | None,
        now: datetime,
    ) -> DeviceRecord:
        """Insert the device, or replace its record when it enrolls again.

        Re-enrollment starts a new heartbeat sequence, so the last sequence number
        and uptime are cleared rather than compared against the new ones.
        """
        _check_device_id(device_id)
        if rot not in ROOTS_OF_TRUST:
            raise ValueError(f"rot must be one of {', '.join(ROOTS_OF_TRUST)}, not {rot!r}")
        _check_counter(boot_count, name="boot_count")
        if not _is_int(heartbeat_interval) or not 0 < heartbeat_interval <= MAX_HEARTBEAT_INTERVAL:
            raise ValueError("heartbeat_interval must be a positive number of seconds")
        at = require_aware(now, name="now")
        values: dict[str, Any] = {
            "device_id": device_id,
            "enrolled_at": at,
            "last_seen": at,
            "hwmodel": hwmodel,
            "swname": swname,
            "swversion": swversion,
            "rot": rot,
            "cert_fingerprint": _normalise_fingerprint(cert_fingerprint),
            "boot_count": boot_count,
            "last_seq": None,
            "last_uptime": None,
            "heartbeat_interval": heartbeat_interval,
        }
        with self._transaction("enroll") as session:
            device = session.scalars(self._upsert_device(values)).one()
            record = DeviceRecord.from_model(device)
            session.add(
                DeviceEvent(
                    device_id=device_id,
                    at=at,
                    kind="enrolled",
                    code=None,
                    reason=f"{rot} root of trust, {hwmodel} running {swname} {swversion}",
                )
            )
        return record

    def heartbeat(
        self, device_id: str, *, seq: int, uptime: int, boot_count: int, now: datetime
    ) -> DeviceRecord:
        """Record that the device is alive; raises NotEnrolled for an unknown device."""
        _check_device_id(device_id)
        _check_counter(seq, name="seq")
        _check_counter(uptime, name="uptime")
        _check_counter(boot_count, name="boot_count")
        statement = (
            update(Device)
            .where(Device.device_id == device_id)
            .values(
                last_seen=require_aware(now, name="now"),
                last_seq=seq,
                last_uptime=uptime,
                boot_count=boot_count,
            )
            .returning(Device)
        )
        with self._transaction("heartbeat") as session:
            device = session.scalars(statement).one_or_none()
            if device is None:
                raise NotEnrolled(f"device {device_id!r} is not enrolled")
            return DeviceRecord.from_model(device)

    def get(self, device_id: str) -> DeviceRecord | None:
        """The device's record, or None if it never enrolled."""
        with self._transaction("get") as session:
            device = session.get(Device, device_id)
            return None if device is None else DeviceRecord.from_model(device)

    def list_devices(self) -> list[DeviceRecord]:
        """Every enrolled device, ordered by device id."""
        with self._transaction("list devices") as session:
            devices = session.scalars(select(Device).order_by(Device.device_id))
            return [DeviceRecord.from_model(device) for device in devices]

    def record_event(
        self, *, device_id: str | None, kind: str, code: str | None, reason: str, now: datetime
    ) -> None:
        """Append an audit event; the device need not exist (rejections of unknown ids)."""
        if not kind:
            raise ValueError("kind must not be empty")
        event = DeviceEvent(
            device_id=device_id,
            at=require_aware(now, name="now"),
            kind=kind,
            code=code,
            reason=reason,
        )
        with self._transaction("record event") as session:
            session.add(event)

    def record_rejection(self, device_id: str, error: ProtocolError, now: datetime) -> None:
        """The gateway's hook: a message from *device_id* was rejected with *error*."""
        self.record_event(
            device_id=device_id, kind="rejected", code=error.code, reason=error.reason, now=now
        )

    def events(self, *, limit: int = 100) -> list[EventRecord]:
        """The newest *limit* events, newest first (ties broken by insertion order)."""
        if not _is_int(limit) or limit < 1:
            raise ValueError("limit must be a positive integer")
        statement = (
            select(DeviceEvent).order_by(DeviceEvent.at.desc(), DeviceEvent.id.desc()).limit(limit)
        )
        with self._transaction("list events") as session:
            return [EventRecord.from_model(event) for event in session.scalars(statement)]

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[Session]:
        """One transaction; driver failures surface as the protocol's StorageError."""
        try:
            with self._database.session() as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise StorageError(f"{operation} failed: {type(exc).__name__}") from exc

    def _upsert_device(self, values: dict[str, Any]) -> ReturningInsert[Device]:
        replaced = {name: value for name, value in values.items() if name != "device_id"}
        if self._database.dialect == "sqlite":
            return (
                sqlite.insert(Device)
                .values(values)
                .on_conflict_do_update(index_elements=[Device.device_id], set_=replaced)
                .returning(Device)
            )
        return (
            postgresql.insert(Device)
            .values(values)
            .on_conflict_do_update(index_elements=[Device.device_id], set_=replaced)
            .returning(Device)
        )


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
