"""The state that the backend and every worker share, in one database (infrastructure, not core).

SQLite in the data folder on one host; PostgreSQL (``RLTHF_DATABASE_URL``) across hosts; through
SQLAlchemy Core, with Alembic migrations (``migrations/``) run when a process first opens it.

- ``database``: URLs (and their redaction), engines, migrating under a lock.
- ``schema``: the tables.
- ``judgments``: the judgment store behind ``core.judges.cache.CachedJudge``.
"""

from __future__ import annotations

from rlthf_backend.app.settings import Settings
from rlthf_backend.store.judgments import DatabaseJudgmentStore, judgment_store

#: The judgment cache of versions before the shared store, imported once from the data folder.
LEGACY_JUDGMENTS_FILE = "judgments.sqlite3"


def judgment_store_for(settings: Settings) -> DatabaseJudgmentStore:
    """This process's judgment store for ``settings`` (importing an earlier version's cache file)."""
    return judgment_store(settings.database_url_resolved(), settings.data_dir / LEGACY_JUDGMENTS_FILE)


__all__ = ["DatabaseJudgmentStore", "LEGACY_JUDGMENTS_FILE", "judgment_store", "judgment_store_for"]
