"""Figures of the active loop, with real Label Studio, Redis, gunicorn and an RQ worker.

1. Webhook acknowledgement latency under 100 concurrent requests (p50 / p99), beside GET /health
   under the same load (baseline measured in the same run).
2. For projects of each size: the first training (a full read of the project and a prediction for
   every task), then an incremental round after a person answers its human batch: seconds from the
   last annotation to the re-ordered label stream (the batch's predictions written), Label Studio
   requests made, tasks read, predictions written, worker peak RSS. Tasks are real pairs from
   judged-pairs.jsonl.gz, repeated to reach the size (so the embedding cache is warm after the
   first size: its first training is the cold figure). Precomputed judge, embedding RM, CPU; the
   state store is SQLite in the data folder, or ``--database-url`` (e.g. PostgreSQL).
3. The anchor: what the official example backends do, fit() inside the webhook request. Its
   webhook latency would be the training itself: here the same job's read + judge + tune + plan + fit
   seconds (without writing predictions, which those backends do not do), on the same project.

    .venv/bin/python benchmarks/bench_active_loop.py [--sizes 1000,10000,100000] [--config choices.xml]
        [--database-url postgresql://postgres@127.0.0.1:5432/DB] [--skip-webhooks] [--env KEY=VALUE ...]
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

from rlthf_backend.labelstudio.client import iter_tasks  # noqa: E402
from rlthf_backend.labelstudio.queue_order import QUEUE_HEAD  # noqa: E402
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


def wait_training(client: httpx.Client, project_id: int, after: float, timeout_s: float = 7200,
                  round_index: int | None = None) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = client.get(f"/jobs?project={project_id}").json()
        done = st.get("last_finished")
        if done and done["started_at"] > after and done.get("round_run") and not st.get("running") \
                and not st.get("queued") and round_index in (None, done.get("round_index")):
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
    parser.add_argument("--database-url", default=None, help="RLTHF_DATABASE_URL (default: SQLite in the data dir)")
    parser.add_argument("--skip-webhooks", action="store_true", help="skip the webhook latency part")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the backend and the worker, e.g. RLTHF_HUMAN_BATCH_FRACTION=0.002")
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
        **({"RLTHF_DATABASE_URL": args.database_url} if args.database_url else {}),
        **dict(item.split("=", 1) for item in args.env),
    }
    backend = start_backend(tmp / "backend", env, workers=2)
    worker = start_worker(env, tmp / "worker")
    ls = LabelStudio(base_url=ls_server.url, api_key=ls_server.token, timeout=600)
    client = httpx.Client(base_url=backend.url, timeout=60)
    results: dict = {"machine": f"{os.cpu_count()} cores", "config": args.config,
                     "store": "postgresql" if args.database_url else "sqlite"}
    try:
        if not args.skip_webhooks:
            webhook_latencies(backend.url, args.rounds, results)
        sizes_part(ls, client, config_xml, sizes, args.config, results)
    finally:
        worker.stop()
        backend.stop()
        redis_server.stop()
        ls_server.stop()
    print(json.dumps(results, indent=1, default=str))


def webhook_latencies(url: str, rounds: int, results: dict) -> None:
    """Webhook acknowledgement under 100 concurrent requests, beside GET /health under the same load
    (project 987654 does not exist in Label Studio: its queued trainings fail, which does not matter here)."""
    hook = concurrent_latencies(f"{url}/webhook", "POST", STRAY_EVENT, 100, rounds)
    health = concurrent_latencies(f"{url}/health", "GET", None, 100, rounds)
    alone = concurrent_latencies(f"{url}/webhook", "POST", STRAY_EVENT, 1, 200)
    results["webhook_alone_ms"] = {"p50": percentile(alone, 0.5) * 1e3, "p99": percentile(alone, 0.99) * 1e3}
    print(f"webhook ack, one at a time (as Label Studio sends them) x 200: "
          f"p50 {results['webhook_alone_ms']['p50']:.1f} ms, p99 {results['webhook_alone_ms']['p99']:.1f} ms")
    results["webhook_ms"] = {"p50": percentile(hook, 0.5) * 1e3, "p99": percentile(hook, 0.99) * 1e3,
                             "n": len(hook)}
    results["health_ms"] = {"p50": percentile(health, 0.5) * 1e3, "p99": percentile(health, 0.99) * 1e3}
    print(f"webhook ack, 100 concurrent x {rounds}: p50 {results['webhook_ms']['p50']:.1f} ms, "
          f"p99 {results['webhook_ms']['p99']:.1f} ms | GET /health same load: "
          f"p50 {results['health_ms']['p50']:.1f} ms, p99 {results['health_ms']['p99']:.1f} ms", flush=True)


def sizes_part(ls: LabelStudio, client: httpx.Client, config_xml: str, sizes: list[int], config: str,
               results: dict) -> None:
    all_rows = judged_pairs(2000)
    for size in sizes:
        rows = [all_rows[i % len(all_rows)] for i in range(size)]
        label_of = {r["id"]: r["human_label"] for r in rows}
        project = ls.projects.create(title=f"bench {size}", label_config=config_xml)
        for start in range(0, size, 2000):
            ls.projects.import_tasks(id=project.id, request=[task_data(r) for r in rows[start:start + 2000]])
        ls.ml.create(project=project.id, url=str(client.base_url).rstrip("/"), title="rlthf")
        t0 = time.time()
        client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": project.id}})
        first = wait_training(client, project.id, t0)
        batch = first["human_batch"]
        pair_of = {t["id"]: t["data"]["pair_id"] for t in iter_tasks(ls, project.id, include="id,data")}

        # A person answers the batch; the clock runs from the last answer.
        t_batch = time.time()
        for task_id in batch:
            ls.annotations.create(id=task_id, result=human_result(config, label_of[pair_of[task_id]]))
        t_last = time.time()
        second = wait_training(client, project.id, t_batch, round_index=first["round_index"] + 1)
        to_queue = second["reordered_at"] - t_last
        to_batch = to_queue + second["seconds"]["to_whole_batch"] - second["seconds"]["to_reordered_queue"]

        # The anchor: a fit() inside the webhook request blocks it for the training itself.
        anchor = sum(second["seconds"].get(k, 0.0) for k in ("load_snapshot", "read", "judge", "plan", "fit"))
        figures = {
            "first_training": {k: first[k] for k in ("seconds", "sync", "label_studio_requests",
                                                     "predictions_written", "peak_rss_mb")},
            "incremental_round": {k: second[k] for k in ("seconds", "sync", "label_studio_requests",
                                                         "predictions_written", "peak_rss_mb")},
            "last_annotation_to_reordered_queue_s": to_queue, "last_annotation_to_whole_batch_s": to_batch,
            "batch": len(batch),
            "anchor_in_request_training_s": anchor,
        }
        results[str(size)] = figures
        print(f"{size} tasks ({config}): first training {first['seconds']['total']:.1f} s "
              f"({first['sync']['mode']} read of {first['sync']['tasks_read']} tasks, "
              f"{first['label_studio_requests']} Label Studio requests, {first['predictions_written']} predictions "
              f"written, peak RSS {first['peak_rss_mb']} MB)", flush=True)
        print(f"  incremental round after a batch of {len(batch)}: last annotation -> re-ordered queue "
              f"{to_queue:.1f} s (the new batch's first {QUEUE_HEAD} tasks served first; whole new batch of "
              f"{len(second['human_batch'])} written at {to_batch:.1f} s); {second['sync']['mode']} read of "
              f"{second['sync']['tasks_read']} tasks, "
              f"{second['label_studio_requests']} Label Studio requests, {second['predictions_written']} "
              f"predictions written, peak RSS {second['peak_rss_mb']} MB; stages {json.dumps(second['seconds'])}",
              flush=True)


if __name__ == "__main__":
    main()
