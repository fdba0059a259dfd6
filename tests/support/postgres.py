"""Throwaway databases on the PostgreSQL server of this machine (127.0.0.1:5432, trust auth).

Each test session gets its own database, dropped at its end; tests skip, saying why, only when
the server does not answer.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

SERVER = os.environ.get("RLTHF_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def _admin():
    import psycopg

    try:
        return psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {SERVER} ({str(exc).strip().splitlines()[0]}): start it, or set "
                    "RLTHF_TEST_POSTGRES to one")


@contextmanager
def throwaway_database(prefix: str = "rlthf_test") -> Iterator[str]:
    """A new empty database; yields its SQLAlchemy URL and drops it afterwards."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
