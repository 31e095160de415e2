"""Connection settings that keep the fleet registry durable and shareable between threads."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from attestation_server.registry import DeviceRegistry
from fleet_platform.storage import Database, open_database
from fleet_platform.storage.schema import head_revision
from sevenfold.server import MIGRATIONS

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _enroll(registry: DeviceRegistry, device_id: str) -> None:
    registry.enroll(
        device_id,
        hwmodel="board-a",
        swname="fw",
        swversion="1.0.0",
        rot_claimed="dice",
        boot_count=3,
        heartbeat_interval=60,
        cert_fingerprint="0f" * 32,
        now=NOW,
    )


def test_durability_settings_are_applied(database: Database) -> None:
    with database.engine.connect() as connection:
        if database.dialect == "sqlite":
            pragma = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
            assert pragma == {
                "journal_mode": "wal",
                "synchronous": 2,
                "foreign_keys": 1,
                "busy_timeout": 30_000,
            }
        else:
            assert database.dialect == "postgresql"
            assert connection.execute(text("SHOW synchronous_commit")).scalar() == "on"


def test_a_connection_may_be_used_from_another_thread(database: Database) -> None:
    results: list[object] = []
    with database.engine.connect() as connection:
        worker = threading.Thread(
            target=lambda: results.append(connection.execute(text("SELECT 1")).scalar())
        )
        worker.start()
        worker.join()
    assert results == [1]


def test_data_survives_reopening(database_url: str) -> None:
    with open_database(database_url, migrations=MIGRATIONS) as first:
        first.upgrade()
        _enroll(DeviceRegistry(database=first), "survivor")

    with open_database(database_url, migrations=MIGRATIONS) as second:
        assert second.revision() == head_revision(MIGRATIONS)
        record = DeviceRegistry(database=second).get("survivor")
        assert record is not None
        assert record.enrolled_at == NOW
        assert record.rot_claimed == "dice"
        assert record.cert_fingerprint == "0f" * 32


def test_sqlite_file_is_created_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    with open_database(f"sqlite:///{path}", migrations=MIGRATIONS) as database:
        database.upgrade()
        _enroll(DeviceRegistry(database=database), "on-disk")
    assert path.stat().st_size > 0
    with open_database(f"sqlite:///{path}", migrations=MIGRATIONS) as reopened:
        assert [d.device_id for d in DeviceRegistry(database=reopened).list_devices()] == [
            "on-disk"
        ]


def test_in_memory_sqlite_is_one_database_for_every_thread() -> None:
    with open_database("sqlite://", migrations=MIGRATIONS) as database:
        database.upgrade()
        registry = DeviceRegistry(database=database)
        _enroll(registry, "memory")
        assert registry.get("memory") is not None


def test_repr_hides_the_password() -> None:
    database = open_database(
        "postgresql+psycopg://fleet:hunter2@127.0.0.1:1/fleet", migrations=MIGRATIONS
    )
    try:
        assert "hunter2" not in repr(database)
        assert "fleet" in repr(database)
    finally:
        database.dispose()


def test_plain_postgresql_url_uses_psycopg() -> None:
    database = open_database("postgresql://fleet@127.0.0.1:1/fleet", migrations=MIGRATIONS)
    try:
        assert database.engine.dialect.driver == "psycopg"
        assert database.dialect == "postgresql"
    finally:
        database.dispose()


def test_other_backends_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database backend"):
        open_database("mysql://fleet@127.0.0.1/fleet", migrations=MIGRATIONS)
