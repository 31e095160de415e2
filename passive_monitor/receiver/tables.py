"""The monitor's receiving end: legacy assets and passive-monitor alerts the sites report.

These models are the reference the Alembic migrations in ``migrations/`` are
checked against; the migrations, not ``create_all``, build a real database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fleet_platform.storage.tables import Base
from fleet_platform.storage.timestamps import UtcDateTime


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
