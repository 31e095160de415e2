"""Immutable snapshots of stored rows, handed to callers instead of ORM objects.

A snapshot cannot lazy-load or flush behind the caller's back, so it is safe to
pass between threads and to keep after its session has closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from attestation_server.tables import Device, DeviceEvent
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
    rot: str
    cert_fingerprint: str | None
    boot_count: int
    last_seq: int | None
    last_uptime: int | None
    heartbeat_interval: int

    @classmethod
    def from_model(cls, device: Device) -> DeviceRecord:
        """Snapshot a loaded row while its session is still open."""
        return cls(
            device_id=device.device_id,
            enrolled_at=device.enrolled_at,
            last_seen=device.last_seen,
            hwmodel=device.hwmodel,
            swname=device.swname,
            swversion=device.swversion,
            rot=device.rot,
            cert_fingerprint=device.cert_fingerprint,
            boot_count=device.boot_count,
            last_seq=device.last_seq,
            last_uptime=device.last_uptime,
            heartbeat_interval=device.heartbeat_interval,
        )

    def status(self, now: datetime) -> DeviceStatus:
        """Derived on read, never stored, so it can't go stale when heartbeats stop."""
        silence = require_aware(now, name="now") - self.last_seen
        allowed = timedelta(seconds=MISSED_HEARTBEATS_BEFORE_OFFLINE * self.heartbeat_interval)
        return "online" if silence <= allowed else "offline"


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
    def from_model(cls, event: DeviceEvent) -> EventRecord:
        """Snapshot a loaded row while its session is still open."""
        return cls(
            id=event.id,
            device_id=event.device_id,
            at=event.at,
            kind=event.kind,
            code=event.code,
            reason=event.reason,
        )
