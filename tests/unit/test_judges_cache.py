"""The caching judge over the judgment store, on SQLite (single-host mode; no server needed).

The store's contract on both SQLite and PostgreSQL: tests/integration/test_judgment_store.py.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from rlthf_backend.core.judges.base import Judge
from rlthf_backend.core.judges.cache import CHUNK_PAIRS, CachedJudge
from rlthf_backend.core.judges.precomputed import PrecomputedJudge
from rlthf_backend.core.types import JudgeStatus, Judgment, Pair
from rlthf_backend.app.judges import make_judge
from rlthf_backend.app.settings import Settings
from rlthf_backend.app.project import shared_judgment_store
from rlthf_backend.store.database import engine_url
from rlthf_backend.store.judgments import DatabaseJudgmentStore


def sqlite_store(path) -> DatabaseJudgmentStore:
    """The store in single-host mode: one SQLite file."""
    return DatabaseJudgmentStore(f"sqlite:///{path}")


class CountingJudge(Judge):
    """Prefers the longer response; fails pairs whose prompt is "fail"; records every call."""

    kind = "counting"

    def __init__(self, version: str = "v1"):
        self.version = version
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def config(self):
        return {"kind": self.kind, "model": "counter", "version": self.version}

    def judge_many(self, pairs: Sequence[Pair]) -> list[Judgment]:
        with self._lock:
            self.calls.append([p.prompt for p in pairs])
        out = []
        for p in pairs:
            if p.prompt == "fail":
                out.append(Judgment.failure("counter", "HTTP 500 after 4 retries"))
            else:
                label = "a" if len(p.response_a) >= len(p.response_b) else "b"
                out.append(
                    Judgment(
                        label, 0.9, JudgeStatus.OK, "counter", verdict_ab=label, raw=("r",), extra={"n": 1}
                    )
                )
        return out


def _pairs(n: int, tag: str = "p") -> list[Pair]:
    return [Pair(f"{tag}{i}", "long answer", "short") for i in range(n)]


@pytest.fixture
def cache(tmp_path):
    return sqlite_store(tmp_path / "state.sqlite3")


def test_results_are_served_from_the_cache_the_second_time(cache):
    inner = CountingJudge()
    judge = CachedJudge(inner, cache)
    first = judge.judge_many(_pairs(3))
    second = judge.judge_many(_pairs(3))
    assert len(inner.calls) == 1
    assert [j.label for j in second] == [j.label for j in first] == ["a", "a", "a"]
    assert all("cached" not in j.extra for j in first)
    assert all(j.extra == {"n": 1, "cached": True} for j in second)
    # Everything else round-trips through SQLite unchanged.
    assert [j.__class__(**{**j.__dict__, "extra": {}}) for j in second] == [
        j.__class__(**{**j.__dict__, "extra": {}}) for j in first
    ]


def test_only_misses_are_judged_in_one_call_each_distinct_pair_once(cache):
    inner = CountingJudge()
    judge = CachedJudge(inner, cache)
    judge.judge_many(_pairs(2))
    batch = [
        Pair("p0", "long answer", "short"),
        Pair("new", "a", "bbb"),
        Pair("p1", "long answer", "short"),
        Pair("new", "a", "bbb"),
    ]
    results = judge.judge_many(batch)
    assert inner.calls[-1] == ["new"]
    assert [j.label for j in results] == ["a", "b", "a", "b"]
    assert [j.extra.get("cached", False) for j in results] == [True, False, True, False]


def test_failures_are_not_cached_and_are_retried(cache):
    inner = CountingJudge()
    judge = CachedJudge(inner, cache)
    batch = [Pair("fail", "x", "y"), Pair("ok", "x", "y")]
    first = judge.judge_many(batch)
    assert [j.status for j in first] == [JudgeStatus.ERROR, JudgeStatus.OK]
    judge.judge_many(batch)
    assert inner.calls == [["fail", "ok"], ["fail"]]
    assert cache.count() == 1


def test_a_changed_judge_config_misses_the_cache(cache):
    CachedJudge(CountingJudge("v1"), cache).judge_many(_pairs(2))
    inner = CountingJudge("v2")
    CachedJudge(inner, cache).judge_many(_pairs(2))
    assert len(inner.calls) == 1 and cache.count() == 4


def test_the_pair_texts_not_its_extra_are_the_key(cache):
    inner = CountingJudge()
    judge = CachedJudge(inner, cache)
    judge.judge_many([Pair("p", "a", "b", extra={"id": 1})])
    judge.judge_many([Pair("p", "a", "b", extra={"id": 2})])
    judge.judge_many([Pair("p", "a", "b ")])
    assert inner.calls == [["p"], ["p"]]


def test_wrapper_is_invisible_in_versions(cache):
    inner = CountingJudge()
    judge = CachedJudge(inner, cache)
    assert judge.fingerprint() == inner.fingerprint()
    assert judge.model_version() == inner.model_version()
    assert judge.kind == "counting" and judge.config() == inner.config()


def test_cache_survives_reopening(tmp_path):
    path = tmp_path / "c.sqlite3"
    CachedJudge(CountingJudge(), sqlite_store(path)).judge_many(_pairs(5))
    inner = CountingJudge()
    results = CachedJudge(inner, sqlite_store(path)).judge_many(_pairs(5))
    assert inner.calls == [] and all(j.extra["cached"] for j in results)
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_large_batches_are_looked_up_in_chunks(cache, monkeypatch):
    inner = CountingJudge()
    judge = CachedJudge(inner, cache)
    claims = []
    claim_many = cache.claim_many
    monkeypatch.setattr(cache, "claim_many", lambda *a, **k: claims.append(len(a[1])) or claim_many(*a, **k))
    judge.judge_many(_pairs(1200))
    assert claims == [CHUNK_PAIRS] * 4 + [1200 - 4 * CHUNK_PAIRS]  # one statement per chunk
    results = judge.judge_many(_pairs(1200))
    # Misses go to the inner judge a chunk at a time, each chunk stored before the next is asked.
    assert [len(c) for c in inner.calls] == [CHUNK_PAIRS] * 4 + [1200 - 4 * CHUNK_PAIRS]
    assert len(results) == 1200 and all(j.extra["cached"] for j in results)


def test_a_cached_batch_costs_well_under_a_millisecond_per_pair(cache):
    judge = CachedJudge(CountingJudge(), cache)
    pairs = _pairs(100)
    judge.judge_many(pairs)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        judge.judge_many(pairs)
        best = min(best, time.perf_counter() - start)
    assert best / 100 < 0.001, f"{best / 100 * 1000:.3f} ms per pair"


def test_make_judge_caches_what_is_worth_caching(tmp_path):
    openai_judge = make_judge(
        Settings(judge="openai", openai_base_url="http://127.0.0.1:9/v1", data_dir=tmp_path)
    )
    assert isinstance(openai_judge, CachedJudge) and openai_judge.kind == "openai"
    assert (tmp_path / "state.sqlite3").exists()
    assert openai_judge.cache.health() == {"ok": True, "database": "sqlite"}
    assert isinstance(make_judge(Settings(judge="precomputed", data_dir=tmp_path)), PrecomputedJudge)
    uncached = make_judge(
        Settings(judge="openai", openai_base_url="http://127.0.0.1:9/v1", data_dir=tmp_path), cache=False
    )
    assert not isinstance(uncached, CachedJudge)


# --- claims: a pair being judged elsewhere is waited for, not paid for twice ------------------------


class BlockingJudge(CountingJudge):
    """Judges like CountingJudge, but only once ``go`` is set."""

    def __init__(self):
        super().__init__()
        self.started, self.go = threading.Event(), threading.Event()

    def judge_many(self, pairs):
        self.started.set()
        assert self.go.wait(30)
        return super().judge_many(pairs)


def test_a_pair_someone_else_is_judging_is_waited_for_not_judged_again(cache):
    first, second = BlockingJudge(), CountingJudge()
    answers = {}
    worker = threading.Thread(target=lambda: answers.update(a=CachedJudge(first, cache).judge_many(_pairs(3))))
    worker.start()
    assert first.started.wait(10)  # the first caller holds the claims and is judging
    waiter = threading.Thread(target=lambda: answers.update(b=CachedJudge(second, cache).judge_many(_pairs(4))))
    waiter.start()
    deadline = time.monotonic() + 20
    while not second.calls and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # time for a wrong second call, if the waiter were to make one
    assert second.calls == [["p3"]]  # only the pair nobody had claimed; the other three are waited for
    assert waiter.is_alive()  # ... still waiting for them
    first.go.set()
    worker.join(10)
    waiter.join(10)
    assert [j.extra.get("cached", False) for j in answers["b"]] == [True, True, True, False]
    assert len(first.calls) == 1 and cache.count() == 4


def test_a_lapsed_claim_is_taken_over(cache):
    fingerprint = CountingJudge().fingerprint()
    keys = [p.content_key() for p in _pairs(2)]
    assert cache.claim_many(fingerprint, keys, "a worker that died", seconds=2.0) == set(keys)
    assert cache.claim_many(fingerprint, keys, "someone else", seconds=60) == set()
    time.sleep(2.1)
    inner = CountingJudge()
    assert all(j.ok for j in CachedJudge(inner, cache).judge_many(_pairs(2)))
    assert inner.calls == [["p0", "p1"]]


def test_a_holder_renews_its_claims_while_it_judges(cache):
    """Claims are short leases: a judge slower than one lease keeps its pairs by renewing them."""
    first = BlockingJudge()
    keys = [p.content_key() for p in _pairs(2)]
    worker = threading.Thread(target=lambda: CachedJudge(first, cache, claim_seconds=0.6).judge_many(_pairs(2)))
    worker.start()
    try:
        assert first.started.wait(10)
        time.sleep(1.5)  # more than two leases
        assert cache.claim_many(first.fingerprint(), keys, "someone else", seconds=60) == set()
    finally:
        first.go.set()
        worker.join(10)
    time.sleep(0.5)  # no renewal lands after the release
    assert cache.claim_many(first.fingerprint(), keys, "someone else", seconds=60) == set(keys)


def test_claims_are_released_when_the_judge_raises(cache):
    class Broken(CountingJudge):
        def judge_many(self, pairs):
            raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        CachedJudge(Broken(), cache).judge_many(_pairs(2))
    inner = CountingJudge()
    CachedJudge(inner, cache).judge_many(_pairs(2))  # not left waiting for a claim that nobody holds
    assert inner.calls == [["p0", "p1"]]


# --- a store that cannot be used is served around -------------------------------------------------


def test_a_corrupt_database_file_is_served_around_and_reported(tmp_path, caplog):
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING):
        store = sqlite_store(path)
        inner = CountingJudge()
        first = CachedJudge(inner, store).judge_many(_pairs(3))
        CachedJudge(inner, store).judge_many(_pairs(3))
    assert [j.label for j in first] == ["a", "a", "a"] and len(inner.calls) == 2
    health = store.health()
    assert health["ok"] is False and "not a database" in health["detail"]
    assert str(tmp_path) not in health["detail"]
    assert caplog.text.count("not a database") == 1  # logged once
    assert path.read_bytes() == b"this is not a database" * 100  # never written: the operator decides


def test_a_database_corrupted_while_in_use_is_served_around(tmp_path):
    path = tmp_path / "state.sqlite3"
    store = sqlite_store(path)
    CachedJudge(CountingJudge(), store).judge_many(_pairs(3))
    store.close()
    for name in ("-wal", "-shm"):
        (tmp_path / f"state.sqlite3{name}").unlink(missing_ok=True)
    with open(path, "r+b") as f:  # trash the pages after the header
        f.seek(100)
        f.write(b"\xff" * 8000)
    again = CachedJudge(CountingJudge(), sqlite_store(path))
    assert [j.label for j in again.judge_many(_pairs(3))] == ["a", "a", "a"]
    assert again.cache.health()["ok"] is False


def test_a_read_only_database_still_answers_and_keeps_reading(tmp_path):
    path = tmp_path / "state.sqlite3"
    CachedJudge(CountingJudge(), sqlite_store(path)).judge_many(_pairs(1))
    # Root ignores file modes, so the read-only database is SQLite's own read-only open of it.
    store = DatabaseJudgmentStore(f"sqlite:///file:{path}?mode=ro&uri=true")
    inner = CountingJudge()
    results = CachedJudge(inner, store).judge_many(_pairs(3))
    assert all(j.ok for j in results)
    assert results[0].extra.get("cached") is True  # still read
    assert inner.calls == [["p1", "p2"]]  # judged and returned, although they cannot be stored
    health = store.health()
    assert health["ok"] is False and "readonly" in health["detail"].replace("-", "").replace(" ", "")


def test_an_unreachable_database_is_served_around_and_its_password_never_shown(caplog):
    url = "postgresql://rlthf:hunter2-secret@127.0.0.1:1/rlthf"  # nothing listens on port 1
    with caplog.at_level(logging.DEBUG):
        store = DatabaseJudgmentStore(url)
        inner = CountingJudge()
        CachedJudge(inner, store).judge_many(_pairs(2))
        CachedJudge(inner, store).judge_many(_pairs(2))
    assert len(inner.calls) == 2  # no cache, no claims: judged each time, never stuck waiting
    health = store.health()
    assert health["ok"] is False and "until the database answers" in health["detail"]
    assert "hunter2" not in json.dumps(health) and "hunter2" not in caplog.text
    assert "rlthf:***@127.0.0.1:1" in caplog.text
    with pytest.raises(ValidationError) as refused:
        Settings(database_url="mysql://rlthf:hunter2-secret@db/rlthf", _env_file=None)
    assert "unsupported database" in str(refused.value) and "hunter2" not in str(refused.value)
    assert "hunter2" not in repr(Settings(database_url=url, _env_file=None))


def test_the_default_database_is_sqlite_in_the_data_folder(tmp_path):
    settings = Settings(data_dir=tmp_path, _env_file=None)
    assert settings.database_url_resolved() == f"sqlite:///{tmp_path}/state.sqlite3"
    url = "postgresql://rlthf:pw@db:5432/rlthf"
    assert Settings(data_dir=tmp_path, database_url=url, _env_file=None).database_url_resolved() == url
    # psycopg 3 drives PostgreSQL whatever the URL names; SQLite must be a file (a shared one).
    for given in (url, "postgres://rlthf:pw@db/rlthf", "postgresql+psycopg2://rlthf:pw@db/rlthf"):
        assert engine_url(given).drivername == "postgresql+psycopg"
    with pytest.raises(ValueError, match="memory is not shared"):
        engine_url("sqlite://")
    with pytest.raises(ValueError, match="not a database URL"):
        engine_url("db.example.com:5432")


# --- judgments of an earlier version --------------------------------------------------------------


def _legacy_file(path, judge: Judge, pairs: list[Pair]) -> None:
    """A judgments.sqlite3 as versions before the shared store wrote it."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE judgments (fingerprint TEXT NOT NULL, content_key TEXT NOT NULL, judgment TEXT NOT "
                 "NULL, created_at REAL NOT NULL, PRIMARY KEY (fingerprint, content_key)) WITHOUT ROWID")
    rows = [(judge.fingerprint(), p.content_key(), json.dumps(j.to_dict()), 1.7e9)
            for p, j in zip(pairs, judge.judge_many(pairs))]
    conn.executemany("INSERT INTO judgments VALUES (?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()


def test_an_earlier_versions_judgments_are_imported_once(tmp_path, caplog):
    _legacy_file(tmp_path / "judgments.sqlite3", CountingJudge(), _pairs(5))
    before = (tmp_path / "judgments.sqlite3").read_bytes()
    settings = Settings(judge="openai", openai_base_url="http://127.0.0.1:9/v1", data_dir=tmp_path, _env_file=None)
    with caplog.at_level(logging.INFO):
        store = shared_judgment_store(settings)
    assert "imported 5 judgments (5 new)" in caplog.text
    inner = CountingJudge()
    results = CachedJudge(inner, store).judge_many(_pairs(6))
    assert inner.calls == [["p5"]] and all(j.extra.get("cached") for j in results[:5])
    assert (tmp_path / "judgments.sqlite3").read_bytes() == before  # only read
    # Once: a second process opening the same store (and file) imports nothing.
    assert store.import_legacy(tmp_path / "judgments.sqlite3") == 0
    assert DatabaseJudgmentStore(settings.database_url_resolved(), tmp_path / "judgments.sqlite3").count() == 6


def test_an_unreadable_earlier_file_is_skipped_and_the_store_works(tmp_path, caplog):
    (tmp_path / "judgments.sqlite3").write_bytes(b"garbage" * 100)
    with caplog.at_level(logging.WARNING):
        store = DatabaseJudgmentStore(f"sqlite:///{tmp_path}/state.sqlite3", tmp_path / "judgments.sqlite3")
    assert "not imported" in caplog.text
    assert store.health() == {"ok": True, "database": "sqlite"}


def test_a_database_a_newer_version_migrated_is_left_alone(tmp_path):
    path = tmp_path / "state.sqlite3"
    sqlite_store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE alembic_version SET version_num = '0099'")  # as a later release would leave it
    conn.commit()
    conn.close()
    store = sqlite_store(path)
    inner = CountingJudge()
    CachedJudge(inner, store).judge_many(_pairs(2))
    assert inner.calls == [["p0", "p1"]]  # judged without the store, which it does not touch
    health = store.health()
    assert health["ok"] is False and "revision 0099" in health["detail"] and "upgrade" in health["detail"]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0099",)]
    assert conn.execute("SELECT COUNT(*) FROM judgments").fetchone() == (0,)
    conn.close()
