"""Connection settings that keep the fleet registry durable and shareable between threads."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from attestation_server.registry import DeviceRegistry
from device_runtime.core.errors import ConfigError, StorageError
from fleet_platform.storage import Database, StorageConflict, open_database
from fleet_platform.storage.engine import BUSY_TIMEOUT_MS
from fleet_platform.storage.schema import head_revision
from sevenfold.server import MIGRATIONS
from tests.fleet_platform.storage.database_fixtures import fresh_postgresql_database

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
                "busy_timeout": BUSY_TIMEOUT_MS,
            }
        else:
            assert database.dialect == "postgresql"
            assert connection.execute(text("SHOW synchronous_commit")).scalar() == "on"
            # A locked table or a silent server fails a request in seconds, never hangs it.
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "5s"
            assert connection.execute(text("SHOW lock_timeout")).scalar() == "5s"


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


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """Umask 022, under which SQLite on its own creates a world-readable database."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _modes(folder: Path) -> dict[str, str]:
    return {p.name: f"{stat.S_IMODE(p.stat().st_mode):04o}" for p in folder.iterdir()}


SQLITE_FILES = ("fleet.db", "fleet.db-shm", "fleet.db-wal")


@pytest.mark.usefixtures("usual_umask")
def test_a_new_sqlite_database_and_its_wal_and_shm_are_private(tmp_path: Path) -> None:
    with open_database(f"sqlite:///{tmp_path / 'fleet.db'}", migrations=MIGRATIONS) as database:
        database.upgrade()
        _enroll(DeviceRegistry(database=database), "private")
        with database.engine.connect():  # the WAL and shared memory exist while it is open
            assert _modes(tmp_path) == dict.fromkeys(SQLITE_FILES, "0600")


@pytest.mark.usefixtures("usual_umask")
def test_a_database_an_older_version_left_open_is_closed_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "fleet.db"
    older = sqlite3.connect(path)  # as SQLite alone creates it: 0644, and so its WAL and shm
    try:
        older.execute("PRAGMA journal_mode = WAL").close()
        older.execute("CREATE TABLE kept (x INTEGER)").close()
        older.execute("INSERT INTO kept VALUES (1)").close()
        older.commit()
        assert _modes(tmp_path) == dict.fromkeys(SQLITE_FILES, "0644")
        with caplog.at_level(logging.WARNING, logger="fleet_platform.storage.engine"):
            database = open_database(f"sqlite:///{path}", migrations=MIGRATIONS)
        with database:
            assert _modes(tmp_path) == dict.fromkeys(SQLITE_FILES, "0600")
            assert caplog.text.count("open to other users") == len(SQLITE_FILES)
            with database.engine.connect() as connection:
                assert connection.exec_driver_sql("SELECT x FROM kept").scalar() == 1
    finally:
        older.close()


def test_a_linked_companion_file_is_refused(tmp_path: Path) -> None:
    """SQLite never links its WAL; a link there would write the fleet's data elsewhere."""
    (tmp_path / "fleet.db-wal").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StorageError, match=re.escape("fleet.db-wal")):
        open_database(f"sqlite:///{tmp_path / 'fleet.db'}", migrations=MIGRATIONS)


def test_uri_filenames_are_left_to_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``file:`` is SQLite's syntax, not part of a file name to create."""
    monkeypatch.chdir(tmp_path)
    with open_database("sqlite:///file:fleet.db?uri=true", migrations=MIGRATIONS) as database:
        database.upgrade()
    assert {path.name for path in tmp_path.iterdir()} == {"fleet.db"}


@pytest.fixture
def postgresql(tmp_path: Path) -> Iterator[Database]:
    """PostgreSQL alone: SQLite has one writer at a time, so it has no deadlocks to test."""
    for url in fresh_postgresql_database():
        database = open_database(url, migrations=MIGRATIONS)
        database.upgrade()
        yield database
        database.dispose()


def test_a_deadlock_is_a_conflict_worth_retrying(postgresql: Database) -> None:
    """Two transactions taking the same rows in opposite orders: one loses, as a conflict."""
    database = postgresql
    registry = DeviceRegistry(database=database)
    for device_id in ("a", "b"):
        registry.enroll(
            device_id, hwmodel="h", swname="s", swversion="v", rot_claimed="software",
            boot_count=1, heartbeat_interval=60, now=NOW,
        )  # fmt: skip
    both_hold_one = threading.Barrier(2)
    outcomes: list[BaseException | None] = []

    def take(first: str, second: str) -> None:
        try:
            with database.transaction("take rows") as tx:
                lock = "UPDATE devices SET last_seen = last_seen WHERE device_id = :d"
                tx.execute(text(lock), {"d": first})
                both_hold_one.wait(10)
                tx.execute(text(lock), {"d": second})
            outcomes.append(None)
        except StorageError as exc:
            outcomes.append(exc)

    threads = [
        threading.Thread(target=take, args=("a", "b")),
        threading.Thread(target=take, args=("b", "a")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    failures = [outcome for outcome in outcomes if outcome is not None]
    assert len(outcomes) == 2 and len(failures) == 1
    assert isinstance(failures[0], StorageConflict) and "deadlock" in failures[0].reason


def test_an_old_sqlite_is_refused_with_the_version_it_needs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.31.1")
    with pytest.raises(ConfigError, match=r"3\.31\.1 is too old.*3\.35"):
        open_database(f"sqlite:///{tmp_path / 'old.db'}", migrations=MIGRATIONS)
