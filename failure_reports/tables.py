"""The failure-report service's table: one row per record a device's outbox uploaded.

The model is the reference the Alembic migration in ``migrations/`` is checked
against; the migration, not ``create_all``, builds a real database. The unique
key (device, boot, seq) is what makes ingest exactly-once: a resend's insert
conflicts and writes nothing, whichever gateway holds it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from device_runtime.core.failure_capture import KINDS
from fleet_platform.storage.tables import Base
from fleet_platform.storage.timestamps import UtcDateTime

KIND_CHECK = "kind IN (" + ", ".join(f"'{kind}'" for kind in KINDS) + ")"


class FailureRecord(Base):
    """One uploaded record: its key, what it is, and what grouping will need of it
    (``fingerprint_input``: the exception type and its normalized frames; the firmware
    version; the hardware model the device enrolled with)."""

    __tablename__ = "failure_records"
    __table_args__ = (
        UniqueConstraint(
            "device_id", "boot_count", "seq", name="uq_failure_records_device_boot_seq"
        ),
        CheckConstraint(KIND_CHECK, name="kind_known"),
        CheckConstraint("boot_count >= 0 AND seq >= 1", name="key_in_range"),
        Index("ix_failure_records_kind_firmware", "kind", "firmware"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    device_id: Mapped[str] = mapped_column(Text)
    boot_count: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(Text)
    firmware: Mapped[str] = mapped_column(Text)
    hwmodel: Mapped[str | None] = mapped_column(Text)
    uptime_s: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str | None] = mapped_column(Text)
    """The crash's exception type, the reboot reason, or the security event."""
    message: Mapped[str | None] = mapped_column(Text)
    frames: Mapped[str | None] = mapped_column(Text)
    """The crash's frames as JSON ``[[file, line, function], ...]``, outermost first."""
    frames_omitted: Mapped[int | None] = mapped_column(BigInteger)
    fingerprint_input: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[str | None] = mapped_column(Text)
    """A metrics record's figures as JSON."""
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
