"""The fleet server's storage engine: SQLite embedded by default, PostgreSQL shared.

The engine, its durability settings and the migration runner live here; the
tables belong to the services that own them, each shipping its own Alembic
migrations, which the server composition hands to :func:`open_database`.
"""

from pathlib import Path

from fleet_platform.storage.engine import Database, StorageConflict, open_database

MIGRATIONS = Path(__file__).resolve().parent / "versions"
"""Alembic versions of the platform's own tables (the fleet's shared secrets)."""

__all__ = ["MIGRATIONS", "Database", "StorageConflict", "open_database"]
