"""The TPM quote key factory provisioning proved, so that quotes can be verified later.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("provisioned_devices", sa.Column("quote_key", sa.Text(), nullable=True))


def downgrade() -> None:
    # SQLite (3.35 and later) drops a column in place, so the table and its CHECK stay as
    # they are; a batch copy would lose the CHECK, which SQLAlchemy does not read back.
    op.drop_column("provisioned_devices", "quote_key")
