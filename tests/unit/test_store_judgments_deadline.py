"""A SQLite state file that another process holds for writing costs one call a few seconds, not
a busy timeout per statement (a /predict with two new pairs once took 92 s this way)."""

from __future__ import annotations

import logging
import sqlite3
import time

from rlthf_backend.core.judges.cache import STORE_SECONDS, CachedJudge
from rlthf_backend.core.judges.precomputed import PrecomputedJudge
from rlthf_backend.core.types import Pair
from rlthf_backend.store.judgments import DatabaseJudgmentStore


def _pairs(tag: str) -> list[Pair]:
    return [Pair(f"{tag} prompt 1", "x", "y", extra={"llm_label": "a"}),
            Pair(f"{tag} prompt 2", "x", "y", extra={"llm_label": "b", "llm_prob": 0.8})]


def _hold_for_writing(path) -> sqlite3.Connection:
    """Another process's write transaction on the state file (it keeps the write lock)."""
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_a_locked_store_costs_a_call_its_deadline_then_heals(tmp_path, caplog):
    path = tmp_path / "state.sqlite3"
    store = DatabaseJudgmentStore(f"sqlite:///{path}")  # created and migrated before the lock
    judge = CachedJudge(PrecomputedJudge(), store)
    holder = _hold_for_writing(path)
    try:
        with caplog.at_level(logging.WARNING, logger="rlthf_backend.store.judgments"):
            started = time.perf_counter()
            results = judge.judge_many(_pairs("locked"))
            seconds = time.perf_counter() - started
    finally:
        holder.rollback()
        holder.close()
    print(f"two new pairs over a locked store: {seconds:.2f} s (deadline {STORE_SECONDS} s)")
    assert [(j.ok, j.label) for j in results] == [(True, "a"), (True, "b")]
    assert seconds < 3 * STORE_SECONDS  # generous; statement by statement it was 3 x 30 s
    lines = [r for r in caplog.records if r.name == "rlthf_backend.store.judgments"]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "busy" in lines[0].getMessage()
    assert store.count() == 0  # nothing was stored while locked
    # The lock is gone: the next call stores, and the one after reads.
    judge.judge_many(_pairs("free"))
    assert store.count() == 2
    assert all(j.extra.get("cached") for j in judge.judge_many(_pairs("free")))


def test_a_spent_deadline_skips_the_store_and_a_new_call_gets_a_new_one(tmp_path):
    path = tmp_path / "state.sqlite3"
    store = DatabaseJudgmentStore(f"sqlite:///{path}")
    judge = CachedJudge(PrecomputedJudge(), store, store_seconds=0.5)
    holder = _hold_for_writing(path)
    try:
        with store.deadline(0.5):
            started = time.perf_counter()
            assert store.claim_many("fp", ["k1", "k2"], "me", 60) == {"k1", "k2"}  # granted: waited 0.5 s
            # Spent: no more waiting, whatever the statement.
            assert store.get_many("fp", ["k1"]) == {}
            assert store.put_many("fp", [(p.content_key(), j) for p, j in
                                         zip(_pairs("x"), PrecomputedJudge().judge_many(_pairs("x")))]) == 0
            store.release_many("fp", ["k1"], "me")
            assert time.perf_counter() - started < 5
            with store.deadline(60):  # nested: the outer (the request's) deadline holds
                assert store.claim_many("fp", ["k3"], "me", 60) == {"k3"}
            assert time.perf_counter() - started < 5
    finally:
        holder.rollback()
        holder.close()
    assert len(judge.judge_many(_pairs("after"))) == 2
    assert store.count() == 2  # a fresh call, a fresh deadline: stored
