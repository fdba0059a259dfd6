"""The RQ job around one training (``app/training/pipeline.py``): wait for the label events to
settle, claim the project's pending slot, hold its lock, train, record the status.

The whole run holds a lease (``jobs.lease``) and so does the lock: a worker killed mid-way frees
the project, stops showing as running, and has its job re-queued, all within a lease."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from rq import get_current_job
from rq.job import Job

from rlthf_backend.jobs import status
from rlthf_backend.jobs.config import JobsConfig
from rlthf_backend.jobs.lease import RunLease, run_lease
from rlthf_backend.jobs.queue import claim_pending, clear_force_round, project_lock, wait_for_quiet
from rlthf_backend.app.jobs import jobs_config
from rlthf_backend.app.settings import Settings, get_settings
from rlthf_backend.app.errors import ProjectNotFound
from rlthf_backend.app.training.pipeline import run_training

log = logging.getLogger(__name__)


def train_project_job(project_id: int) -> dict[str, Any]:
    """The RQ job: claim the pending slot, take the project's lock, train, record the status."""
    settings = get_settings()
    config = jobs_config(settings)
    job = get_current_job()
    redis = job.connection
    t0 = time.perf_counter()
    started = time.time()
    with run_lease(redis, config, project_id, job.id) as lease:
        def on_stage(stage: str) -> None:
            lease.check()  # a run that lost its lease stops here: its job may already run elsewhere
            log.info("project %s: %s", project_id, stage)
            status.record(redis, project_id, "running",
                          {"job_id": job.id, "started_at": started, "stage": stage, "lease": lease.id})

        return _train(redis, config, settings, project_id, job, lease, on_stage, t0, started)


def _train(redis: Redis, config: JobsConfig, settings: Settings, project_id: int, job: Job, lease: RunLease,
           on_stage: Callable[[str], None], t0: float, started: float) -> dict[str, Any]:
    on_stage("waiting for annotations to settle")
    waited = wait_for_quiet(redis, project_id, config.debounce_seconds, config.debounce_max_seconds)
    forced = claim_pending(redis, project_id, job.id)
    status.clear(redis, project_id, "queued")

    on_stage("waiting for the project lock")
    try:
        with project_lock(redis, config, project_id) as lock:
            def on_locked_stage(stage: str) -> None:
                lock.check()
                on_stage(stage)

            outcome = run_training(settings, project_id, force_round=bool(forced), on_stage=on_locked_stage,
                                   started_at=t0)
        if forced:
            clear_force_round(redis, project_id, forced)
        outcome.seconds["debounce"] = round(waited, 3)
    except Exception as exc:
        final = isinstance(exc, ProjectNotFound)  # retrying cannot bring a project back
        status.record(redis, project_id, "last_failed", {
            "job_id": job.id, "reason": f"{type(exc).__name__}: {exc}", "started_at": started,
            "seconds": round(time.perf_counter() - t0, 3), "retries_left": 0 if final else job.retries_left,
            "project_missing": final})
        status.clear_run(redis, project_id, lease.id)
        status.count_job(redis, "failed", time.perf_counter() - t0)
        if final:
            log.warning("project %s: %s; not retrying", project_id, exc)
            return {"project_id": project_id, "error": str(exc)}
        raise
    status.count_job(redis, "finished", time.perf_counter() - t0)
    result = outcome.as_dict()
    status.record(redis, project_id, "last_finished", {"job_id": job.id, "started_at": started, **result})
    status.clear_run(redis, project_id, lease.id)  # not another run's (one waiting for the lock)
    return result
