"""Throughput of the openai judge against a local fake server, and the cost of cache hits.

Prints pairs/s at concurrency 1, 8 and 16 with a fixed server latency (both orders are asked,
so each pair is two requests), the speed-up over one request at a time, and the per-pair cost
of a 100-pair ``judge_many`` served entirely from the judgment cache.

    .venv/bin/python benchmarks/bench_judge.py [--latency-ms 50] [--pairs 120]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fakes when run as a script

from rlthf_backend.core.judges.cache import CachedJudge  # noqa: E402
from rlthf_backend.core.judges.openai_judge import OpenAIJudge  # noqa: E402
from rlthf_backend.core.judges.base import Judge  # noqa: E402
from rlthf_backend.core.types import JudgeStatus, Judgment, Pair  # noqa: E402
from rlthf_backend.app.judges import openai_judge_config  # noqa: E402
from rlthf_backend.app.settings import Settings  # noqa: E402
from rlthf_backend.store.judgments import DatabaseJudgmentStore  # noqa: E402
from tests.fakes.openai_server import Behaviour, FakeOpenAIServer  # noqa: E402


def _pairs(n: int, tag: str) -> list[Pair]:
    return [Pair(f"{tag} question {i}?", f"a fairly complete answer {i}", f"short {i}") for i in range(n)]


def throughput(base_url: str, concurrency: int, n_pairs: int) -> float:
    """Pairs per second judged (both orders) at ``concurrency`` requests in flight."""
    settings = Settings(judge="openai", openai_base_url=base_url, judge_concurrency=concurrency)
    judge = OpenAIJudge(openai_judge_config(settings))
    judge.judge_many(_pairs(concurrency, "warm-up"))  # connections and threads exist before timing
    pairs = _pairs(n_pairs, f"c{concurrency}")
    start = time.perf_counter()
    results = judge.judge_many(pairs)
    elapsed = time.perf_counter() - start
    judge.close()
    failed = sum(not r.ok for r in results)
    if failed:
        raise SystemExit(f"{failed} pairs failed at concurrency {concurrency}: {results[0].reason}")
    return n_pairs / elapsed


def cached_cost(base_url: str, database_url: str | None, batch: int = 100, repeats: int = 30) -> tuple[float, float]:
    """(median, best) milliseconds per pair of a ``judge_many`` answered wholly from the store
    (SQLite in a temporary folder, or ``database_url``)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(judge="openai", openai_base_url=base_url, data_dir=Path(tmp), database_url=database_url)
        judge = CachedJudge(
            OpenAIJudge(openai_judge_config(settings)), DatabaseJudgmentStore(settings.database_url_resolved())
        )
        pairs = _pairs(batch, "cached")
        judge.judge_many(pairs)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            results = judge.judge_many(pairs)
            times.append(time.perf_counter() - start)
        assert all(r.extra.get("cached") for r in results)
        judge.cache.close()
    return statistics.median(times) / batch * 1000, min(times) / batch * 1000


class InstantJudge(Judge):
    """Answers at once: what is left of a cold ``judge_many`` is the store's own work."""

    kind = "instant"

    def config(self):
        return {"kind": self.kind, "model": "instant"}

    def judge_many(self, pairs):
        return [Judgment("a", 0.9, JudgeStatus.OK, "instant", verdict_ab="a", verdict_ba="b") for _ in pairs]


def store_overhead(database_url: str | None, n: int = 5000) -> float:
    """Milliseconds per pair that the store adds to judging ``n`` new pairs (look up, claim, store,
    release), with a judge that costs nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=database_url)
        store = DatabaseJudgmentStore(settings.database_url_resolved())
        judge = CachedJudge(InstantJudge(), store)
        pairs = _pairs(n, f"overhead-{time.time()}")
        start = time.perf_counter()
        judge.judge_many(pairs)
        elapsed = time.perf_counter() - start
        store.close()
    return elapsed / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=float, default=50.0, help="fake server latency per request")
    parser.add_argument(
        "--pairs", type=int, default=120, help="pairs per concurrent run (concurrency 1 uses a third)"
    )
    parser.add_argument("--database-url", default=None,
                        help="the store for the cached figure (default: SQLite in a temporary folder)")
    args = parser.parse_args()

    with FakeOpenAIServer(Behaviour(latency_ms=args.latency_ms)) as server:
        print(f"fake server latency {args.latency_ms:g} ms, both orders (2 requests per pair)")
        serial = throughput(server.base_url, 1, max(args.pairs // 3, 10))
        print(f"concurrency  1: {serial:7.2f} pairs/s")
        for c in (8, 16):
            rate = throughput(server.base_url, c, args.pairs)
            print(f"concurrency {c:2d}: {rate:7.2f} pairs/s  ({rate / serial:.1f}x concurrency 1)")
        median, best = cached_cost(server.base_url, args.database_url)
        where = "PostgreSQL" if args.database_url else "SQLite"
        print(f"cached judge_many ({where}), 100-pair batch: {median:.4f} ms/pair median, {best:.4f} ms/pair best")
        print(f"store's own cost of judging 5,000 new pairs ({where}; look up, claim, store, release): "
              f"{store_overhead(args.database_url):.4f} ms/pair")


if __name__ == "__main__":
    main()
