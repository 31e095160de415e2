"""Durable state of the fleet server: devices, audit trail, legacy assets and their alerts.

SQLite is the embedded default and PostgreSQL the shared deployment; both are
migrated by the Alembic scripts shipped in this package.
"""

from sevenfold.storage.assets import SITE_PATTERN, AssetRegistry, check_site
from sevenfold.storage.devices import DeviceRegistry
from sevenfold.storage.engine import Database, open_database
from sevenfold.storage.models import ROOTS_OF_TRUST
from sevenfold.storage.records import (
    DeviceRecord,
    DeviceStatus,
    EventRecord,
    LegacyAssetRecord,
    MonitorAlertRecord,
)

__all__ = [
    "ROOTS_OF_TRUST",
    "SITE_PATTERN",
    "AssetRegistry",
    "Database",
    "DeviceRecord",
    "DeviceRegistry",
    "DeviceStatus",
    "EventRecord",
    "LegacyAssetRecord",
    "MonitorAlertRecord",
    "check_site",
    "open_database",
]
