"""Embedded mode: when ``REDIS_URL`` is not set, jobs run in this process.

The same RQ code path (queue, coalescing, status, retries) runs against an in-memory Redis
(``fakeredis``) worked by a thread, so ``rlthf-backend serve`` alone is a complete backend on one
machine. The queue lives in one process: ``serve`` therefore runs a single gunicorn worker in this
mode. Set ``REDIS_URL`` and run ``rlthf-backend worker`` to scale out.
"""

from __future__ import annotations

import logging
import threading
import time

import fakeredis
from redis import Redis
from rq import SimpleWorker
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty

from rlthf_backend.jobs.config import JobsConfig

log = logging.getLogger(__name__)

_lock = threading.Lock()
_redis: Redis | None = None
_worked_queues: set[str] = set()


class _ThreadWorker(SimpleWorker):
    """An RQ worker that runs jobs in its own thread: no signal handlers, timer-based timeouts."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:  # signals belong to the main thread
        pass


def _schedule_retries(scheduler: RQScheduler, interval_s: float = 1.0) -> None:
    """RQ's scheduler forks a process, which would not share an in-memory Redis: run its loop here."""
    while True:
        try:
            scheduler.acquire_locks()
            scheduler.enqueue_scheduled_jobs()
        except Exception:  # keep retrying; a dead scheduler thread would silently stop retries
            log.exception("embedded scheduler")
        time.sleep(interval_s)


def embedded_redis(config: JobsConfig) -> Redis:
    """This process's in-memory Redis, with a worker thread on the training queue (started once)."""
    global _redis
    with _lock:
        if _redis is None:
            _redis = fakeredis.FakeRedis()
        if config.queue_name not in _worked_queues:
            _worked_queues.add(config.queue_name)
            # A worker thread for trainings, and one for background pre-labelling (long: it must not
            # hold trainings back).
            for queue_name in (config.queue_name, config.prelabel_queue):
                worker = _ThreadWorker([queue_name], connection=_redis)
                threading.Thread(
                    target=worker.work,
                    kwargs={"with_scheduler": False, "logging_level": config.log_level.upper()},
                    name=f"rlthf-embedded-worker-{queue_name}",
                    daemon=True,
                ).start()
            threading.Thread(
                target=_schedule_retries, args=(RQScheduler([config.queue_name], connection=_redis),),
                name="rlthf-embedded-scheduler", daemon=True,
            ).start()
            log.warning("embedded mode: REDIS_URL is not set, training jobs (queue %r) and background "
                        "pre-labelling run in this process", config.queue_name)
        return _redis
