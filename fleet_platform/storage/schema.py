"""Bringing a database's schema to a given Alembic revision from inside the program.

The Alembic environment ships here; the version scripts ship inside the
services that own the tables, and the server composition names their
directories. One linear history runs through them (each service's first
revision follows the previous service's last), so a database is always at
exactly one revision. An installed server upgrades its own database without
an ``alembic.ini`` or a source checkout.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine

ENVIRONMENT = Path(__file__).resolve().parent / "migrations"
"""Alembic environment directory, located relative to this module so it works from a wheel."""

Locations = Sequence[Path]
"""Directories of version scripts, one per service that owns tables."""


def _config(locations: Locations) -> Config:
    if not locations:
        raise ValueError("at least one directory of migration scripts is needed")
    for location in locations:
        if any(ch in str(location) for ch in ":;"):
            raise ValueError(f"migration directory {location} has a path separator in its name")
    config = Config()
    config.set_main_option("script_location", str(ENVIRONMENT))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", ":".join(str(path) for path in locations))
    return config


EXCLUSIVE = "sevenfold_exclusive"
"""Execution option: begin SQLite transactions with the write lock taken (BEGIN IMMEDIATE)."""

_MIGRATION_LOCK = 0x5EFE_0F01D
"""PostgreSQL advisory lock key every server takes while it migrates."""


def upgrade(engine: Engine, *, locations: Locations, revision: str = "head") -> None:
    """Apply every migration up to *revision* in one transaction (atomic on both engines).

    Replicas starting together would otherwise both see an old schema and both
    try to create the same tables; each takes the database's migration lock
    first (an advisory lock on PostgreSQL, the write lock on SQLite), so the
    second finds the schema already current and does nothing.
    """
    config = _config(locations)
    with engine.execution_options(**{EXCLUSIVE: True}).begin() as connection:
        if engine.dialect.name == "postgresql":
            # A migration may rewrite a large table: the per-statement limit is for requests.
            connection.execute(text("SET LOCAL statement_timeout = 0"))
            connection.execute(text("SET LOCAL lock_timeout = 0"))
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, *, locations: Locations, revision: str) -> None:
    """Revert migrations down to *revision* (``"base"`` empties the schema)."""
    config = _config(locations)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when no migration has run."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(locations: Locations) -> str:
    """The newest revision the given migrations define."""
    head = ScriptDirectory.from_config(_config(locations)).get_current_head()
    if head is None:
        raise RuntimeError("the migrations directory defines no revision")
    return head
