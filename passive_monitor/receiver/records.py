"""Immutable snapshots of stored rows, handed to callers instead of ORM objects.

A snapshot cannot lazy-load or flush behind the caller's back, so it is safe to
pass between threads and to keep after its session has closed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from passive_monitor.receiver.tables import LegacyAsset, MonitorAlert


@dataclass(frozen=True, kw_only=True)
class LegacyAssetRecord:
    """An unmanaged asset a site's sensor reported; times are when the server heard of it."""

    site: str
    ip: str
    first_seen: datetime
    last_seen: datetime
    vendor: str | None
    product: str | None
    firmware: str | None
    serial: str | None
    protocols: tuple[str, ...]
    document_json: str

    @classmethod
    def from_model(cls, asset: LegacyAsset) -> LegacyAssetRecord:
        """Snapshot a loaded row while its session is still open."""
        return cls(
            site=asset.site,
            ip=asset.ip,
            first_seen=asset.first_seen,
            last_seen=asset.last_seen,
            vendor=asset.vendor,
            product=asset.product,
            firmware=asset.firmware,
            serial=asset.serial,
            protocols=tuple(name for name in asset.protocols.split(",") if name),
            document_json=asset.document,
        )

    def document(self) -> dict[str, Any]:
        """The asset as the sensor described it; a fresh copy, so the record stays immutable."""
        parsed: dict[str, Any] = json.loads(self.document_json)
        return parsed


@dataclass(frozen=True, kw_only=True)
class MonitorAlertRecord:
    """A passive-monitor alert of one site; ``count`` never decreases across re-sends."""

    id: int
    site: str
    alert_id: str
    engine: str
    severity: str
    title: str
    technique: str | None
    first_seen: datetime
    last_seen: datetime
    count: int
    document_json: str

    @classmethod
    def from_model(cls, alert: MonitorAlert) -> MonitorAlertRecord:
        """Snapshot a loaded row while its session is still open."""
        return cls(
            id=alert.id,
            site=alert.site,
            alert_id=alert.alert_id,
            engine=alert.engine,
            severity=alert.severity,
            title=alert.title,
            technique=alert.technique,
            first_seen=alert.first_seen,
            last_seen=alert.last_seen,
            count=alert.count,
            document_json=alert.document,
        )

    def document(self) -> dict[str, Any]:
        """The alert as the sensor last reported it; a fresh copy on every call."""
        parsed: dict[str, Any] = json.loads(self.document_json)
        return parsed
