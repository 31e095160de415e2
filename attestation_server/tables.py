"""The attestation server's tables: enrolled devices and their audit trail.

These models are the reference the Alembic migrations in ``migrations/`` are
checked against; the migrations, not ``create_all``, build a real database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from device_runtime.core.protocol import ROOTS_OF_TRUST
from fleet_platform.storage.tables import Base
from fleet_platform.storage.timestamps import UtcDateTime

_KINDS = "(" + ", ".join(f"'{kind}'" for kind in ROOTS_OF_TRUST) + ")"


class Device(Base):
    """One enrolled device and the latest state its heartbeats reported.

    ``rot_claimed`` is the root of trust the device says it has; ``rot_verified``
    is the one attestation proved, and stays NULL until it does. The registry
    never lets the first stand in for the second.
    """

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint(f"rot_claimed IN {_KINDS}", name="rot_claimed_kind"),
        CheckConstraint(
            f"rot_verified IS NULL OR rot_verified IN {_KINDS}", name="rot_verified_kind"
        ),
        CheckConstraint("boot_count >= 0", name="boot_count_non_negative"),
        CheckConstraint("heartbeat_interval > 0", name="heartbeat_interval_positive"),
    )

    device_id: Mapped[str] = mapped_column(Text, primary_key=True)
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    hwmodel: Mapped[str] = mapped_column(Text)
    swname: Mapped[str] = mapped_column(Text)
    swversion: Mapped[str] = mapped_column(Text)
    rot_claimed: Mapped[str] = mapped_column(Text)
    rot_verified: Mapped[str | None] = mapped_column(Text)
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


class ProvisionedDevice(Base):
    """What a factory station proved about a device when it provisioned it.

    Written only by the factory route, never by an enroll: the root-of-trust
    kind, hardware model and DeviceID key here are facts the station checked
    (a CSR's proof of possession, for a TPM its endorsement and a credential
    challenge), where the devices table holds what the device says.
    """

    __tablename__ = "provisioned_devices"
    __table_args__ = (CheckConstraint(f"rot_kind IN {_KINDS}", name="rot_kind"),)

    device_id: Mapped[str] = mapped_column(Text, primary_key=True)
    hwmodel: Mapped[str] = mapped_column(Text)
    rot_kind: Mapped[str] = mapped_column(Text)
    public_key: Mapped[str] = mapped_column(Text)
    """The DeviceID key, an uncompressed SEC1 P-256 point in hex."""
    manufacturer_certificate: Mapped[str] = mapped_column(Text)
    fleet_certificate: Mapped[str] = mapped_column(Text)
    station: Mapped[str] = mapped_column(Text)
    provisioned_at: Mapped[datetime] = mapped_column(UtcDateTime)
    quote_key: Mapped[str | None] = mapped_column(Text)
    """A TPM board's restricted quote key, its TPM2B_PUBLIC in hex, proven to live in the
    board's TPM: what a TPM quote from this device must verify under. Null for other kinds."""
