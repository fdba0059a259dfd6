"""The state that the backend and every worker share, in one database (infrastructure, not core).

SQLite in the data folder on one host; PostgreSQL (``RLTHF_DATABASE_URL``) across hosts; through
SQLAlchemy Core, with Alembic migrations (``migrations/``) run when a process first opens it.

- ``database``: URLs (and their redaction), engines, migrating under a lock.
- ``schema``: the tables.
- ``judgments``: the judgment store behind ``core.judges.cache.CachedJudge``.
- ``snapshots`` / ``projects``: each project's snapshot of Label Studio, and its tables.
"""

from __future__ import annotations

from rlthf_backend.store.judgments import DatabaseJudgmentStore, judgment_store

#: The judgment cache of versions before the shared store, imported once from the data folder.
LEGACY_JUDGMENTS_FILE = "judgments.sqlite3"

__all__ = ["DatabaseJudgmentStore", "LEGACY_JUDGMENTS_FILE", "judgment_store"]
