"""The judgment store's contract on both databases it runs on: SQLite (one host) and PostgreSQL
(several hosts; the server at 127.0.0.1:5432, a fresh database per test session).

Several processes at once: sharing judgments, writing the same keys, judging the same pairs
(each paid for once), migrating a fresh database together. Failure modes that need no server are
in tests/unit/test_judges_cache.py.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from rlthf_backend.core.judges.base import Judge
from rlthf_backend.core.judges.cache import CachedJudge
from rlthf_backend.core.types import Judgment, JudgeStatus, Pair
from rlthf_backend.store.database import close_database, head_revision, open_database
from rlthf_backend.store.judgments import DatabaseJudgmentStore
from rlthf_backend.store.schema import metadata
from tests.support.postgres import throwaway_database

DATABASES = ["sqlite", "postgresql"]


class CountingJudge(Judge):
    """Prefers the longer response; fails prompts "fail"; appends what it judged to ``log_file``."""

    kind = "counting"

    def __init__(self, log_file: str | None = None, delay_s: float = 0.0):
        self.log_file, self.delay_s = log_file, delay_s
        self.judged: list[str] = []
        self._lock = threading.Lock()

    def config(self):
        return {"kind": self.kind, "model": "counter"}

    def judge_many(self, pairs: Sequence[Pair]) -> list[Judgment]:
        time.sleep(self.delay_s)
        with self._lock:
            self.judged += [p.prompt for p in pairs]
        if self.log_file:
            with open(self.log_file, "a") as f:
                f.writelines(f"{p.prompt}\n" for p in pairs)
        return [Judgment.failure("counter", "HTTP 500") if p.prompt == "fail" else
                Judgment("a" if len(p.response_a) >= len(p.response_b) else "b", 0.9, JudgeStatus.OK, "counter",
                         verdict_ab="a", verdict_ba="b", raw=("r",), extra={"n": 1}) for p in pairs]


def _pairs(n: int, tag: str = "p") -> list[Pair]:
    return [Pair(f"{tag}{i}", "long answer", "short") for i in range(n)]


@contextmanager
def fresh_url(kind: str, tmp_path: Path):
    """A new, empty database of ``kind``."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    with throwaway_database("rlthf_fresh") as url:
        try:
            yield url
        finally:
            close_database(url)


@pytest.fixture(params=DATABASES)
def store_url(request, tmp_path) -> str:
    """The session's PostgreSQL database (emptied), or a new SQLite file."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite3'}"
    url = request.getfixturevalue("postgres_url")
    with open_database(url).engine.begin() as connection:
        connection.execute(text("TRUNCATE judgments, judgment_claims, legacy_imports"))
    return url


def test_judgments_round_trip_unchanged(store_url):
    inner = CountingJudge()
    first = CachedJudge(inner, DatabaseJudgmentStore(store_url)).judge_many(_pairs(3) + [Pair("fail", "x", "y")])
    again = CachedJudge(inner, DatabaseJudgmentStore(store_url)).judge_many(_pairs(3) + [Pair("fail", "x", "y")])
    assert inner.judged == ["p0", "p1", "p2", "fail", "fail"]  # failures are not kept
    assert [j.extra for j in again[:3]] == [{"n": 1, "cached": True}] * 3
    strip = [{**j.to_dict(), "extra": {}} for j in again[:3]]
    assert strip == [{**j.to_dict(), "extra": {}} for j in first[:3]]
    assert DatabaseJudgmentStore(store_url).health()["ok"] is True


def test_threads_share_one_store(store_url):
    store, inner = DatabaseJudgmentStore(store_url), CountingJudge()
    judge = CachedJudge(inner, store)
    errors: list[BaseException] = []

    def work(tag):
        try:
            for _ in range(3):
                assert len(judge.judge_many(_pairs(20, tag))) == 20
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{i}-",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and store.count() == 120 and len(inner.judged) == 120


def _in_processes(target, argsets: list[tuple]) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args) for args in argsets]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def _write_in_process(url: str, tag: str) -> None:
    judge = CachedJudge(CountingJudge(), DatabaseJudgmentStore(url))
    for i in range(10):
        judge.judge_many(_pairs(10, f"{tag}-{i}-"))


def test_processes_share_one_store(store_url):
    _in_processes(_write_in_process, [(store_url, f"proc{i}") for i in range(3)])
    assert DatabaseJudgmentStore(store_url).count() == 300


def _put_same_keys(url: str, reverse: bool, problems_file: str) -> None:
    store = DatabaseJudgmentStore(url)
    judgment = Judgment("a", 0.9, JudgeStatus.OK, "counter", verdict_ab="a")
    items = [(f"key{i:04d}", judgment) for i in range(600)]
    for _ in range(5):
        stored = store.put_many("fp", items[::-1] if reverse else items)
        if stored != 600 or not store.health()["ok"]:
            Path(problems_file).write_text(json.dumps([stored, store.health()]))


def test_concurrent_writes_of_the_same_keys_never_fail(store_url, tmp_path):
    problems = tmp_path / "problems.json"
    _in_processes(_put_same_keys, [(store_url, False, str(problems)), (store_url, True, str(problems))])
    assert not problems.exists(), problems.read_text()
    assert DatabaseJudgmentStore(store_url).count("fp") == 600


def _judge_shared_pairs(url: str, log_file: str, results_file: str) -> None:
    judge = CachedJudge(CountingJudge(log_file, delay_s=0.3), DatabaseJudgmentStore(url))
    results = judge.judge_many(_pairs(600, "shared"))
    Path(results_file).write_text(json.dumps([j.label for j in results]))


def test_processes_judging_the_same_pairs_at_once_pay_for_each_once(store_url, tmp_path):
    log = tmp_path / "judged.txt"
    _in_processes(_judge_shared_pairs, [(store_url, str(log), str(tmp_path / f"r{i}.json")) for i in range(3)])
    judged = log.read_text().split()
    assert len(judged) == 600 and len(set(judged)) == 600  # every pair once, across the three processes
    for i in range(3):
        assert json.loads((tmp_path / f"r{i}.json").read_text()) == ["a"] * 600


def _judge_until_killed(url: str, lease_s: float) -> None:
    """Claims the pairs and judges them for an hour (the test kills this process meanwhile)."""
    CachedJudge(CountingJudge(delay_s=3600), DatabaseJudgmentStore(url), claim_seconds=lease_s).judge_many(
        _pairs(5, "held"))


def _claims(url: str) -> list[tuple[str, float]]:
    with open_database(url).engine.connect() as connection:
        return [tuple(r) for r in connection.execute(text("SELECT owner, expires_at FROM judgment_claims"))]


def test_a_killed_judges_claims_lapse_within_one_lease(store_url):
    """A backend killed mid-judgment must not keep its pairs from everyone else for long: its claims
    are a lease it renews while alive, so they outlive the lease while it judges, and lapse once it died."""
    lease_s = 2.0
    holder = multiprocessing.get_context("spawn").Process(target=_judge_until_killed, args=(store_url, lease_s))
    holder.start()
    try:
        deadline = time.monotonic() + 30
        while len(_claims(store_url)) < 5:
            assert time.monotonic() < deadline and holder.is_alive(), "the holder never claimed its pairs"
            time.sleep(0.05)
        first_expiry = max(e for _, e in _claims(store_url))
        time.sleep(2 * lease_s)  # alive and judging: renewed, not lapsed
        claims = _claims(store_url)
        assert len({o for o, _ in claims}) == 1 and min(e for _, e in claims) > first_expiry
        keys = [p.content_key() for p in _pairs(5, "held")]
        assert DatabaseJudgmentStore(store_url).claim_many(CountingJudge().fingerprint(), keys, "other", 60) == set()
    finally:
        holder.kill()  # SIGKILL: no release, no goodbye
        holder.join(10)
    killed_at = time.monotonic()
    inner = CountingJudge()
    results = CachedJudge(inner, DatabaseJudgmentStore(store_url), claim_seconds=lease_s).judge_many(
        _pairs(5, "held"))
    took = time.monotonic() - killed_at
    assert [j.label for j in results] == ["a"] * 5 and sorted(inner.judged) == [f"held{i}" for i in range(5)]
    assert took < lease_s + 3, f"the dead holder's claims kept the pairs for {took:.1f} s"


@pytest.mark.parametrize("kind", DATABASES)
def test_migrations_create_exactly_the_schema_the_queries_use(kind, tmp_path):
    with fresh_url(kind, tmp_path) as url:
        engine = open_database(url).engine
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            assert context.get_current_revision() == head_revision()
            assert compare_metadata(context, metadata) == []


def _open_fresh(url: str) -> None:
    store = DatabaseJudgmentStore(url)
    assert store.health()["ok"], store.health()
    assert store.put_many("fp", [("k", Judgment("a", 0.9, JudgeStatus.OK, "m"))]) == 1


@pytest.mark.parametrize("kind", DATABASES)
def test_processes_opening_a_fresh_database_together_migrate_it_once(kind, tmp_path):
    with fresh_url(kind, tmp_path) as url:
        _in_processes(_open_fresh, [(url,)] * 4)
        with open_database(url).engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
                head_revision()]


def test_an_earlier_versions_file_is_imported_into_the_shared_database(store_url, tmp_path):
    import sqlite3

    legacy = tmp_path / "judgments.sqlite3"
    conn = sqlite3.connect(legacy)
    conn.execute("CREATE TABLE judgments (fingerprint TEXT NOT NULL, content_key TEXT NOT NULL, judgment TEXT NOT "
                 "NULL, created_at REAL NOT NULL, PRIMARY KEY (fingerprint, content_key)) WITHOUT ROWID")
    judge = CountingJudge()
    conn.executemany("INSERT INTO judgments VALUES (?, ?, ?, ?)",
                     [(judge.fingerprint(), p.content_key(), json.dumps(j.to_dict()), 1.7e9)
                      for p, j in zip(_pairs(4), judge.judge_many(_pairs(4)))])
    conn.commit()
    conn.close()
    store = DatabaseJudgmentStore(store_url, legacy)
    inner = CountingJudge()
    CachedJudge(inner, store).judge_many(_pairs(4))
    assert inner.judged == [] and store.count() == 4
    assert DatabaseJudgmentStore(store_url, legacy).import_legacy(legacy) == 0  # once


def test_a_database_that_answers_later_is_used_from_then_on(monkeypatch, caplog):
    """PostgreSQL not there at start (here: the database does not exist yet), then there."""
    import psycopg

    from rlthf_backend.store import judgments as store_module
    from tests.support.postgres import SERVER

    monkeypatch.setattr(store_module, "RETRY_OPEN_S", 0.0)
    with throwaway_database("rlthf_later") as existing:
        url = existing + "_not_yet"
        name = url.rsplit("/", 1)[1]
        store, inner = DatabaseJudgmentStore(url), CountingJudge()
        CachedJudge(inner, store).judge_many(_pairs(2))
        assert store.health()["ok"] is False and "does not exist" in store.health()["detail"]
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            CachedJudge(inner, store).judge_many(_pairs(2))  # reopened, migrated, stored
            CachedJudge(inner, store).judge_many(_pairs(2))  # answered from it
            assert inner.judged == ["p0", "p1"] * 2
            assert store.health() == {"ok": True, "database": "postgresql"}
            assert "answers again" in caplog.text
        finally:
            store.close()
            with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
