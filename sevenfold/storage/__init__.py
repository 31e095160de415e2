"""Durable state of the fleet server: devices, their liveness and an audit trail.

SQLite is the embedded default and PostgreSQL the shared deployment; both are
migrated by the Alembic scripts shipped in this package.
"""

from sevenfold.storage.devices import DeviceRegistry
from sevenfold.storage.engine import Database, open_database
from sevenfold.storage.models import ROOTS_OF_TRUST
from sevenfold.storage.records import DeviceRecord, DeviceStatus, EventRecord

__all__ = [
    "ROOTS_OF_TRUST",
    "Database",
    "DeviceRecord",
    "DeviceRegistry",
    "DeviceStatus",
    "EventRecord",
    "open_database",
]
