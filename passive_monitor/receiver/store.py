"""Unmanaged (legacy) assets and passive-monitor alerts, as the sites' sensors report them.

Sensors resend their whole view periodically and after outages, so every write
is an idempotent upsert keyed by what the sensor considers identity: an asset
by (site, IP address), an alert by (site, the alert's stable id). Re-sending
therefore refreshes rows instead of duplicating them. As in the device
registry, each method is one short transaction whose first statement writes.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from device_runtime.core.errors import StorageError
from device_runtime.core.protocol import MAX_COUNTER
from fleet_platform.storage.engine import Database
from fleet_platform.storage.timestamps import require_aware
from passive_monitor.receiver.records import LegacyAssetRecord, MonitorAlertRecord
from passive_monitor.receiver.tables import LegacyAsset, MonitorAlert
from passive_monitor.site import check_site

"""Largest count a BIGINT column holds."""


class AssetRegistry:
    """Legacy assets and monitor alerts of every site, safe to share between threads."""

    def __init__(self, *, database: Database) -> None:
        self._database = database

    def upsert_assets(
        self, site: str, assets: Sequence[Mapping[str, Any]], *, now: datetime
    ) -> int:
        """Insert or refresh *assets* (asset dicts as the sensor writes them); returns how many.

        An asset that appears twice in one batch counts once, the later copy winning,
        since one statement may not update the same row twice.
        """
        check_site(site)
        at = require_aware(now, name="now")
        rows: dict[str, dict[str, Any]] = {}
        for asset in assets:
            row = _asset_row(site, asset, at)
            rows[row["ip"]] = row
        if not rows:
            return 0
        with self._transaction("upsert assets") as session:
            session.execute(self._upsert_assets(), list(rows.values()))
        return len(rows)

    def list_assets(self, site: str | None = None) -> list[LegacyAssetRecord]:
        """Every asset, or one site's, ordered by site then numeric address."""
        statement = select(LegacyAsset)
        if site is not None:
            statement = statement.where(LegacyAsset.site == check_site(site))
        with self._transaction("list assets") as session:
            records = [LegacyAssetRecord.from_model(row) for row in session.scalars(statement)]
        return sorted(records, key=_asset_order)

    def record_alerts(
        self, site: str, alerts: Sequence[Mapping[str, Any]], *, now: datetime
    ) -> int:
        """Insert or refresh *alerts* (alert dicts as the sensor writes them); returns how many.

        The stored count is the largest ever reported: a restarted sensor counts an
        alert from one again, and that must not make the fleet's count go backwards.
        """
        check_site(site)
        at = require_aware(now, name="now")
        rows: dict[str, dict[str, Any]] = {}
        for alert in alerts:
            row = _alert_row(site, alert, at)
            known = rows.get(row["alert_id"])
            if known is None or row["count"] >= known["count"]:
                rows[row["alert_id"]] = row
        if not rows:
            return 0
        with self._transaction("record alerts") as session:
            session.execute(self._upsert_alerts(), list(rows.values()))
        return len(rows)

    def list_alerts(self, site: str | None = None, *, limit: int = 100) -> list[MonitorAlertRecord]:
        """The *limit* most recently reported alerts, newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError("limit must be a positive integer")
        statement = select(MonitorAlert)
        if site is not None:
            statement = statement.where(MonitorAlert.site == check_site(site))
        statement = statement.order_by(MonitorAlert.last_seen.desc(), MonitorAlert.id.desc())
        with self._transaction("list alerts") as session:
            return [
                MonitorAlertRecord.from_model(row)
                for row in session.scalars(statement.limit(limit))
            ]

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[Session]:
        """One transaction; driver failures surface as the protocol's StorageError."""
        try:
            with self._database.session() as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise StorageError(f"{operation} failed: {type(exc).__name__}") from exc

    def _upsert_assets(self) -> sqlite.Insert | postgresql.Insert:
        keys = [LegacyAsset.site, LegacyAsset.ip]
        refreshed = (
            "last_seen",
            "vendor",
            "product",
            "firmware",
            "serial",
            "protocols",
            "document",
        )
        if self._database.dialect == "sqlite":
            lite = sqlite.insert(LegacyAsset)
            return lite.on_conflict_do_update(
                index_elements=keys, set_={name: lite.excluded[name] for name in refreshed}
            )
        pg = postgresql.insert(LegacyAsset)
        return pg.on_conflict_do_update(
            index_elements=keys, set_={name: pg.excluded[name] for name in refreshed}
        )

    def _upsert_alerts(self) -> sqlite.Insert | postgresql.Insert:
        keys = [MonitorAlert.site, MonitorAlert.alert_id]
        refreshed = ("engine", "severity", "title", "technique", "last_seen", "document")
        if self._database.dialect == "sqlite":
            lite = sqlite.insert(MonitorAlert)
            count: ColumnElement[int] = func.max(MonitorAlert.count, lite.excluded["count"])
            return lite.on_conflict_do_update(
                index_elements=keys,
                set_={**{name: lite.excluded[name] for name in refreshed}, "count": count},
            )
        pg = postgresql.insert(MonitorAlert)
        count = func.greatest(MonitorAlert.count, pg.excluded["count"])
        return pg.on_conflict_do_update(
            index_elements=keys,
            set_={**{name: pg.excluded[name] for name in refreshed}, "count": count},
        )


def _asset_row(site: str, asset: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    if not isinstance(asset, Mapping):
        raise ValueError("each asset must be a mapping")
    ip = _address(asset.get("ip"), name="asset ip")
    roles = asset.get("roles", {})
    if not isinstance(roles, Mapping) or not all(isinstance(name, str) for name in roles):
        raise ValueError(f"asset {ip}: roles must map protocol names to roles")
    protocols = sorted(roles)
    if any(not name or "," in name for name in protocols):
        raise ValueError(f"asset {ip}: protocol names must be non-empty and contain no comma")
    return {
        "site": site,
        "ip": ip,
        "first_seen": at,
        "last_seen": at,
        "vendor": _optional_text(asset, "vendor"),
        "product": _optional_text(asset, "product"),
        "firmware": _optional_text(asset, "firmware"),
        "serial": _optional_text(asset, "serial"),
        "protocols": ",".join(protocols),
        "document": _document({**asset, "ip": ip}),
    }


def _alert_row(site: str, alert: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    if not isinstance(alert, Mapping):
        raise ValueError("each alert must be a mapping")
    alert_id = alert.get("id")
    if not isinstance(alert_id, str) or not alert_id:
        raise ValueError("alert id must be a non-empty string")
    count = alert.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= MAX_COUNTER:
        raise ValueError(f"alert {alert_id}: count must be an integer between 1 and {MAX_COUNTER}")
    return {
        "site": site,
        "alert_id": alert_id,
        "engine": _text(alert, "engine"),
        "severity": _text(alert, "severity"),
        "title": _text(alert, "title"),
        "technique": _optional_text(alert, "technique"),
        "first_seen": at,
        "last_seen": at,
        "count": count,
        "document": _document(alert),
    }


def _address(value: object, *, name: str) -> str:
    """The canonical text form, so one host never becomes two rows by spelling."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an IP address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ValueError(f"{name} {value!r} is not an IP address") from exc


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string")
    return value


def _optional_text(item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string or null")
    return value


def _document(item: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(item), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not representable as JSON: {exc}") from exc


def _asset_order(record: LegacyAssetRecord) -> tuple[str, int, int]:
    address = ipaddress.ip_address(record.ip)
    return (record.site, address.version, int(address))
