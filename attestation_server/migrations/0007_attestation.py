"""Remote attestation: challenges, each device's standing, result history, reference values,
policies per device group.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VERDICTS = "('affirming', 'warning', 'contraindicated')"


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "attestation_challenges",
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        _at("issued_at"),
        _at("expires_at"),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_attestation_challenges")),
    )
    op.create_index(
        "ix_attestation_challenges_expires_at", "attestation_challenges", ["expires_at"]
    )
    op.create_table(
        "device_trust",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("group_name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _at("appraised_at", True),
        _at("pass_until", True),
        sa.Column("certificate_serial", sa.Text(), nullable=True),
        _at("quarantined_at", True),
        sa.Column("quarantine_reason", sa.Text(), nullable=True),
        sa.Column("bootcount", sa.BigInteger(), nullable=True),
        sa.Column("bootseed", sa.Text(), nullable=True),
        sa.Column("tpm_reset_count", sa.BigInteger(), nullable=True),
        sa.Column("tpm_clock", sa.BigInteger(), nullable=True),
        sa.Column("swversion", sa.Text(), nullable=True),
        sa.Column("image_digest", sa.Text(), nullable=True),
        sa.CheckConstraint(
            f"status IS NULL OR status IN {_VERDICTS}", name=op.f("ck_device_trust_status_verdict")
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_trust")),
    )
    op.create_table(
        "attestation_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        _at("at"),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("trustworthiness", sa.Text(), nullable=False),
        sa.Column("via_recovery", sa.Boolean(), nullable=False),
        _at("certificate_not_after", True),
        sa.CheckConstraint(
            f"status IN {_VERDICTS}", name=op.f("ck_attestation_results_status_verdict")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attestation_results")),
    )
    op.create_index(
        "ix_attestation_results_device_id_at", "attestation_results", ["device_id", "at"]
    )
    op.create_table(
        "reference_values",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("hwmodel", sa.Text(), nullable=False),
        sa.Column("component", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("swversion", sa.Text(), nullable=True),
        sa.Column("security_version", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        _at("created_at"),
        sa.CheckConstraint(
            "component IN ('image', 'config')", name=op.f("ck_reference_values_component_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_values")),
        sa.UniqueConstraint(
            "hwmodel", "component", "digest", name="uq_reference_values_measurement"
        ),
    )
    op.create_table(
        "attestation_policies",
        sa.Column("group_name", sa.Text(), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("group_name", name=op.f("pk_attestation_policies")),
    )


def downgrade() -> None:
    op.drop_table("attestation_policies")
    op.drop_table("reference_values")
    op.drop_index("ix_attestation_results_device_id_at", table_name="attestation_results")
    op.drop_table("attestation_results")
    op.drop_table("device_trust")
    op.drop_index("ix_attestation_challenges_expires_at", table_name="attestation_challenges")
    op.drop_table("attestation_challenges")
