"""The fleet server's tables, as typed SQLAlchemy declarative models.

These models are the reference the Alembic migrations are checked against;
the migrations, not ``create_all``, are what build a real database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, MetaData, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sevenfold.storage.timestamps import UtcDateTime

ROOTS_OF_TRUST = ("software", "tpm", "dice")
"""Root-of-trust kinds a device may enroll with."""

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so migrations can address them on every engine."""


class Base(DeclarativeBase):
    """Declarative root holding the shared metadata and naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Device(Base):
    """One enrolled device and the latest state its heartbeats reported."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint("rot IN ('software', 'tpm', 'dice')", name="rot_kind"),
        CheckConstraint("boot_count >= 0", name="boot_count_non_negative"),
        CheckConstraint("heartbeat_interval > 0", name="heartbeat_interval_positive"),
    )

    device_id: Mapped[str] = mapped_column(Text, primary_key=True)
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    hwmodel: Mapped[str] = mapped_column(Text)
    swname: Mapped[str] = mapped_column(Text)
    swversion: Mapped[str] = mapped_column(Text)
    rot: Mapped[str] = mapped_column(Text)
    cert_fingerprint: Mapped[str | None] = mapped_column(Text)
    boot_count: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    last_uptime: Mapped[int | None] = mapped_column(BigInteger)
    heartbeat_interval: Mapped[int] = mapped_column(Integer)


class DeviceEvent(Base):
    """An audit entry; ``device_id`` has no foreign key so rejections of unknown ids fit."""

    __tablename__ = "device_events"
    __table_args__ = (Index("ix_device_events_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(Text)
    code: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
