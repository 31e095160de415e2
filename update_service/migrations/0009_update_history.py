"""Update history: what each device reported of its updates, and the last key it recorded.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATES = "('checking', 'downloading', 'installed', 'booted', 'confirmed', 'reverted', 'failed')"


def _at(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "update_reporters",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("boot_count", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        _at("reported_at"),
        sa.CheckConstraint(
            "boot_count >= 0", name=op.f("ck_update_reporters_boot_count_non_negative")
        ),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_update_reporters_seq_positive")),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_update_reporters")),
    )
    op.create_table(
        "update_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("boot_count", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("from_version", sa.Text(), nullable=False),
        sa.Column("to_version", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("done", sa.BigInteger(), nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _at("first_at"),
        _at("at"),
        sa.CheckConstraint(f"state IN {_STATES}", name=op.f("ck_update_history_state_known")),
        sa.CheckConstraint(
            "done IS NULL OR (total IS NOT NULL AND done <= total)",
            name=op.f("ck_update_history_progress"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_update_history")),
    )
    op.create_index("ix_update_history_device_id_id", "update_history", ["device_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_update_history_device_id_id", table_name="update_history")
    op.drop_table("update_history")
    op.drop_table("update_reporters")
