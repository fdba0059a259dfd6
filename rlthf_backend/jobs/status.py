"""Per-project training status in Redis: queued / running / last finished / last failed.

One Redis hash per project, each field a JSON object, written by the web side (queued) and by
the job (running, finished, failed). ``/jobs`` and ``/health`` read it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis import Redis

FIELDS = ("queued", "running", "last_finished", "last_failed")


def _key(project_id: int) -> str:
    return f"rlthf:project:{int(project_id)}:status"


def record(redis: Redis, project_id: int, field: str, info: dict[str, Any]) -> None:
    assert field in FIELDS, field
    redis.hset(_key(project_id), field, json.dumps({"at": time.time(), **info}, default=str))


def clear(redis: Redis, project_id: int, field: str) -> None:
    redis.hdel(_key(project_id), field)


def read(redis: Redis, project_id: int) -> dict[str, Any]:
    raw = redis.hgetall(_key(project_id))
    out: dict[str, Any] = {f: None for f in FIELDS}
    for k, v in raw.items():
        k = k.decode() if isinstance(k, bytes) else k
        if k in out:
            out[k] = json.loads(v)
    return out


def projects(redis: Redis) -> list[int]:
    """Projects that have any recorded status."""
    ids = []
    for key in redis.scan_iter(match="rlthf:project:*:status", count=500):
        key = key.decode() if isinstance(key, bytes) else key
        ids.append(int(key.split(":")[2]))
    return sorted(ids)


METRICS_KEY = "rlthf:metrics"


def count_job(redis: Redis, outcome: str, seconds: float) -> None:
    """Job counters for ``/metrics`` (workers have no HTTP port of their own)."""
    pipe = redis.pipeline()
    pipe.hincrby(METRICS_KEY, f"jobs_{outcome}_total", 1)
    pipe.hincrbyfloat(METRICS_KEY, f"job_{outcome}_seconds_sum", seconds)
    pipe.execute()


def job_counters(redis: Redis) -> dict[str, float]:
    return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in redis.hgetall(METRICS_KEY).items()}
