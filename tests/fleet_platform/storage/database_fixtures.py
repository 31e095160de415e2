"""Pytest plugin: a fresh fleet database on SQLite and on PostgreSQL.

Register it with ``pytest_plugins = ["tests.fleet_platform.storage.database_fixtures"]``
in the root conftest (or import the fixtures into a package's conftest). Every
test that asks for ``database`` runs twice, once per engine, each time on a
database nobody else has touched. PostgreSQL defaults to the local server;
``SEVENFOLD_POSTGRES_URL`` points the tests at another one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from fleet_platform.storage import Database, open_database
from sevenfold.server import MIGRATIONS
from tests.strict_mode import missing

POSTGRES_ADMIN_URL = os.environ.get(
    "SEVENFOLD_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
"""Maintenance database the per-test databases are created from and dropped through."""

ENGINES = ("sqlite", "postgresql")


@pytest.fixture(params=ENGINES)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """URL of an empty, unmigrated database, on each engine in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('fleet') / 'fleet.db'}"
    else:
        yield from fresh_postgresql_database()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """An open database migrated to the newest schema; disposed after the test."""
    db = open_database(database_url, migrations=MIGRATIONS)
    db.upgrade()
    yield db
    db.dispose()


def _admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError:
        missing(
            "PostgreSQL at 127.0.0.1:5432",
            "start a PostgreSQL server with trust auth and a `test` database,"
            " or set SEVENFOLD_POSTGRES_URL",
        )
        raise


def fresh_postgresql_database() -> Iterator[str]:
    name = f"sevenfold_test_{uuid.uuid4().hex[:16]}"
    with _admin_connection() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with _admin_connection() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
