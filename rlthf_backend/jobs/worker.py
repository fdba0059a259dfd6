"""``rlthf-backend worker``: RQ workers for the training queue."""

from __future__ import annotations

import logging
import time

import redis
from rq import Worker
from rq.worker_pool import WorkerPool

from rlthf_backend.jobs.config import JobsConfig
from rlthf_backend.jobs.connection import redis_from_config
from rlthf_backend.jobs.lease import start_keeper

log = logging.getLogger(__name__)

#: Longest pause between two pings while waiting for Redis to come back.
MAX_RECONNECT_WAIT_S = 5.0


def run_worker(config: JobsConfig, workers: int = 1, burst: bool = False) -> None:
    """Work the training queue until stopped (or until it is empty, with ``burst``).

    The scheduler runs inside the worker: failed trainings are retried with backoff through it.
    Redis going away never ends the worker: RQ retries while it waits for a job, but an outage
    at another moment (starting up, registering, a heartbeat) makes it raise or quit, so a
    worker that stopped without being asked to waits for Redis and starts again.

    Beside RQ, a keeper thread hands the jobs of dead workers back to RQ within a lease
    (``jobs.lease``), and schedules retries when the worker that ran RQ's scheduler died.
    """
    connection = redis_from_config(config)
    connection.ping()  # fail now, with the URL in the message, rather than inside RQ's loop
    queues = [config.queue_name, config.prelabel_queue]  # trainings first
    log.info("worker(s) on queues %s at %s", queues, config.redis_url)
    if not burst:
        start_keeper(redis_from_config(config), config)
    if workers > 1:
        WorkerPool(queues, connection=connection, num_workers=workers).start(burst=burst)
        return
    while True:
        worker = Worker(queues, connection=connection)
        try:
            worker.work(burst=burst, with_scheduler=True, logging_level=config.log_level.upper())
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("lost Redis at %s (%s); starting again once it answers", config.redis_url, exc)
        else:
            if burst or _asked_to_stop(worker):
                return
            log.warning("the RQ worker stopped without being asked to; starting again once Redis answers")
        wait_for_redis(connection)


def _asked_to_stop(worker: Worker) -> bool:
    """Whether a signal asked the worker to stop (RQ records it only in private attributes: the
    date of a warm-shutdown request, and the flag set when one arrives during a job)."""
    requested = getattr(worker, "_shutdown_requested_date", None) is not None
    return requested or bool(getattr(worker, "_stop_requested", False))


def wait_for_redis(connection: redis.Redis) -> None:
    """Block until Redis answers a ping (backoff up to :data:`MAX_RECONNECT_WAIT_S`)."""
    pause = 0.5
    while True:
        try:
            connection.ping()
            return
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            time.sleep(pause)
            pause = min(2 * pause, MAX_RECONNECT_WAIT_S)
