"""The update service's tables: what each device reported of its updates, and its last key.

These models are the reference the Alembic migrations in ``migrations/`` are
checked against; the migrations, not ``create_all``, build a real database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from device_runtime.core.update_status import STATES
from fleet_platform.storage.tables import Base
from fleet_platform.storage.timestamps import UtcDateTime

STATE_CHECK = "state IN (" + ", ".join(f"'{state}'" for state in STATES) + ")"


class UpdateReporter(Base):
    """One row per reporting device: the last idempotency key it recorded.

    Every report upserts this row on the condition that its key is newer, so
    the row is the device's lock and its high-water mark in one: two gateways
    holding the same report cannot both record it, and an older key matches
    nothing.
    """

    __tablename__ = "update_reporters"
    __table_args__ = (
        CheckConstraint("boot_count >= 0", name="boot_count_non_negative"),
        CheckConstraint("seq >= 1", name="seq_positive"),
    )

    device_id: Mapped[str] = mapped_column(Text, primary_key=True)
    boot_count: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime)


class UpdateHistoryEntry(Base):
    """One step of one device's update, as it reported it; progress reports of one download
    are merged into one row (``first_at`` is when it began, ``at`` the latest report)."""

    __tablename__ = "update_history"
    __table_args__ = (
        CheckConstraint(STATE_CHECK, name="state_known"),
        CheckConstraint("done IS NULL OR (total IS NOT NULL AND done <= total)", name="progress"),
        Index("ix_update_history_device_id_id", "device_id", "id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    device_id: Mapped[str] = mapped_column(Text)
    boot_count: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(Text)
    from_version: Mapped[str] = mapped_column(Text)
    to_version: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    done: Mapped[int | None] = mapped_column(BigInteger)
    total: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(Text)
    first_at: Mapped[datetime] = mapped_column(UtcDateTime)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
