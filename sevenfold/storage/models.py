"""The fleet server's tables, as typed SQLAlchemy declarative models.

These models are the reference the Alembic migrations are checked against;
the migrations, not ``create_all``, are what build a real database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, MetaData, Text, UniqueConstraint
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


class LegacyAsset(Base):
    """A host a passive sensor saw at a site: gear that runs no agent and never enrolls.

    ``first_seen``/``last_seen`` are when the fleet server first and last received
    the asset from its site, on the server's clock; the sensor's own capture
    times (which may come from a replayed file) stay in ``document``.
    """

    __tablename__ = "legacy_assets"

    site: Mapped[str] = mapped_column(Text, primary_key=True)
    ip: Mapped[str] = mapped_column(Text, primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    vendor: Mapped[str | None] = mapped_column(Text)
    product: Mapped[str | None] = mapped_column(Text)
    firmware: Mapped[str | None] = mapped_column(Text)
    serial: Mapped[str | None] = mapped_column(Text)
    protocols: Mapped[str] = mapped_column(Text)
    document: Mapped[str] = mapped_column(Text)


class MonitorAlert(Base):
    """A deduplicated passive-monitor alert; the sensor's stable id makes re-sends updates."""

    __tablename__ = "monitor_alerts"
    __table_args__ = (
        UniqueConstraint("site", "alert_id", name="uq_monitor_alerts_site_alert_id"),
        CheckConstraint("count > 0", name="count_positive"),
        Index("ix_monitor_alerts_last_seen", "last_seen"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(Text)
    alert_id: Mapped[str] = mapped_column(Text)
    engine: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    technique: Mapped[str | None] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    count: Mapped[int] = mapped_column(BigInteger)
    document: Mapped[str] = mapped_column(Text)
