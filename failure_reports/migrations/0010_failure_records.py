"""Failure records: what devices' outboxes uploaded, once per (device, boot, seq).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS = "('crash', 'reboot', 'security', 'metrics')"


def upgrade() -> None:
    op.create_table(
        "failure_records",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("boot_count", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("firmware", sa.Text(), nullable=False),
        sa.Column("hwmodel", sa.Text(), nullable=True),
        sa.Column("uptime_s", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("frames", sa.Text(), nullable=True),
        sa.Column("frames_omitted", sa.BigInteger(), nullable=True),
        sa.Column("fingerprint_input", sa.Text(), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"kind IN {_KINDS}", name=op.f("ck_failure_records_kind_known")),
        sa.CheckConstraint(
            "boot_count >= 0 AND seq >= 1", name=op.f("ck_failure_records_key_in_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failure_records")),
        sa.UniqueConstraint(
            "device_id", "boot_count", "seq", name=op.f("uq_failure_records_device_boot_seq")
        ),
    )
    op.create_index("ix_failure_records_kind_firmware", "failure_records", ["kind", "firmware"])


def downgrade() -> None:
    op.drop_index("ix_failure_records_kind_firmware", table_name="failure_records")
    op.drop_table("failure_records")
