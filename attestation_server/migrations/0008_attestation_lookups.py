"""Indexes for the two lookups every attestation makes by a column that was not indexed.

Issuing a challenge drops the device's outstanding one (by ``device_id``), and
an appraisal asks whether another provisioned device holds the same DeviceID
key (by ``public_key``). Without these indexes both scan their whole table, so
each attestation cost grew with the fleet.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_attestation_challenges_device_id", "attestation_challenges", ["device_id"])
    op.create_index("ix_provisioned_devices_public_key", "provisioned_devices", ["public_key"])


def downgrade() -> None:
    op.drop_index("ix_provisioned_devices_public_key", table_name="provisioned_devices")
    op.drop_index("ix_attestation_challenges_device_id", table_name="attestation_challenges")
