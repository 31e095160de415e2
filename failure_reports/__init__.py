"""Failure reports: what devices' outboxes upload of their crashes, reboots, security
events and health, recorded exactly once per (device, boot, sequence number)."""

from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""Alembic versions of this service's table (failure records)."""
