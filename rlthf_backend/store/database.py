"""The one database that the backend and every worker share: URL, engine, migrations.

SQLite (a file in the data folder) on one host; PostgreSQL when ``RLTHF_DATABASE_URL`` names one,
for several hosts. Opening a database migrates it to the newest Alembic revision, under a lock
that every process takes (a PostgreSQL advisory lock, or a lock file beside the SQLite file), so
processes starting together never race to create the same tables.

URLs may carry a password: only :func:`redact`-ed URLs and :func:`describe_error`-ed messages
leave this module.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock
from sqlalchemy import URL, create_engine, event, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Seconds a SQLite statement waits for another process's write before failing as "locked".
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Seconds to wait for a PostgreSQL server to accept a connection.
POSTGRES_CONNECT_TIMEOUT_S = 10
#: The advisory lock every process takes while migrating a PostgreSQL database (any fixed number;
#: derived from a name so that it says whose it is).
MIGRATION_LOCK_KEY = zlib.crc32(b"rlthf-backend store migrations")
#: Seconds of waiting for another process's migration before giving up.
MIGRATION_LOCK_TIMEOUT_S = 300.0

SUPPORTED = ("sqlite", "postgresql")


class DatabaseUnavailable(Exception):
    """The database cannot be opened or migrated; the message names no password."""


def engine_url(url: str) -> URL:
    """The SQLAlchemy URL for ``url``: ``sqlite:///PATH`` or ``postgresql://...`` (psycopg 3 is
    the driver whatever the URL names). Raises ValueError (without the password) for others."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"{redact(url)!r} is not a database URL (sqlite:///PATH or postgresql://...)") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
    if backend not in SUPPORTED:
        raise ValueError(f"{redact(url)!r}: unsupported database {backend!r}; use sqlite:///PATH or postgresql://...")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if not parsed.database:
        raise ValueError(f"{redact(url)!r}: give SQLite a file (sqlite:///PATH); a database in memory is not shared")
    return parsed.set(drivername="sqlite")


def redact(url: str | URL) -> str:
    """``url`` without its password (``***`` instead), fit for logs, errors and ``/health``."""
    try:
        return (url if isinstance(url, URL) else make_url(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return "<not a database URL>"


def describe_error(exc: BaseException, url: URL | None = None) -> str:
    """One line for ``exc``: the driver's own message (not SQLAlchemy's wrapping with the SQL and
    a link), never the password of ``url``."""
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    message = f"{type(inner).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    password = url.password if url is not None else None
    if password:
        message = message.replace(str(password), "***")
    return message


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL); ``file:`` URIs included."""
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    name = url.database
    if name.startswith("file:"):
        name = name[len("file:"):].split("?", 1)[0]
    return Path(name)


def create_engine_for(url: str | URL) -> Engine:
    """An engine with this project's settings for its dialect (no connection is made yet)."""
    url = engine_url(url) if isinstance(url, str) else url
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None and url.query.get("mode") != "ro":
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A handful of connections per process is plenty (judgments go in batches); pre-ping replaces a
    # connection the server or a proxy closed while idle, recycle does so before idle timeouts bite.
    return create_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True, pool_recycle=1800,
                         connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S})


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers never block the writer, so processes and threads share the file.
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across application crashes in WAL mode; an OS crash may lose the last
        # writes, which costs a re-judgment, never corruption.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def alembic_config() -> Config:
    """Alembic's configuration for the packaged migrations."""
    from alembic.config import Config  # alembic is imported only by processes that open a database

    return Config(str(MIGRATIONS / "alembic.ini"))


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()  # type: ignore[return-value]


def known_revision(revision: str) -> bool:
    """Whether this version's migrations know ``revision`` (a newer version's do not)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the database to the newest revision, one process at a time (a database already
    there is only read)."""
    current = current_revision(engine)
    if current == head_revision():
        return
    if current is not None and not known_revision(current):
        # A newer version migrated it; its tables may mean what this version cannot know.
        raise DatabaseUnavailable(f"the database is at schema revision {current}, which this version does not "
                                  f"know (its newest is {head_revision()}): upgrade rlthf-backend on this host")
    from alembic import command

    config = alembic_config()
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT set_config('lock_timeout', :ms, false)"),
                               {"ms": str(int(MIGRATION_LOCK_TIMEOUT_S * 1000))})
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.execute(text("SELECT set_config('lock_timeout', '0', false)"))
                connection.commit()
        return
    path = sqlite_path(engine.url)
    lock = FileLock(f"{path}.migrate-lock", timeout=MIGRATION_LOCK_TIMEOUT_S) if path else None
    if lock is not None and engine.url.query.get("mode") == "ro":
        lock = None  # a read-only database cannot be migrated anyway; its folder may be read-only too
    with lock if lock is not None else contextlib.nullcontext():
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()


class Database:
    """An engine on a migrated database."""

    def __init__(self, url: str) -> None:
        self.url = engine_url(url)
        self.dialect = self.url.get_backend_name()
        self.display_url = redact(self.url)
        self.engine = create_engine_for(self.url)
        from alembic.util import CommandError

        try:
            migrate(self.engine)
        except DatabaseUnavailable:
            self.engine.dispose()
            raise
        except (SQLAlchemyError, OSError, TimeoutError, CommandError) as exc:
            self.engine.dispose()
            raise DatabaseUnavailable(f"cannot open the {self.dialect} database: {describe_error(exc, self.url)}") \
                from None

    def describe(self, exc: BaseException) -> str:
        return describe_error(exc, self.url)


_open: dict[str, Database] = {}
_open_lock = threading.Lock()


def open_database(url: str) -> Database:
    """The migrated database at ``url``, one per process (its engine and pool are shared by every
    caller). Raises :class:`DatabaseUnavailable`, and tries again on the next call."""
    with _open_lock:
        database = _open.get(url)
        if database is None:
            database = _open[url] = Database(url)
        return database


def close_database(url: str) -> None:
    """Close this process's connections to ``url`` (the next :func:`open_database` opens anew)."""
    with _open_lock:
        database = _open.pop(url, None)
    if database is not None:
        database.engine.dispose()


def _forget_pools_in_child() -> None:
    # A forked child (an RQ work-horse, a gunicorn worker) must not use its parent's connections:
    # it opens its own, and leaves the parent's alone (close=False).
    for database in list(_open.values()):
        database.engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)
