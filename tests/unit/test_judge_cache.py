"""The persistent judgment cache and the caching judge wrapper."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Sequence

import pytest

from rlthf_backend.core.judges import make_judge
from rlthf_backend.core.judges.base import Judge
from rlthf_backend.core.judges.cache import CachedJudge, JudgmentCache
from rlthf_backend.core.judges.precomputed import PrecomputedJudge
from rlthf_backend.core.types import Judgment, JudgeStatus, Pair
from rlthf_backend.settings import Settings


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
    c = JudgmentCache(tmp_path / "judgments.sqlite3")
    yield c
    c.close()


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
    CachedJudge(CountingJudge(), JudgmentCache(path)).judge_many(_pairs(5))
    inner = CountingJudge()
    results = CachedJudge(inner, JudgmentCache(path)).judge_many(_pairs(5))
    assert inner.calls == [] and all(j.extra["cached"] for j in results)
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_large_batches_are_looked_up_in_chunks(cache):
    inner = CountingJudge()
    judge = CachedJudge(inner, cache)
    judge.judge_many(_pairs(1200))
    results = judge.judge_many(_pairs(1200))
    assert len(inner.calls) == 1 and len(results) == 1200 and all(j.extra["cached"] for j in results)


def test_threads_share_one_cache(cache):
    inner = CountingJudge()
    judge = CachedJudge(inner, cache)
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
    assert errors == []
    assert cache.count() == 120


def _write_in_process(path: str, tag: str) -> None:
    judge = CachedJudge(CountingJudge(), JudgmentCache(path))
    for i in range(10):
        judge.judge_many(_pairs(10, f"{tag}-{i}-"))


def test_processes_share_one_cache(tmp_path):
    path = str(tmp_path / "shared.sqlite3")
    JudgmentCache(path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_in_process, args=(path, f"proc{i}")) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert JudgmentCache(path).count() == 300


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
    assert (tmp_path / "judgments.sqlite3").exists()
    assert isinstance(make_judge(Settings(judge="precomputed", data_dir=tmp_path)), PrecomputedJudge)
    uncached = make_judge(
        Settings(judge="openai", openai_base_url="http://127.0.0.1:9/v1", data_dir=tmp_path), cache=False
    )
    assert not isinstance(uncached, CachedJudge)
