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
#: A project's status is forgotten after this long without news (abandoned or mistyped projects).
STATUS_TTL_S = 30 * 24 * 3600
#: How long a project Label Studio said it does not have is not queued again.
MISSING_PROJECT_MEMORY_S = 600


def _key(project_id: int) -> str:
    return f"rlthf:project:{int(project_id)}:status"


def record(redis: Redis, project_id: int, field: str, info: dict[str, Any]) -> None:
    assert field in FIELDS, field
    pipe = redis.pipeline()
    pipe.hset(_key(project_id), field, json.dumps({"at": time.time(), **info}, default=str))
    # A project Label Studio does not have keeps its record only as long as it is remembered as
    # missing: ids invented by a client cannot pile up records (and slow /health down).
    pipe.expire(_key(project_id), MISSING_PROJECT_MEMORY_S if _says_missing(field, info) else STATUS_TTL_S)
    pipe.execute()


def _says_missing(field: str, info: dict[str, Any]) -> bool:
    """The training's final failure for a project Label Studio does not have."""
    return (field == "last_failed" and info.get("retries_left") == 0
            and str(info.get("reason", "")).startswith("ProjectNotFound"))


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


def missing_project(redis: Redis, project_id: int) -> str | None:
    """Why a recent training found no such project in Label Studio, if that is its latest news.

    The training records the final failure as ``ProjectNotFound: ...`` with no retries left.
    """
    state = read(redis, project_id)
    failed, finished = state["last_failed"], state["last_finished"]
    if not failed or not _says_missing("last_failed", failed):
        return None
    if finished and finished.get("at", 0) > failed.get("at", 0):
        return None
    if time.time() - float(failed.get("at", 0)) > MISSING_PROJECT_MEMORY_S:
        return None
    return str(failed["reason"]).removeprefix("ProjectNotFound: ")


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
