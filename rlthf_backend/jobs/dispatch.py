"""The web side of the jobs: turn webhook events into coalesced trainings, report their status.

Everything here must answer within Label Studio's webhook budget, so Redis is reached with short
timeouts behind a circuit breaker: when Redis is gone, events are acknowledged at once (and the
next successful training catches up, since it reads the whole state from Label Studio).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from redis import Redis
from redis.exceptions import RedisError

from rlthf_backend.jobs import status
from rlthf_backend.jobs.config import JobsConfig
from rlthf_backend.jobs.connection import CircuitBreaker, RedisUnavailable, redis_from_config
from rlthf_backend.jobs.embedded import embedded_redis
from rlthf_backend.jobs.queue import Enqueued, ProjectMissing, QueueFull, enqueue_prelabel, enqueue_training

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Events that can change a project's labels, and START_TRAINING (the Train button).
TRAINING_EVENTS = frozenset(
    {"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "START_TRAINING"}
)


def only_skips(body: dict[str, Any]) -> bool:
    """True when the event carries annotations and every one is a skipped task (was_cancelled)."""
    anns = body.get("annotations") if isinstance(body.get("annotations"), list) else [body.get("annotation")]
    anns = [a for a in anns if isinstance(a, dict)]
    return bool(anns) and all(a.get("was_cancelled") for a in anns)


__all__ = ["TRAINING_EVENTS", "ProjectMissing", "QueueFull", "TrainingDispatcher", "only_skips"]


class TrainingDispatcher:
    def __init__(self, config: JobsConfig) -> None:
        self.config = config
        self.breaker = CircuitBreaker()
        self._redis: Redis | None = None

    @property
    def embedded(self) -> bool:
        return not self.config.redis_url

    def _call(self, fn: Callable[[Redis], T]) -> T:
        if self.embedded:
            return fn(embedded_redis(self.config))
        if self.breaker.open:
            raise RedisUnavailable(f"Redis unreachable ({self.breaker.last_error}); retrying shortly")
        try:
            if self._redis is None:
                self._redis = redis_from_config(self.config, fast=True)
            result = fn(self._redis)
        except RedisError as exc:
            self.breaker.failed(exc)
            log.error("Redis unreachable at %s: %s", self.config.redis_url, exc)
            raise RedisUnavailable(f"Redis unreachable: {exc}") from exc
        self.breaker.succeeded()
        return result

    def submit(self, project_id: int, reason: str, *, force_round: bool = False) -> Enqueued:
        """Queue (or join) a training; ProjectMissing or QueueFull when it is not queued."""
        return self._call(lambda r: enqueue_training(r, self.config, project_id, reason, force_round=force_round))

    def submit_prelabel(self, project_id: int, task_ids: list[int], model_version: str) -> str:
        """Queue the background judging of ``task_ids``; the job id."""
        return self._call(lambda r: enqueue_prelabel(r, self.config, project_id, task_ids, model_version))

    def project_status(self, project_id: int) -> status.ProjectStatus:
        return self._call(lambda r: status.read(r, project_id))

    def all_status(self) -> dict[int, status.ProjectStatus]:
        return self._call(lambda r: {p: status.read(r, p) for p in status.projects(r)})

    def job_counters(self) -> dict[str, float]:
        return self._call(status.job_counters)

    def health(self) -> dict[str, Any]:
        """The line ``/health`` shows: queue mode, reachability, and what the trainings are doing."""
        mode = "embedded" if self.embedded else "redis"
        try:
            projects = self.all_status()
        except RedisUnavailable as exc:
            return {"mode": mode, "ok": False, "detail": str(exc)}
        line: dict[str, Any] = {"mode": mode, "ok": True}
        if self.embedded:
            line["detail"] = "REDIS_URL is not set: trainings run in this process (one gunicorn worker)"
        line["running"] = sorted(p for p, st in projects.items() if st.running)
        line["queued"] = sorted(p for p, st in projects.items() if st.queued)
        line["prelabeling"] = {str(p): st.prelabel.describe() for p, st in projects.items()
                               if st.prelabel is not None and st.prelabel.state in ("queued", "running")}
        failures = [(st.last_failed.at, p, st.last_failed.reason) for p, st in projects.items()
                    if st.last_failed and st.failing]
        if failures:
            at, project, reason = max(failures)
            line["last_failure"] = {"project": project, "reason": reason, "at": at}
        return line
