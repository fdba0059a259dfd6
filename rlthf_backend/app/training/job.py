"""The RQ job around one training (``app/training/pipeline.py``): wait for the label events to
settle, claim the project's pending slot, hold its lock, train, record the status."""

from __future__ import annotations

import logging
import time
from typing import Any

from rq import get_current_job

from rlthf_backend.jobs import status
from rlthf_backend.jobs.queue import claim_pending, clear_force_round, project_lock, wait_for_quiet
from rlthf_backend.app.jobs import jobs_config
from rlthf_backend.app.settings import get_settings
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

    def on_stage(stage: str) -> None:
        log.info("project %s: %s", project_id, stage)
        status.record(redis, project_id, "running", {"job_id": job.id, "started_at": started, "stage": stage})

    on_stage("waiting for annotations to settle")
    waited = wait_for_quiet(redis, project_id, config.debounce_seconds, config.debounce_max_seconds)
    forced = claim_pending(redis, project_id, job.id)
    status.clear(redis, project_id, "queued")

    on_stage("waiting for the project lock")
    try:
        with project_lock(redis, config, project_id):
            outcome = run_training(settings, project_id, force_round=bool(forced), on_stage=on_stage, started_at=t0)
        if forced:
            clear_force_round(redis, project_id, forced)
        outcome.seconds["debounce"] = round(waited, 3)
    except Exception as exc:
        final = isinstance(exc, ProjectNotFound)  # retrying cannot bring a project back
        status.record(redis, project_id, "last_failed", {
            "job_id": job.id, "reason": f"{type(exc).__name__}: {exc}", "started_at": started,
            "seconds": round(time.perf_counter() - t0, 3), "retries_left": 0 if final else job.retries_left,
            "project_missing": final})
        status.clear(redis, project_id, "running")
        status.count_job(redis, "failed", time.perf_counter() - t0)
        if final:
            log.warning("project %s: %s; not retrying", project_id, exc)
            return {"project_id": project_id, "error": str(exc)}
        raise
    status.count_job(redis, "finished", time.perf_counter() - t0)
    result = outcome.as_dict()
    status.record(redis, project_id, "last_finished", {"job_id": job.id, "started_at": started, **result})
    status.clear(redis, project_id, "running")
    return result
