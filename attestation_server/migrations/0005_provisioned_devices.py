"""What factory provisioning proved about each device, apart from what it claims.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provisioned_devices",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("hwmodel", sa.Text(), nullable=False),
        sa.Column("rot_kind", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("manufacturer_certificate", sa.Text(), nullable=False),
        sa.Column("fleet_certificate", sa.Text(), nullable=False),
        sa.Column("station", sa.Text(), nullable=False),
        sa.Column("provisioned_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "rot_kind IN ('software', 'tpm', 'dice')",
            name=op.f("ck_provisioned_devices_rot_kind"),
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_provisioned_devices")),
    )


def downgrade() -> None:
    op.drop_table("provisioned_devices")
