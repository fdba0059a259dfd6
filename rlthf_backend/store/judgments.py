"""The judgment store: every judge's verdicts, by judge fingerprint and pair content key, in the
shared database (``core.judges.cache.JudgmentStore``, for ``CachedJudge``).

A cache is only a cache. When the database cannot be opened or reached, lookups miss, writes are
skipped and claims are all granted (each caller judges by itself): judging goes on, at the price
of paying again. The first failure is logged once, ``/health`` says so until it clears, and
nothing is ever written to a file that does not read as a database. What clears by itself
(a server that comes back, a busy file) is tried again: opening after :data:`RETRY_OPEN_S`,
reads and writes on the next call. What does not (a corrupt SQLite file) stays off until the
process restarts; a read-only database keeps answering lookups.

SQLite's busy timeout bounds one statement, not a caller's work: behind another process's long
write transaction, a batch's claim, put and release would each wait it out. So a caller (one
``CachedJudge.judge_many``, one ``/predict``) gets a :meth:`DatabaseJudgmentStore.deadline`: its
statements wait at most what is left of it, and once it is spent the rest of its work goes
without the store (misses, nothing stored), with one log line. PostgreSQL is left as it was: its
waits are connection timeouts and outages, handled above.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from rlthf_backend.core.types import Judgment
from rlthf_backend.store.database import (SQLITE_BUSY_TIMEOUT_S, Database, DatabaseUnavailable, close_database,
                                          open_database, redact)
from rlthf_backend.store.schema import judgment_claims, judgments, legacy_imports

log = logging.getLogger(__name__)

#: Keys per statement: SQLite's historical limit on bound parameters is 999.
CHUNK = 400
#: Seconds between two attempts to open a database that could not be opened.
RETRY_OPEN_S = 30.0


class _Budget:
    """Seconds one caller's store work may still spend in SQLite statements (waits included)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.left = seconds
        self.logged = False  # one log line per caller, whatever happens after

    def log_once(self, message: str, *args: Any) -> None:
        if not self.logged:
            self.logged = True
            log.warning(message, *args)


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("judgment_store_budget", default=None)


def _busy_timeout(connection: Connection, seconds: float) -> None:
    """How long this SQLite connection's statements wait for another writer (the raw connection:
    SQLAlchemy's transaction bookkeeping is not involved)."""
    raw = connection.connection.driver_connection
    raw.execute(f"PRAGMA busy_timeout = {max(0, int(seconds * 1000))}")  # type: ignore[union-attr]


def _insert(dialect: str):
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


class DatabaseJudgmentStore:
    """Judgments in the shared database (see the module docstring for what happens on failure).

    ``legacy_file``: a ``judgments.sqlite3`` of an earlier version, imported once (its judgments
    were paid for).
    """

    def __init__(self, url: str, legacy_file: Path | None = None) -> None:
        self.url = url
        self.display_url = redact(url)
        self.legacy_file = legacy_file
        self._database: Database | None = None
        self._lock = threading.Lock()
        self._retry_open_at = 0.0
        self.read_problem: str | None = None  # lasting: lookups are skipped until restart
        self.write_problem: str | None = None  # lasting: nothing is stored until restart
        self.outage: str | None = None  # passing: cleared by the next statement that works
        self._warned_rows = False
        self._open()

    # --- opening and failures -----------------------------------------------------------------

    def _open(self) -> Database | None:
        """The database, opening it if it is time to try again; None while it cannot be used."""
        if self._database is not None:
            return self._database
        if self.read_problem is not None:
            return None
        with self._lock:
            if self._database is not None or time.monotonic() < self._retry_open_at:
                return self._database
            try:
                database = open_database(self.url)
            except DatabaseUnavailable as exc:
                self._retry_open_at = time.monotonic() + RETRY_OPEN_S
                self._outage(str(exc))
                return None
            self._database = database
        if self.legacy_file is not None:
            self.import_legacy(self.legacy_file)
        self._recovered()
        return database

    def _outage(self, message: str) -> None:
        if self.outage is None:
            log.error("judgment store %s: %s; judging without it (nothing is looked up or kept) until it answers",
                      self.display_url, message)
        self.outage = message

    def _recovered(self) -> None:
        if self.outage is not None:
            log.warning("judgment store %s answers again", self.display_url)
            self.outage = None

    def _failed(self, doing: str, exc: SQLAlchemyError) -> None:
        """Sort a failed statement: busy (this call goes without), unreachable (until it answers),
        read-only (no writes), anything else (off until restart)."""
        assert self._database is not None
        message = self._database.describe(exc)
        lowered = message.lower()
        if "locked" in lowered or "busy" in lowered or "deadlock" in lowered:
            budget = self._running_budget(self._database)
            if budget is not None:
                budget.log_once("judgment store %s busy while trying to %s (%s); this call goes without it while "
                                "busy, waiting %.1f s at most in all", self.display_url, doing, message,
                                budget.seconds)
                return
            log.warning("judgment store %s busy while trying to %s (%s); this batch goes without it",
                        self.display_url, doing, message)
            return
        went_away = isinstance(exc, DBAPIError) and exc.connection_invalidated
        server_error = self._database.dialect == "postgresql" and isinstance(exc, (OperationalError, InterfaceError))
        if went_away or server_error:
            self._outage(f"cannot {doing}: {message}")
            return
        readonly = "readonly" in lowered.replace(" ", "").replace("-", "")
        with self._lock:
            if doing != "read" or readonly:
                if self.write_problem is not None:
                    return
                self.write_problem = f"cannot {doing}: {message}"
            else:
                if self.read_problem is not None:
                    return
                self.read_problem = self.write_problem = f"cannot {doing}: {message}"
        log.error("judgment store %s: cannot %s (%s); serving without %s until restart. Fix the database (a "
                  "SQLite file: move it away, or fix its permissions) and restart to cache again.",
                  self.display_url, doing, message, "storing judgments" if self.read_problem is None else "it")

    def health(self) -> dict[str, Any]:
        """For ``/health``: whether judgments are looked up and kept, and why not (no password,
        no file path). Never waits for the database: a due attempt to reopen it runs aside."""
        if self._database is None and self.read_problem is None and time.monotonic() >= self._retry_open_at \
                and not self._lock.locked():
            threading.Thread(target=self._open, daemon=True, name="judgment-store-reopen").start()
        if self.read_problem is not None:
            return {"ok": False, "detail": f"serving without the judgment cache ({self.read_problem})"}
        if self.outage is not None:
            return {"ok": False, "detail": f"serving without the judgment cache until the database answers "
                                           f"({self.outage})"}
        if self.write_problem is not None:
            return {"ok": False, "detail": f"judgments are not stored ({self.write_problem})"}
        assert self._database is not None
        return {"ok": True, "database": self._database.dialect}

    # --- one caller's deadline --------------------------------------------------------------------

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Bound the store work of the calls made inside (this thread or task) to ``seconds`` in
        all, on SQLite. A deadline already running holds (the outermost caller's is the request's)."""
        if _budget.get() is not None:
            yield
            return
        token = _budget.set(_Budget(seconds))
        try:
            yield
        finally:
            _budget.reset(token)

    def _running_budget(self, database: Database | None) -> _Budget | None:
        return _budget.get() if database is not None and database.dialect == "sqlite" else None

    def _spent(self, doing: str) -> bool:
        """Whether the running deadline is spent: then ``doing`` is skipped, without waiting."""
        budget = self._running_budget(self._database)
        if budget is None or budget.left > 0:
            return False
        budget.log_once("judgment store %s: this call's %.1f s for the store are spent (another process holds "
                        "the file?); it goes on without the store (lookups miss, %s and the rest are skipped)",
                        self.display_url, budget.seconds, doing)
        return True

    @contextlib.contextmanager
    def _connection(self, database: Database, write: bool) -> Iterator[Connection]:
        """A connection (in a transaction when ``write``) whose statements wait for SQLite's locks
        at most what is left of the running deadline; the time it took is charged to it."""
        budget = self._running_budget(database)
        started = time.monotonic()
        try:
            with (database.engine.begin() if write else database.engine.connect()) as connection:
                if budget is None:
                    yield connection
                    return
                _busy_timeout(connection, min(max(budget.left, 0.0), SQLITE_BUSY_TIMEOUT_S))
                try:
                    yield connection
                finally:
                    with contextlib.suppress(sqlite3.Error, SQLAlchemyError):
                        _busy_timeout(connection, SQLITE_BUSY_TIMEOUT_S)  # back to the pool as it came
        finally:
            if budget is not None:
                budget.left -= time.monotonic() - started

    # --- the store ------------------------------------------------------------------------------

    def get_many(self, fingerprint: str, keys: Sequence[str]) -> dict[str, Judgment]:
        """The stored judgments among ``keys`` (absent keys are simply missing from the result)."""
        found: dict[str, Judgment] = {}
        if self._spent("lookups"):
            return found
        database = self._open()
        if database is None or self.read_problem is not None:
            return found
        unique = list(dict.fromkeys(keys))
        try:
            with self._connection(database, write=False) as connection:
                for start in range(0, len(unique), CHUNK):
                    chunk = unique[start : start + CHUNK]
                    rows = connection.execute(
                        select(judgments.c.content_key, judgments.c.judgment)
                        .where(judgments.c.fingerprint == fingerprint, judgments.c.content_key.in_(chunk))
                    )
                    for key, blob in rows:
                        judgment = self._decode(key, blob)
                        if judgment is not None:
                            found[key] = judgment
        except SQLAlchemyError as exc:
            self._failed("read", exc)
            return {}
        self._recovered()
        return found

    def _decode(self, key: str, blob: str) -> Judgment | None:
        """A stored judgment, or None (a miss, judged and stored again) for a mangled row."""
        try:
            return Judgment.from_dict(json.loads(blob))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            if not self._warned_rows:
                self._warned_rows = True
                log.warning("judgment store %s: unreadable judgment %s (%s: %s) is judged again; further ones "
                            "are not logged", self.display_url, key, type(exc).__name__, exc)
            return None

    def put_many(self, fingerprint: str, items: Iterable[tuple[str, Judgment]]) -> int:
        """Store the OK judgments among ``items`` (one transaction); returns how many were stored.

        A key stored meanwhile by another process is overwritten (both are the same judge's verdict
        on the same pair); keys go in sorted order, so concurrent writers lock rows in one order.
        """
        now = time.time()
        rows = sorted(
            ({"fingerprint": fingerprint, "content_key": key, "judgment": json.dumps(j.to_dict(), default=str),
              "created_at": now} for key, j in items if j.ok),
            key=lambda row: row["content_key"],
        )
        rows = list({row["content_key"]: row for row in rows}.values())
        if rows and self._spent("storing"):
            return 0
        database = self._open()
        if not rows or database is None or self.write_problem is not None:
            return 0
        insert = _insert(database.dialect)(judgments)
        statement = insert.on_conflict_do_update(
            index_elements=[judgments.c.fingerprint, judgments.c.content_key],
            set_={"judgment": insert.excluded.judgment, "created_at": insert.excluded.created_at},
        )
        try:
            with self._connection(database, write=True) as connection:  # one transaction: one fsync for the batch
                for start in range(0, len(rows), CHUNK):
                    connection.execute(statement, rows[start : start + CHUNK])
        except SQLAlchemyError as exc:
            self._failed("write", exc)
            return 0
        self._recovered()
        return len(rows)

    def claim_many(self, fingerprint: str, keys: Sequence[str], owner: str, seconds: float) -> set[str]:
        """Claim ``keys`` for ``owner`` until ``seconds`` from now: the keys ``owner`` holds after
        (free ones, lapsed ones, its own). Without a working database every key is granted."""
        unique = sorted(set(keys))
        if self._spent("claims"):
            return set(unique)
        database = self._open()
        if database is None or self.write_problem is not None:
            return set(unique)
        now = time.time()
        insert = _insert(database.dialect)(judgment_claims)
        statement = insert.on_conflict_do_update(
            index_elements=[judgment_claims.c.fingerprint, judgment_claims.c.content_key],
            set_={"owner": insert.excluded.owner, "expires_at": insert.excluded.expires_at},
            where=(judgment_claims.c.expires_at < now) | (judgment_claims.c.owner == owner),
        )
        held: set[str] = set()
        try:
            with self._connection(database, write=True) as connection:
                for start in range(0, len(unique), CHUNK):
                    chunk = unique[start : start + CHUNK]
                    connection.execute(statement, [{"fingerprint": fingerprint, "content_key": k, "owner": owner,
                                                    "expires_at": now + seconds} for k in chunk])
                    held.update(connection.scalars(
                        select(judgment_claims.c.content_key).where(
                            judgment_claims.c.fingerprint == fingerprint, judgment_claims.c.owner == owner,
                            judgment_claims.c.content_key.in_(chunk))
                    ))
        except SQLAlchemyError as exc:
            self._failed("claim", exc)
            return set(unique)
        return held

    def release_many(self, fingerprint: str, keys: Sequence[str], owner: str) -> None:
        """Drop ``owner``'s claims on ``keys`` (a lapsed claim another caller took is left alone).

        Tried even when the deadline is spent, without waiting: a claim left behind makes other
        callers wait for it to lapse."""
        unique = sorted(set(keys))
        database = self._open()
        if not unique or database is None or self.write_problem is not None:
            return
        try:
            with self._connection(database, write=True) as connection:
                for start in range(0, len(unique), CHUNK):
                    connection.execute(delete(judgment_claims).where(
                        judgment_claims.c.fingerprint == fingerprint, judgment_claims.c.owner == owner,
                        judgment_claims.c.content_key.in_(unique[start : start + CHUNK])))
        except SQLAlchemyError as exc:
            self._failed("release", exc)

    def count(self, fingerprint: str | None = None) -> int:
        """Judgments stored (for one judge, or all). Raises when the database cannot be opened."""
        database = self._open()
        if database is None:
            raise DatabaseUnavailable(self.outage or self.read_problem or "the judgment store is off")
        query = select(func.count()).select_from(judgments)
        if fingerprint is not None:
            query = query.where(judgments.c.fingerprint == fingerprint)
        with database.engine.connect() as connection:
            return int(connection.scalar(query) or 0)

    def close(self) -> None:
        """Close this process's connections to the database (a later call opens it again)."""
        with self._lock:
            self._database = None
        close_database(self.url)

    # --- judgments of earlier versions -----------------------------------------------------------

    def import_legacy(self, path: Path) -> int:
        """Copy the judgments of an earlier version's ``judgments.sqlite3`` into the store, once
        per file (its path, size and mtime are remembered); judgments the store already holds
        win. The file is only read. Returns how many judgments were new."""
        database = self._database
        if database is None or self.write_problem is not None or not path.is_file():
            return 0
        stat = path.stat()
        source = f"{path.resolve()} size={stat.st_size} mtime_ns={stat.st_mtime_ns}"[-512:]
        try:
            with database.engine.connect() as connection:
                if connection.scalar(select(legacy_imports.c.source).where(legacy_imports.c.source == source)):
                    return 0
            rows = _read_legacy(path)
            insert = _insert(database.dialect)(judgments).on_conflict_do_nothing(
                index_elements=[judgments.c.fingerprint, judgments.c.content_key])
            with database.engine.begin() as connection:
                before = connection.scalar(select(func.count()).select_from(judgments)) or 0
                for start in range(0, len(rows), CHUNK):
                    connection.execute(insert, rows[start : start + CHUNK])
                added = (connection.scalar(select(func.count()).select_from(judgments)) or 0) - before
                connection.execute(_insert(database.dialect)(legacy_imports).on_conflict_do_nothing(),
                                   {"source": source, "judgments": len(rows), "imported_at": time.time()})
        except sqlite3.Error as exc:
            log.warning("judgments of an earlier version in %s cannot be read (%s: %s); not imported (move the "
                        "file away to silence this)", path, type(exc).__name__, exc)
            return 0
        except SQLAlchemyError as exc:
            self._failed("import", exc)
            return 0
        log.info("imported %d judgments (%d new) from %s, an earlier version's cache; the file is no longer used",
                 len(rows), added, path)
        return int(added)


def _read_legacy(path: Path) -> list[dict[str, Any]]:
    """Every row of an earlier version's ``judgments.sqlite3``, read without writing to it."""
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return [{"fingerprint": fp, "content_key": key, "judgment": blob, "created_at": float(created)}
                for fp, key, blob, created in connection.execute(
                    "SELECT fingerprint, content_key, judgment, created_at FROM judgments")]
    finally:
        connection.close()


_stores: dict[tuple[str, Path | None], DatabaseJudgmentStore] = {}
_stores_lock = threading.Lock()


def judgment_store(url: str, legacy_file: Path | None = None) -> DatabaseJudgmentStore:
    """The judgment store at ``url``, one per process (every judge of the process shares it)."""
    with _stores_lock:
        store = _stores.get((url, legacy_file))
        if store is None:
            store = _stores[(url, legacy_file)] = DatabaseJudgmentStore(url, legacy_file)
        return store
