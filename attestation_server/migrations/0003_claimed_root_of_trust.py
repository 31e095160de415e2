"""The root of trust a device claims is kept apart from the one attestation proves.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS = "('software', 'tpm', 'dice')"
_OLD_ROT_CHECK = "ck_devices_ck_devices_rot_kind"
"""The name 0001 gave the check in practice: the naming convention prefixed its explicit name."""


def _devices(rot: str, *checks: sa.CheckConstraint) -> sa.Table:
    """The devices table as one side of this migration leaves it.

    SQLite cannot alter a constraint in place, so batch mode copies the table,
    and SQLAlchemy does not read CHECK constraints back from SQLite: the copy
    has to be told what it is copying.
    """
    return sa.Table(
        "devices",
        sa.MetaData(),
        sa.Column("device_id", sa.Text(), primary_key=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hwmodel", sa.Text(), nullable=False),
        sa.Column("swname", sa.Text(), nullable=False),
        sa.Column("swversion", sa.Text(), nullable=False),
        sa.Column(rot, sa.Text(), nullable=False),
        *([sa.Column("rot_verified", sa.Text(), nullable=True)] if rot == "rot_claimed" else []),
        sa.Column("cert_fingerprint", sa.Text(), nullable=True),
        sa.Column("boot_count", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("last_uptime", sa.BigInteger(), nullable=True),
        sa.Column("heartbeat_interval", sa.Integer(), nullable=False),
        *checks,
        sa.CheckConstraint("boot_count >= 0", name="ck_devices_ck_devices_boot_count_non_negative"),
        sa.CheckConstraint(
            "heartbeat_interval > 0", name="ck_devices_ck_devices_heartbeat_interval_positive"
        ),
    )


def upgrade() -> None:
    before = _devices("rot", sa.CheckConstraint(f"rot IN {_KINDS}", name=_OLD_ROT_CHECK))
    with op.batch_alter_table("devices", copy_from=before) as batch:
        batch.drop_constraint(op.f(_OLD_ROT_CHECK), type_="check")
        batch.alter_column("rot", new_column_name="rot_claimed", existing_type=sa.Text())
        batch.add_column(sa.Column("rot_verified", sa.Text(), nullable=True))
        batch.create_check_constraint(
            op.f("ck_devices_rot_claimed_kind"), f"rot_claimed IN {_KINDS}"
        )
        batch.create_check_constraint(
            op.f("ck_devices_rot_verified_kind"),
            f"rot_verified IS NULL OR rot_verified IN {_KINDS}",
        )


def downgrade() -> None:
    after = _devices(
        "rot_claimed",
        sa.CheckConstraint(f"rot_claimed IN {_KINDS}", name="ck_devices_rot_claimed_kind"),
        sa.CheckConstraint(
            f"rot_verified IS NULL OR rot_verified IN {_KINDS}", name="ck_devices_rot_verified_kind"
        ),
    )
    with op.batch_alter_table("devices", copy_from=after) as batch:
        batch.drop_constraint(op.f("ck_devices_rot_verified_kind"), type_="check")
        batch.drop_constraint(op.f("ck_devices_rot_claimed_kind"), type_="check")
        batch.drop_column("rot_verified")
        batch.alter_column("rot_claimed", new_column_name="rot", existing_type=sa.Text())
        batch.create_check_constraint(op.f(_OLD_ROT_CHECK), f"rot IN {_KINDS}")
