"""Immutable snapshots of stored rows, handed to callers instead of database rows.

A snapshot cannot change behind the caller's back, so it is safe to pass
between threads and to keep after its transaction has ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import RowMapping

from attestation_server.tables import Device
from fleet_platform.storage.timestamps import require_aware

DeviceStatus = Literal["online", "offline"]

MISSED_HEARTBEATS_BEFORE_OFFLINE = 3
"""Heartbeat intervals a device may stay silent before it counts as offline."""


@dataclass(frozen=True, kw_only=True)
class DeviceRecord:
    """A device as last enrolled and heartbeated; timestamps are UTC."""

    device_id: str
    enrolled_at: datetime
    last_seen: datetime
    hwmodel: str
    swname: str
    swversion: str
    rot_claimed: str
    rot_verified: str | None
    cert_fingerprint: str | None
    boot_count: int
    last_seq: int | None
    last_uptime: int | None
    heartbeat_interval: int

    @classmethod
    def from_row(cls, row: RowMapping) -> DeviceRecord:
        """Snapshot a Core result row of the devices table."""
        return cls(**{name: row[name] for name in _DEVICE_FIELDS})

    def status(self, now: datetime) -> DeviceStatus:
        """Derived on read, never stored, so it can't go stale when heartbeats stop."""
        silence = require_aware(now, name="now") - self.last_seen
        allowed = timedelta(seconds=MISSED_HEARTBEATS_BEFORE_OFFLINE * self.heartbeat_interval)
        return "online" if silence <= allowed else "offline"


_DEVICE_FIELDS = tuple(column.name for column in Device.__table__.columns)


@dataclass(frozen=True, kw_only=True)
class EventRecord:
    """One audit entry; ``device_id`` may name a device that never enrolled."""

    id: int
    device_id: str | None
    at: datetime
    kind: str
    code: str | None
    reason: str

    @classmethod
    def from_row(cls, row: RowMapping) -> EventRecord:
        """Snapshot a Core result row of the events table."""
        return cls(
            id=row["id"],
            device_id=row["device_id"],
            at=row["at"],
            kind=row["kind"],
            code=row["code"],
            reason=row["reason"],
        )
