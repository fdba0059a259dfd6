"""A disk cache of text embeddings, shared by processes, keyed by (encoder, max length, text).

One SQLite file holds float32 vectors as blobs. The key is the encoder's identity, the token
limit (truncation changes the vector) and the sha256 of the text, so the cache never returns a
vector made by another model or another truncation. SQLite in WAL mode lets several processes
(web server, RQ workers, benchmarks) read and write the same file; writes use ``INSERT OR
IGNORE`` because two processes that embed the same text produce the same vector anyway.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: SQLite caps the number of "?" parameters per statement; stay well below every version's cap.
_CHUNK = 500


def text_key(text: str) -> str:
    """sha256 hex of the UTF-8 text: the per-text part of a cache key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_cache_dir() -> Path:
    """``~/.cache/rlthf-backend/embeddings``: beside the judgment cache of the default data dir."""
    return Path.home() / ".cache" / "rlthf-backend" / "embeddings"


class EmbeddingCache:
    """Batch get/put of float32 vectors for one (encoder id, max_seq_length) namespace."""

    FILENAME = "embeddings.sqlite3"

    def __init__(self, directory: Path | str, encoder_id: str, max_seq_length: int) -> None:
        self.directory = Path(directory).expanduser()
        self.path = self.directory / self.FILENAME
        self.encoder_id = encoder_id
        self.max_seq_length = int(max_seq_length)
        # One connection per process and thread: SQLite connections must not cross a fork, and
        # sqlite3 objects refuse use from another thread by default.
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        self.directory.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS embeddings ("
            " encoder TEXT NOT NULL, max_len INTEGER NOT NULL, text_sha TEXT NOT NULL,"
            " dim INTEGER NOT NULL, vec BLOB NOT NULL,"
            " PRIMARY KEY (encoder, max_len, text_sha)) WITHOUT ROWID"
        )
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys`` (text sha256s); missing keys are simply absent."""
        found: dict[str, np.ndarray] = {}
        conn = self._conn()
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT text_sha, dim, vec FROM embeddings WHERE encoder=? AND max_len=?"
                f" AND text_sha IN ({marks})",
                (self.encoder_id, self.max_seq_length, *chunk),
            )
            for sha, dim, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape[0] == dim:  # a torn or foreign row is treated as a miss
                    found[sha] = vec
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        """Store vectors by text sha256 in one transaction (first writer wins)."""
        if not items:
            return
        rows = [
            (self.encoder_id, self.max_seq_length, sha, int(v.shape[0]),
             np.ascontiguousarray(v, dtype=np.float32).tobytes())
            for sha, v in items.items()
        ]
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR IGNORE INTO embeddings VALUES (?,?,?,?,?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def count(self) -> int:
        """Vectors stored for this namespace."""
        (n,) = self._conn().execute(
            "SELECT COUNT(*) FROM embeddings WHERE encoder=? AND max_len=?",
            (self.encoder_id, self.max_seq_length),
        ).fetchone()
        return int(n)
