"""Opening the fleet database: an embedded SQLite file by default, PostgreSQL by URL.

Durability and concurrency settings are applied on every new connection rather
than trusted to the server's configuration: a fleet registry that loses an
enrollment on power loss, or fails under concurrent heartbeats, is a security bug.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from device_runtime.core.errors import ConfigError, StorageError
from fleet_platform.storage import schema

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
"""How long a SQLite writer waits for another writer's lock before failing: long enough
for any one batch, short enough that a stuck database is an answer, not a hung worker."""

SQLITE_MINIMUM = (3, 35)
"""RETURNING arrived in SQLite 3.35 and UPDATE ... FROM in 3.33; Debian 12 ships 3.40."""

POSTGRESQL_STATEMENT_TIMEOUT_MS = 5_000
"""The most one statement (or a wait for a lock) may take on PostgreSQL: a table locked by
someone else, or a server that stopped answering, fails the request instead of hanging the
worker. Migrations lift it for their own transaction."""

_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
"""TCP keepalives: a PostgreSQL connection whose peer vanished is noticed in about 25 s,
not the operating system's two hours."""

_CONFLICTS = {"40P01": "deadlock", "40001": "serialization failure"}
"""SQLSTATEs after which the same transaction, tried again, succeeds."""

POSTGRESQL_CONNECT_TIMEOUT_S = 5
"""How long opening a PostgreSQL connection may take before it counts as unreachable."""

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
)
"""WAL lets readers run beside the writer; FULL syncs the WAL on every commit."""

PRIVATE_FILE = 0o600
"""Mode of the SQLite database and its companion files: the server's user only."""

SHARED_BITS = 0o077
"""Group and other permission bits, none of which the database files may have."""

SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
"""Files SQLite keeps beside the database, named by suffix; they hold its data too."""


class StorageConflict(StorageError):
    """The transaction lost a race with another (a deadlock, a serialization failure):
    nothing was written, and the same transaction tried again will succeed."""

    code = "storage-conflict"


class Database:
    """An engine plus the session factory every storage query goes through."""

    def __init__(self, *, engine: Engine, migrations: Sequence[Path]) -> None:
        self._engine = engine
        self._migrations = tuple(migrations)
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for callers that need Core access."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``; upserts are spelled per dialect."""
        return self._engine.dialect.name

    def session(self) -> Session:
        """A new session; use it as a context manager and keep it to one transaction."""
        return self._sessions()

    @contextmanager
    def transaction(self, operation: str) -> Iterator[Connection]:
        """One transaction on a Core connection, committed when the block ends.

        Driver failures (SQLite busy past its timeout, PostgreSQL gone) surface as
        :class:`StorageError` naming *operation*, never as a driver exception, so
        callers handle one error for "storage is not there right now". Any other
        exception rolls the transaction back and propagates unchanged.
        """
        try:
            with self._engine.begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
            if sqlstate in _CONFLICTS:
                raise StorageConflict(f"{operation} lost a race ({_CONFLICTS[sqlstate]})") from exc
            raise StorageError(f"{operation} failed: {type(exc).__name__}") from exc

    def reachable(self) -> bool:
        """True when a trivial query succeeds now; what a liveness check asks."""
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def upgrade(self, *, revision: str = "head") -> None:
        """Migrate the schema forward; a no-op when already at *revision*.

        A database that cannot be reached or migrated is a :class:`StorageError`
        naming the database (never its password), not a driver traceback.
        """
        try:
            schema.upgrade(self._engine, locations=self._migrations, revision=revision)
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot migrate {self!r}: {_first_line(exc)}") from exc

    def downgrade(self, *, revision: str) -> None:
        """Migrate the schema back to *revision* (``"base"`` drops every table)."""
        schema.downgrade(self._engine, locations=self._migrations, revision=revision)

    def revision(self) -> str | None:
        """The schema revision the database is at, None before the first upgrade."""
        return schema.current_revision(self._engine)

    def dispose(self) -> None:
        """Close every pooled connection (SQLite checkpoints its WAL on last close)."""
        self._engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"Database({self._engine.url.render_as_string(hide_password=True)!r})"


def _first_line(error: SQLAlchemyError) -> str:
    """The driver's own explanation, without SQLAlchemy's SQL echo and links."""
    cause = getattr(error, "orig", None) or error
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(error).__name__


def open_database(url: str, *, migrations: Sequence[Path]) -> Database:
    """Open *url* (``sqlite:///path`` or ``postgresql+psycopg://...``) without migrating it.

    *migrations* are the version-script directories of the services whose tables
    this database holds; :meth:`Database.upgrade` applies them.

    ``sqlite://`` (in memory) shares a single connection so that every session sees
    the same data; it suits tests and tools, while a multi-threaded server needs a file.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return Database(engine=_sqlite_engine(parsed), migrations=migrations)
    if backend == "postgresql":
        return Database(engine=_postgresql_engine(parsed), migrations=migrations)
    raise ValueError(f"unsupported database backend {backend!r}: use sqlite or postgresql")


def _sqlite_engine(url: URL) -> Engine:
    if sqlite3.sqlite_version_info < SQLITE_MINIMUM:
        raise ConfigError(
            f"SQLite {sqlite3.sqlite_version} is too old: the registry's statements need"
            f" {'.'.join(map(str, SQLITE_MINIMUM))} or newer (UPDATE ... FROM, RETURNING)"
        )
    in_memory = url.database in (None, "", ":memory:")
    # A URI filename (uri=true) may name options rather than a plain file; it is the caller's.
    if not in_memory and not url.query.get("uri"):
        _make_private(Path(str(url.database)))
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        # One shared connection, or each pooled connection would see its own empty database.
        poolclass=StaticPool if in_memory else None,
    )
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _make_private(database: Path) -> None:
    """Create the database file 0600 before SQLite does, and close up an existing one.

    The file holds every device's record and the audit trail. SQLite creates its
    ``-wal``, ``-shm`` and ``-journal`` files with the database file's own mode,
    so a database created 0600 keeps them private too, whatever the umask;
    companions an earlier, more open database left behind are closed up here
    (and must not be links, which SQLite never makes). The parent directory is
    not created: a mistyped path should fail, not scatter databases.
    """
    if not database.parent.is_dir():
        return  # SQLite reports the missing directory when it first connects.
    _close_up(database, os.O_RDWR | os.O_CREAT)
    for suffix in SQLITE_COMPANIONS:
        _close_up(database.with_name(database.name + suffix), os.O_RDONLY | os.O_NOFOLLOW)


def _close_up(path: Path, flags: int) -> None:
    """Open *path* with *flags* (creating it 0600 with O_CREAT) and take away group and
    other access; a missing file without O_CREAT is left missing."""
    try:
        descriptor = os.open(path, flags, PRIVATE_FILE)
    except FileNotFoundError:
        if flags & os.O_CREAT:
            raise StorageError(f"cannot create the database file {path}") from None
        return
    except OSError as exc:
        raise StorageError(f"cannot open the database file {path}: {exc.strerror}") from exc
    try:
        mode = stat.S_IMODE(os.fstat(descriptor).st_mode)
        if mode & SHARED_BITS:
            os.fchmod(descriptor, mode & PRIVATE_FILE)
            log.warning(
                "%s had mode %04o, open to other users; now %04o", path, mode, mode & PRIVATE_FILE
            )
    except OSError as exc:
        raise StorageError(f"{path} is open to other users and cannot be made private") from exc
    finally:
        os.close(descriptor)


def _configure_sqlite_connection(
    dbapi_connection: DBAPIConnection, connection_record: ConnectionPoolEntry
) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        raise TypeError("the sqlite engine must use the sqlite3 driver")
    # The driver's own implicit BEGIN skips SELECTs and DDL; transactions are begun
    # explicitly instead (see _begin_sqlite_transaction).
    dbapi_connection.isolation_level = None
    for pragma in SQLITE_PRAGMAS:
        dbapi_connection.execute(pragma).close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(schema.EXCLUSIVE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _postgresql_engine(url: URL) -> Engine:
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(
        url,
        pool_pre_ping=True,
        # A server that is gone must fail a request within seconds, not hang a worker.
        connect_args={"connect_timeout": POSTGRESQL_CONNECT_TIMEOUT_S, **_KEEPALIVE},
    )
    event.listen(engine, "connect", _configure_postgresql_connection)
    return engine


def _configure_postgresql_connection(
    dbapi_connection: DBAPIConnection, connection_record: ConnectionPoolEntry
) -> None:
    # A server configured with synchronous_commit=off could lose acknowledged writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("SET synchronous_commit TO on")
    cursor.execute(f"SET statement_timeout = {POSTGRESQL_STATEMENT_TIMEOUT_MS}")
    cursor.execute(f"SET lock_timeout = {POSTGRESQL_STATEMENT_TIMEOUT_MS}")
    cursor.close()
    dbapi_connection.commit()
