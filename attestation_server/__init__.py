"""The attestation server: the device registry, enrollment and liveness, and its REST routes."""

from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""Alembic versions of this service's tables (the device registry)."""
