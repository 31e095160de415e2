"""The update service: the TUF repository devices fetch from, and what devices report of
their updates."""

from pathlib import Path

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""Alembic versions of this service's tables (update history and its reporters)."""
