"""/predict overhead per task when every judgment is cached (target: < 5 ms per task at 100 tasks).

Starts the real service (`rlthf-backend serve`, one gunicorn worker) with the openai judge pointed
at the local fake chat-completions server, warms the judgment cache with one request, then times
cached requests of 100 tasks against cached requests of 1 task and GET /health (baselines measured
in the same run). Pairs come from ../shared/data/judged-pairs.jsonl.gz.

    .venv/bin/python benchmarks/bench_predict.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.openai_server import FakeOpenAIServer  # noqa: E402
from tests.support.backend import start_backend  # noqa: E402
from tests.support.data import judged_pairs, task_data  # noqa: E402

CONFIG = (Path(__file__).resolve().parents[1] / "label_config" / "pairwise.xml").read_text()


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    tasks = [{"id": i, "data": task_data(r)} for i, r in enumerate(judged_pairs(100))]
    with FakeOpenAIServer() as fake, tempfile.TemporaryDirectory() as tmp:
        server = start_backend(Path(tmp), {
            "RLTHF_JUDGE": "openai", "RLTHF_OPENAI_BASE_URL": fake.base_url, "RLTHF_OPENAI_API_KEY": "x",
            "RLTHF_LOG_LEVEL": "WARNING",
        }, workers=1)
        try:
            client = httpx.Client(base_url=server.url, timeout=120)

            def predict(batch):
                r = client.post("/predict", json={"tasks": batch, "label_config": CONFIG, "project": "1.1"})
                r.raise_for_status()
                assert len(r.json()["results"]) == len(batch)

            t0 = time.perf_counter()
            predict(tasks)  # judges every pair once (2 requests each) and fills the cache
            cold = time.perf_counter() - t0
            requests_after_warmup = fake.stats.requests
            health = timed(lambda: client.get("/health").raise_for_status(), args.repeats)
            one = timed(lambda: predict(tasks[:1]), args.repeats)
            hundred = timed(lambda: predict(tasks), args.repeats)
            assert fake.stats.requests == requests_after_warmup, "cached requests reached the judge"
        finally:
            server.stop()

    med = statistics.median
    per_task = med(hundred) / 100
    marginal = (med(hundred) - med(one)) / 99
    print(f"pairs: {len(tasks)} real pairs from judged-pairs.jsonl.gz; {args.repeats} repeats; 1 gunicorn worker")
    print(f"warm-up /predict of 100 tasks (judged, 2 orders each, fake LLM at 0 ms): {cold * 1000:.0f} ms")
    print(f"GET /health round trip (baseline):        median {med(health) * 1000:7.2f} ms")
    print(f"/predict 1 cached task (baseline):        median {med(one) * 1000:7.2f} ms")
    print(f"/predict 100 cached tasks:                median {med(hundred) * 1000:7.2f} ms, "
          f"p90 {sorted(hundred)[int(0.9 * len(hundred))] * 1000:.2f} ms")
    print(f"per task, whole request / 100:            {per_task * 1000:7.3f} ms  (target < 5 ms)")
    print(f"per task, marginal (100 vs 1) / 99:       {marginal * 1000:7.3f} ms")
    print(f"100-task request vs 1-task request:       {med(hundred) / med(one):7.1f}x")


if __name__ == "__main__":
    main()
