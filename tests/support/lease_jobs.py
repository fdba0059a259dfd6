"""A training in miniature, for the tests of leases: the run's lease, its "running" status and the
project lock, exactly as ``app.training.job`` holds them, without Label Studio or a model."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rq import get_current_job

from rlthf_backend.app.jobs import jobs_config
from rlthf_backend.app.settings import get_settings
from rlthf_backend.jobs import status
from rlthf_backend.jobs.lease import run_lease
from rlthf_backend.jobs.queue import project_lock


def hold_project(project_id: int, runs_file: str, hold_s: float) -> str:
    """Holds the project's lock for ``hold_s`` on its first run, not on a retry; appends
    ``<work-horse pid> <worker pid>`` to ``runs_file`` once it holds the lock."""
    job = get_current_job()
    redis, config = job.connection, jobs_config(get_settings())
    with run_lease(redis, config, project_id, job.id) as lease:
        def stage(name: str) -> None:
            status.record(redis, project_id, "running", {"job_id": job.id, "stage": name, "lease": lease.id})

        stage("waiting for the project lock")
        with project_lock(redis, config, project_id):
            stage("holding the lock")
            runs = Path(runs_file)
            first = not runs.exists()
            with runs.open("a") as f:
                f.write(f"{os.getpid()} {os.getppid()}\n")
            if first:
                time.sleep(hold_s)
        status.record(redis, project_id, "last_finished", {"job_id": job.id})
        status.clear_run(redis, project_id, lease.id)
    return "done"
