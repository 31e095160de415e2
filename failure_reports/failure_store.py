"""The failure records of every device, each stored once per (device, boot, seq).

Whether a record is new is decided by the database in the statement that
writes it: an insert that does nothing on a conflict with the unique key, so
of two gateways holding the same upload (a resend racing its original)
exactly one stores each record and the other hears it was there. Nothing is
read first. Keys need not follow each other: an outbox that dropped its
oldest records, or a record refused, leaves a gap, which is counted
(:meth:`FailureStore.missing`), never refused.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from failure_reports.failure_record import CheckedRecord
from failure_reports.tables import FailureRecord
from fleet_platform.storage import Database
from fleet_platform.storage.timestamps import require_aware

_RECORDS = cast(Table, FailureRecord.__table__)


class FailureStore:
    """Stores checked records and counts them; safe to share between threads."""

    def __init__(self, *, database: Database) -> None:
        self._database = database
        dialect = sqlite if database.dialect == "sqlite" else postgresql
        # RETURNING, not rowcount: the PostgreSQL driver reports -1 for this statement.
        self._insert = (
            dialect.insert(_RECORDS)
            .on_conflict_do_nothing(index_elements=["device_id", "boot_count", "seq"])
            .returning(_RECORDS.c.id)
        )

    def store(
        self,
        device_id: str,
        key: tuple[int, int],
        record: CheckedRecord,
        *,
        hwmodel: str | None,
        at: datetime,
        tx: Connection,
    ) -> bool:
        """Store *record* under *key* in *tx* (the gateway's batch); False when the key was
        stored before (a resend)."""
        require_aware(at, name="at")
        row = asdict(record) | {
            "device_id": device_id,
            "boot_count": key[0],
            "seq": key[1],
            "hwmodel": hwmodel,
            "received_at": at,
        }
        return tx.execute(self._insert, row).first() is not None

    def count(self, device_id: str | None = None) -> int:
        """Records stored, of one device or of all."""
        statement = select(func.count()).select_from(_RECORDS)
        if device_id is not None:
            statement = statement.where(_RECORDS.c.device_id == device_id)
        with self._database.transaction("count failure records") as connection:
            return int(connection.execute(statement).scalar_one())

    def missing(self, device_id: str) -> int:
        """Keys below each boot's highest that the device's records skip (dropped or
        refused on the way)."""
        per_boot = (
            select((func.max(_RECORDS.c.seq) - func.count()).label("gap"))
            .where(_RECORDS.c.device_id == device_id)
            .group_by(_RECORDS.c.boot_count)
            .subquery()
        )
        with self._database.transaction("count missing failure records") as connection:
            return int(
                connection.execute(select(func.coalesce(func.sum(per_boot.c.gap), 0))).scalar_one()
            )

    def rows(self, device_id: str) -> list[dict[str, object]]:
        """The device's records, oldest key first (for operators' tools to come, and tests)."""
        statement = (
            select(_RECORDS)
            .where(_RECORDS.c.device_id == device_id)
            .order_by(_RECORDS.c.boot_count, _RECORDS.c.seq)
        )
        with self._database.transaction("list failure records") as connection:
            return [dict(row) for row in connection.execute(statement).mappings()]
