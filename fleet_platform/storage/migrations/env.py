"""Alembic environment: runs on the connection the program hands over.

``fleet_platform.storage.schema`` opens the transaction and passes its connection in
``config.attributes``, so migrations share the engine's connection settings
(SQLite pragmas, PostgreSQL session options) and never read a URL from a file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from fleet_platform.storage.tables import Base


def run_migrations_online() -> None:
    """Run the pending migrations on the caller's open connection."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "migrations run through fleet_platform.storage, which supplies a connection"
        )
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
