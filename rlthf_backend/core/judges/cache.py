"""A persistent cache of judgments, so a pair is never sent to the same judge twice.

Judgments live in SQLite (WAL mode: readers never block the writer, and several server
processes and threads can share the file), keyed by the judge's fingerprint (its config hash:
a new model, prompt or criteria means new keys) and the pair's content hash. Only successful
judgments are stored; failures are retried on the next request.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rlthf_backend.core.judges.base import Judge
from rlthf_backend.core.types import Judgment, Pair

log = logging.getLogger(__name__)

#: SQLite's historical limit on bound parameters is 999; stay well under it per query.
_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS judgments (
    fingerprint TEXT NOT NULL,
    content_key TEXT NOT NULL,
    judgment    TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (fingerprint, content_key)
) WITHOUT ROWID
"""


class JudgmentCache:
    """Judgments by (judge fingerprint, pair content key), in one SQLite file.

    Each thread gets its own connection (SQLite connections must not be shared across threads
    without care); processes coordinate through SQLite's file locks, waiting up to
    ``busy_timeout`` seconds for a writer.

    A cache is only a cache: when the file cannot be read (corrupt, not a database, unopenable)
    lookups miss, and when it cannot be written (read-only) fresh judgments are still returned,
    just not kept. Either way the first failure is logged once, with the file, and
    :meth:`health` says so until the process restarts; the file itself is never touched.
    """

    def __init__(self, path: Path | str, busy_timeout: float = 30.0):
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._state_lock = threading.Lock()
        self.read_problem: str | None = None  # set: lookups are skipped
        self.write_problem: str | None = None  # set: nothing is stored
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            self._failed("open", exc)

    def _open(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=self.busy_timeout)

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across application crashes in WAL mode; only an OS crash may lose
            # the last writes, which for a cache costs a re-judgment, not corruption.
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _failed(self, doing: str, exc: Exception) -> None:
        """Turn the cache (or its writes) off after an error that will not go away by itself."""
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
            log.warning("judgment cache %s busy while trying to %s (%s); this batch goes without it",
                        self.path, doing, exc)
            return
        # A read-only file still answers lookups; anything else (corrupt, not a database) does not.
        readonly = isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc).replace(" ", "")
        with self._state_lock:
            if doing == "write" or readonly:
                if self.write_problem is not None:
                    return
                self.write_problem = f"cannot {doing}: {message}"
            else:
                if self.read_problem is not None:
                    return
                self.read_problem = self.write_problem = f"cannot {doing}: {message}"
        log.error("judgment cache %s: cannot %s (%s); serving without %s until restart. Move the file away "
                  "(or fix its permissions) and restart to cache again.", self.path, doing, message,
                  "storing judgments" if self.read_problem is None else "it")

    def health(self) -> dict[str, Any]:
        """For ``/health``: whether the cache is fully in use, and why not."""
        if self.read_problem is not None:
            return {"ok": False, "detail": f"serving without the judgment cache ({self.read_problem})"}
        if self.write_problem is not None:
            return {"ok": False, "detail": f"judgments are not stored ({self.write_problem})"}
        return {"ok": True}

    def get_many(self, fingerprint: str, keys: Sequence[str]) -> dict[str, Judgment]:
        """The cached judgments among ``keys`` (absent keys are simply missing from the result)."""
        found: dict[str, Judgment] = {}
        if self.read_problem is not None:
            return found
        unique = list(dict.fromkeys(keys))
        try:
            conn = self._connect()
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT content_key, judgment FROM judgments WHERE fingerprint = ? AND content_key IN ({marks})",
                    (fingerprint, *chunk),
                ).fetchall()
                for key, blob in rows:
                    found[key] = Judgment.from_dict(json.loads(blob))
        except (sqlite3.Error, OSError, ValueError, TypeError, KeyError) as exc:  # incl. a mangled row
            self._failed("read", exc)
            return {}
        return found

    def put_many(self, fingerprint: str, items: Iterable[tuple[str, Judgment]]) -> int:
        """Store the OK judgments among ``items`` (one transaction); returns how many were stored."""
        now = time.time()
        rows = [(fingerprint, key, json.dumps(j.to_dict(), default=str), now) for key, j in items if j.ok]
        if not rows or self.write_problem is not None:
            return 0
        try:
            conn = self._connect()
            with conn:  # one transaction: one fsync for the batch
                conn.executemany(
                    "INSERT OR REPLACE INTO judgments (fingerprint, content_key, judgment, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    rows,
                )
        except (sqlite3.Error, OSError) as exc:
            self._failed("write", exc)
            return 0
        return len(rows)

    def count(self, fingerprint: str | None = None) -> int:
        conn = self._connect()
        if fingerprint is None:
            return conn.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
        return conn.execute(
            "SELECT COUNT(*) FROM judgments WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()[0]

    def close(self) -> None:
        """Close this thread's connection (other threads' close when they end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class CachedJudge(Judge):
    """A judge that answers from :class:`JudgmentCache` first and asks ``inner`` only for misses.

    Misses are judged in one ``inner.judge_many`` call (so the inner judge keeps its batching
    and concurrency), each distinct pair once even if repeated in the batch. Judgments served
    from the cache carry ``extra["cached"] = True``. Config, kind and fingerprint are the inner
    judge's, so the cache is invisible in model versions.
    """

    def __init__(self, inner: Judge, cache: JudgmentCache):
        self.inner = inner
        self.cache = cache
        self.kind = inner.kind
        self.cacheable = inner.cacheable

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def fingerprint(self) -> str:
        # Computed once: it hashes the config, and judge_many needs it on every call.
        fp = self.__dict__.get("_fingerprint")
        if fp is None:
            fp = self.__dict__["_fingerprint"] = self.inner.fingerprint()
        return fp

    def judge_many(self, pairs: Sequence[Pair]) -> list[Judgment]:
        fingerprint = self.fingerprint()
        keys = [p.content_key() for p in pairs]
        hits = self.cache.get_many(fingerprint, keys)
        results: dict[str, Judgment] = {
            k: dataclasses.replace(j, extra={**j.extra, "cached": True}) for k, j in hits.items()
        }
        misses: dict[str, Pair] = {}
        for key, pair in zip(keys, pairs):
            if key not in results and key not in misses:
                misses[key] = pair
        if misses:
            fresh = self.inner.judge_many(list(misses.values()))
            results.update(zip(misses.keys(), fresh))
            self.cache.put_many(fingerprint, zip(misses.keys(), fresh))
        return [results[k] for k in keys]
