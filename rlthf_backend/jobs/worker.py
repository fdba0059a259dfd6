"""``rlthf-backend worker``: RQ workers for the training queue."""

from __future__ import annotations

import logging

from rq import Worker
from rq.worker_pool import WorkerPool

from rlthf_backend.jobs.connection import redis_from_settings
from rlthf_backend.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings, workers: int = 1, burst: bool = False) -> None:
    """Work the training queue until stopped (or until it is empty, with ``burst``).

    The scheduler runs inside the worker: failed trainings are retried with backoff through it.
    """
    redis = redis_from_settings(settings)
    redis.ping()  # fail now, with the URL in the message, rather than inside RQ's loop
    log.info("worker(s) on queue %r at %s", settings.queue_name, settings.redis_url)
    if workers > 1:
        WorkerPool([settings.queue_name], connection=redis, num_workers=workers).start(burst=burst)
        return
    Worker([settings.queue_name], connection=redis).work(
        burst=burst, with_scheduler=True, logging_level=settings.log_level.upper()
    )
