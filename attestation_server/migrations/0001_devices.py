"""Devices and their audit events.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hwmodel", sa.Text(), nullable=False),
        sa.Column("swname", sa.Text(), nullable=False),
        sa.Column("swversion", sa.Text(), nullable=False),
        sa.Column("rot", sa.Text(), nullable=False),
        sa.Column("cert_fingerprint", sa.Text(), nullable=True),
        sa.Column("boot_count", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("last_uptime", sa.BigInteger(), nullable=True),
        sa.Column("heartbeat_interval", sa.Integer(), nullable=False),
        sa.CheckConstraint("rot IN ('software', 'tpm', 'dice')", name="ck_devices_rot_kind"),
        sa.CheckConstraint("boot_count >= 0", name="ck_devices_boot_count_non_negative"),
        sa.CheckConstraint("heartbeat_interval > 0", name="ck_devices_heartbeat_interval_positive"),
        sa.PrimaryKeyConstraint("device_id", name="pk_devices"),
    )
    op.create_table(
        "device_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_device_events"),
    )
    op.create_index("ix_device_events_at", "device_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_device_events_at", table_name="device_events")
    op.drop_table("device_events")
    op.drop_table("devices")
