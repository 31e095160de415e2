"""The shipped migrations build, tear down and rebuild the schema the models describe."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from attestation_server.registry import DeviceRegistry
from fleet_platform.storage import Database, open_database
from fleet_platform.storage.schema import head_revision
from fleet_platform.storage.tables import Base
from sevenfold.server import MIGRATIONS

TABLES = {"devices", "device_events", "legacy_assets", "monitor_alerts"}
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _tables(database: Database) -> set[str]:
    return set(inspect(database.engine).get_table_names())


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    with open_database(database_url, migrations=MIGRATIONS) as database:
        assert database.revision() is None
        assert not _tables(database) & TABLES

        database.upgrade()
        assert database.revision() == head_revision(MIGRATIONS)
        assert _tables(database) >= TABLES

        database.downgrade(revision="base")
        assert database.revision() is None
        assert not _tables(database) & TABLES

        database.upgrade()
        assert database.revision() == head_revision(MIGRATIONS)
        registry = DeviceRegistry(database=database)
        registry.record_event(device_id=None, kind="rejected", code="x", reason="y", now=NOW)
        assert len(registry.events()) == 1


def test_upgrade_at_head_changes_nothing(database: Database) -> None:
    registry = DeviceRegistry(database=database)
    registry.record_event(device_id="d", kind="rejected", code="c", reason="r", now=NOW)
    database.upgrade()
    assert database.revision() == head_revision(MIGRATIONS)
    assert [event.device_id for event in registry.events()] == ["d"]


def test_models_match_migrations(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migration_scripts_ship_inside_the_package(database: Database) -> None:
    environment = files("fleet_platform.storage.migrations")
    assert environment.joinpath("env.py").is_file()
    assert environment.joinpath("script.py.mako").is_file()
    assert files("attestation_server.migrations").joinpath("0001_devices.py").is_file()
    assert files("passive_monitor.receiver.migrations").joinpath("0002_legacy_assets.py").is_file()
    assert database.revision() == head_revision(MIGRATIONS)
