"""Figures of the active loop, with real Label Studio, Redis, gunicorn and an RQ worker.

1. Webhook acknowledgement latency under 100 concurrent requests (p50 / p99), beside GET /health
   under the same load (baseline measured in the same run).
2. Time from the last annotation of a human batch to the re-ordered label stream (Label Studio's
   project.model_version switched to the new round's version), for projects of each size. Tasks
   are real pairs from judged-pairs.jsonl.gz, repeated to reach the size (so the embedding cache is
   warm after the first round: "cached embeddings"). Precomputed judge, embedding RM, CPU.
3. The anchor: what the official example backends do, fit() inside the webhook request. Its
   webhook latency would be the training itself: here the same job's read + judge + tune + plan + fit
   seconds (without writing predictions, which those backends do not do), on the same project.

    .venv/bin/python benchmarks/bench_active_loop.py [--sizes 1000,10000] [--config choices.xml]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from label_studio_sdk import LabelStudio  # noqa: E402

from tests.integration.test_active_loop import human_result, start_worker  # noqa: E402
from tests.support.backend import start_backend  # noqa: E402
from tests.support.data import judged_pairs, task_data  # noqa: E402
from tests.support.label_studio import start_label_studio  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402


#: A label event for a project Label Studio does not have: acknowledged at once like any other.
STRAY_EVENT = {"action": "ANNOTATION_CREATED", "project": {"id": 987654}, "annotation": {"id": 1}}


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def concurrent_latencies(url: str, method: str, body: dict | None, n: int, rounds: int) -> list[float]:
    out: list[float] = []
    with httpx.Client(timeout=10, limits=httpx.Limits(max_connections=n)) as client:
        def one(_):
            t0 = time.perf_counter()
            r = client.request(method, url, json=body)
            r.raise_for_status()
            return time.perf_counter() - t0

        with ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(one, range(n)))  # warm connections
            for _ in range(rounds):
                out += list(pool.map(one, range(n)))
    return out


def wait_training(client: httpx.Client, project_id: int, after: float, timeout_s: float = 3600) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = client.get(f"/jobs?project={project_id}").json()
        done = st.get("last_finished")
        if done and done["started_at"] > after and done.get("round_run") and not st.get("running") \
                and not st.get("queued"):
            return done
        if st.get("last_failed") and st["last_failed"]["at"] > after:
            raise RuntimeError(st["last_failed"])
        time.sleep(0.2)
    raise TimeoutError(project_id)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--config", default="choices.xml", choices=["choices.xml", "pairwise.xml"])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of 100 concurrent webhooks")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="reuse this RLTHF_DATA_DIR (its embedding cache) instead of a fresh one")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    config_xml = (ROOT / "label_config" / args.config).read_text()

    tmp = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    ls_server = start_label_studio(tmp / "ls")
    redis_server = RedisServer(tmp)
    env = {
        "RLTHF_JUDGE": "precomputed", "RLTHF_DATA_DIR": str(args.data_dir or tmp / "data"),
        "RLTHF_MODEL_DIR": str(tmp / "models"), "LABEL_STUDIO_URL": ls_server.url,
        "LABEL_STUDIO_API_KEY": ls_server.token, "REDIS_URL": redis_server.url, "RLTHF_LOG_LEVEL": "WARNING",
        "RLTHF_ROUND_EVERY_N_LABELS": "0",
    }
    backend = start_backend(tmp / "backend", env, workers=2)
    worker = start_worker(env, tmp / "worker")
    ls = LabelStudio(base_url=ls_server.url, api_key=ls_server.token, timeout=600)
    client = httpx.Client(base_url=backend.url, timeout=60)
    results: dict = {"machine": f"{os.cpu_count()} cores", "config": args.config}
    try:
        # 1. Webhook acknowledgement under 100 concurrent requests (project 987654 does not exist in
        #    Label Studio: the queued trainings fail in the worker, which does not matter here).
        hook = concurrent_latencies(f"{backend.url}/webhook", "POST", STRAY_EVENT, 100, args.rounds)
        health = concurrent_latencies(f"{backend.url}/health", "GET", None, 100, args.rounds)
        alone = concurrent_latencies(f"{backend.url}/webhook", "POST", STRAY_EVENT, 1, 200)
        results["webhook_alone_ms"] = {"p50": percentile(alone, 0.5) * 1e3, "p99": percentile(alone, 0.99) * 1e3}
        print(f"webhook ack, one at a time (as Label Studio sends them) x 200: "
              f"p50 {results['webhook_alone_ms']['p50']:.1f} ms, p99 {results['webhook_alone_ms']['p99']:.1f} ms")
        results["webhook_ms"] = {"p50": percentile(hook, 0.5) * 1e3, "p99": percentile(hook, 0.99) * 1e3,
                                 "n": len(hook)}
        results["health_ms"] = {"p50": percentile(health, 0.5) * 1e3, "p99": percentile(health, 0.99) * 1e3}
        print(f"webhook ack, 100 concurrent x {args.rounds}: p50 {results['webhook_ms']['p50']:.1f} ms, "
              f"p99 {results['webhook_ms']['p99']:.1f} ms | GET /health same load: "
              f"p50 {results['health_ms']['p50']:.1f} ms, p99 {results['health_ms']['p99']:.1f} ms", flush=True)

        all_rows = judged_pairs(2000)
        for size in sizes:
            rows = [all_rows[i % len(all_rows)] for i in range(size)]
            label_of = {r["id"]: r["human_label"] for r in rows}
            project = ls.projects.create(title=f"bench {size}", label_config=config_xml)
            for start in range(0, size, 2000):
                ls.projects.import_tasks(id=project.id, request=[task_data(r) for r in rows[start:start + 2000]])
            ls.ml.create(project=project.id, url=backend.url, title="rlthf")
            t0 = time.time()
            client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": project.id}})
            first = wait_training(client, project.id, t0)
            batch = first["human_batch"]
            pair_of = {t.id: t.data["pair_id"] for t in ls.tasks.list(project=project.id, page_size=1000)}

            # A person answers the batch; the clock runs from the last answer.
            t_batch = time.time()
            for task_id in batch[:-1]:
                ls.annotations.create(id=task_id, result=human_result(args.config, label_of[pair_of[task_id]]))
            ls.annotations.create(id=batch[-1], result=human_result(args.config, label_of[pair_of[batch[-1]]]))
            t_after_last = time.perf_counter()
            while ls.projects.get(id=project.id).model_version == first["version"]:
                time.sleep(0.1)
            to_queue = time.perf_counter() - t_after_last
            # The round may have been picked up (debounced) while the batch was being answered.
            second = wait_training(client, project.id, t_batch)
            assert second["round_index"] == first["round_index"] + 1, second

            # The anchor: a fit() inside the webhook request blocks it for the training itself.
            anchor = sum(second["seconds"].get(k, 0.0) for k in ("read", "judge", "tune", "plan", "fit"))

            results[str(size)] = {"first_round": first["seconds"], "second_round": second["seconds"],
                                  "last_annotation_to_reordered_queue_s": to_queue, "batch": len(batch),
                                  "anchor_in_request_training_s": anchor,
                                  "worker_peak_rss_mb": second.get("peak_rss_mb")}
            print(f"{size} tasks ({args.config}): batch {len(batch)}; last annotation -> re-ordered queue "
                  f"{to_queue:.1f} s (job stages {json.dumps(second['seconds'])}); "
                  f"first round {first['seconds']['total']:.1f} s; "
                  f"anchor: webhook blocked {anchor:.1f} s by an in-request training "
                  f"= {anchor * 1e3 / results['webhook_alone_ms']['p50']:.0f}x our p50 ack; worker peak RSS "
                  f"{second.get('peak_rss_mb')} MB", flush=True)
    finally:
        worker.stop()
        backend.stop()
        redis_server.stop()
        ls_server.stop()
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
