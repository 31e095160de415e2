"""The attestation server's tables: devices, what provisioning proved, attestation, audit trail.

These models are the reference the Alembic migrations in ``migrations/`` are
checked against; the migrations, not ``create_all``, build a real database.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Index, Integer, Text, UniqueConstraint
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
    __table_args__ = (
        CheckConstraint(f"rot_kind IN {_KINDS}", name="rot_kind"),
        # Every appraisal asks whether another device holds the same DeviceID key.
        Index("ix_provisioned_devices_public_key", "public_key"),
    )

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


_VERDICTS = "('affirming', 'warning', 'contraindicated')"


class AttestationChallenge(Base):
    """A nonce issued to one device, outstanding until its evidence consumes it or it expires.

    Consumed by a single conditional DELETE, so a nonce answers at most one
    piece of evidence however many copies of it arrive at once.
    """

    __tablename__ = "attestation_challenges"
    __table_args__ = (
        Index("ix_attestation_challenges_expires_at", "expires_at"),
        # A new challenge replaces the device's outstanding one.
        Index("ix_attestation_challenges_device_id", "device_id"),
    )

    nonce: Mapped[str] = mapped_column(Text, primary_key=True)
    """32 random bytes in hex."""
    device_id: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DeviceTrust(Base):
    """Where each device stands with the verifier: its latest result, its pass, its quarantine.

    ``pass_until`` is the expiry of the fleet certificate the last passing
    appraisal issued; a device holds the application plane at the broker only
    while it is in the future and the device is not quarantined. The boot and
    TPM counters are what the last accepted evidence said, for the checks that
    they never go back.
    """

    __tablename__ = "device_trust"
    __table_args__ = (
        CheckConstraint(f"status IS NULL OR status IN {_VERDICTS}", name="status_verdict"),
    )

    device_id: Mapped[str] = mapped_column(Text, primary_key=True)
    group_name: Mapped[str] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)
    code: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    appraised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    pass_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    certificate_serial: Mapped[str | None] = mapped_column(Text)
    quarantined_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    quarantine_reason: Mapped[str | None] = mapped_column(Text)
    bootcount: Mapped[int | None] = mapped_column(BigInteger)
    bootseed: Mapped[str | None] = mapped_column(Text)
    tpm_reset_count: Mapped[int | None] = mapped_column(BigInteger)
    tpm_clock: Mapped[int | None] = mapped_column(BigInteger)
    swversion: Mapped[str | None] = mapped_column(Text)
    image_digest: Mapped[str | None] = mapped_column(Text)


class AttestationRecord(Base):
    """One appraisal as it was judged: the history behind ``device_trust``."""

    __tablename__ = "attestation_results"
    __table_args__ = (
        CheckConstraint(f"status IN {_VERDICTS}", name="status_verdict"),
        Index("ix_attestation_results_device_id_at", "device_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(Text)
    code: Mapped[str] = mapped_column(Text)
    reasons: Mapped[str] = mapped_column(Text)
    """JSON list of reasons."""
    trustworthiness: Mapped[str] = mapped_column(Text)
    """JSON object: the AR4SI trustworthiness vector."""
    via_recovery: Mapped[bool] = mapped_column(Boolean)
    certificate_not_after: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ReferenceValue(Base):
    """A measurement the fleet operator endorsed for a hardware model (``sevenfold endorse``)."""

    __tablename__ = "reference_values"
    __table_args__ = (
        CheckConstraint("component IN ('image', 'config')", name="component_kind"),
        UniqueConstraint("hwmodel", "component", "digest", name="uq_reference_values_measurement"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hwmodel: Mapped[str] = mapped_column(Text)
    component: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(Text)
    """SHA-256 in hex."""
    swversion: Mapped[str | None] = mapped_column(Text)
    security_version: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(Text)
    """Who endorsed it: ``operator``, or a release's name once releases register theirs."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AttestationPolicyRecord(Base):
    """The appraisal policy of one device group, as JSON (``attestation_policy.Policy``)."""

    __tablename__ = "attestation_policies"

    group_name: Mapped[str] = mapped_column(Text, primary_key=True)
    policy: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
