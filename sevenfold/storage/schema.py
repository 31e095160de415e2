"""Bringing a database's schema to a given Alembic revision from inside the program.

The migration scripts ship inside the package, so an installed server can
upgrade its own database without an ``alembic.ini`` or a source checkout.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""Alembic script directory, located relative to this module so it works from a wheel."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config


def upgrade(engine: Engine, *, revision: str = "head") -> None:
    """Apply every migration up to *revision* in one transaction (atomic on both engines)."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, *, revision: str) -> None:
    """Revert migrations down to *revision* (``"base"`` empties the schema)."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when no migration has run."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision the shipped migrations define."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if head is None:
        raise RuntimeError("the migrations directory defines no revision")
    return head
