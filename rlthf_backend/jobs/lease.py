"""Leases: what a training holds lasts only as long as the process running it is alive.

A worker killed with ``kill -9`` (out of memory, a node lost) runs no ``finally``. So nothing a
training holds may outlive it by more than a lease (``job_lease_seconds``, 30 s by default):

- its project's lock (``queue.project_lock``) expires after one lease unless renewed;
- its run has a lease key (``keys.lease_key``), and its "running" status names that run: the one
  status reader (``status.read``) shows a run whose lease key is gone as not running;
- a :class:`Heartbeat` thread renews both every third of a lease while the process lives;
- every worker runs a keeper (:func:`start_keeper`) that finds runs whose lease lapsed while RQ
  still has their job started, and hands the job back to RQ at once: re-queued at the front while
  it has retries left (a dead worker is no reason to back off; each such retry still counts, so a
  training that kills its worker every time stops after its retries), failed otherwise. RQ would
  notice by itself only after its own heartbeat lapsed (90 s) and a worker's next maintenance
  (every 10 minutes at best), and then through the scheduler, which may have died with the worker.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler

from rlthf_backend.jobs import status
from rlthf_backend.jobs.config import JobsConfig
from rlthf_backend.jobs.keys import LEASES_KEY, lease_key

log = logging.getLogger(__name__)

#: Why a run's job was handed back to RQ, as RQ's failure records and the status show it.
ABANDONED = "WorkerDied: the worker running this training died (its lease lapsed)"


class LeaseLost(RuntimeError):
    """This process no longer holds what it was renewing: someone may already run its work again."""


class Heartbeat:
    """Calls ``renew`` every ``interval_s`` from a daemon thread until the block ends.

    ``renew`` returns None while all is well, or why the lease is lost (then the thread stops and
    :meth:`check` raises). A Redis outage is only logged: if it outlasts the lease, the next
    renewal finds the lease gone and says so.
    """

    def __init__(self, what: str, interval_s: float, renew: Callable[[], str | None]) -> None:
        self.what, self.interval_s, self._renew = what, interval_s, renew
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rlthf-lease {what}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        if self.lost is not None:
            raise LeaseLost(f"{self.what}: {self.lost}")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                lost = self._renew()
            except RedisError as exc:
                log.warning("%s: lease not renewed (%s); trying again in %.0f s", self.what, exc, self.interval_s)
                continue
            if lost is not None:
                self.lost = lost
                log.error("%s: %s", self.what, lost)
                return


class RunLease(Heartbeat):
    """The lease of one run of a training job (see :func:`run_lease`)."""

    def __init__(self, redis: Redis, config: JobsConfig, project_id: int, job_id: str) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.key = lease_key(project_id, self.id)
        self.member = f"{int(project_id)}:{self.id}:{job_id}"
        seconds = config.job_lease_seconds

        def renew() -> str | None:
            if redis.set(self.key, job_id, ex=seconds, xx=True):
                return None
            return "the run's lease lapsed (Redis unreachable for longer than a lease?); its job may run again"

        super().__init__(f"project {project_id}: job {job_id}", seconds / 3, renew)


@contextmanager
def run_lease(redis: Redis, config: JobsConfig, project_id: int, job_id: str) -> Iterator[RunLease]:
    """Hold a lease for this run of ``job_id`` while the block runs; its status names ``lease.id``."""
    lease = RunLease(redis, config, project_id, job_id)
    pipe = redis.pipeline()  # MULTI: a keeper never sees the member without its key
    pipe.set(lease.key, job_id, ex=config.job_lease_seconds)
    pipe.sadd(LEASES_KEY, lease.member)
    pipe.execute()
    try:
        with lease:
            yield lease
    finally:
        pipe = redis.pipeline()
        pipe.delete(lease.key)
        pipe.srem(LEASES_KEY, lease.member)
        pipe.execute()


# --- the keeper ----------------------------------------------------------------------------------


def reap_dead_runs(redis: Redis, config: JobsConfig) -> list[str]:
    """Hand every run whose lease lapsed back to RQ (see the module docstring); the job ids handed back.

    Several keepers may run at once: whoever removes a run from ``rlthf:leases`` handles it.
    """
    handed_back = []
    for raw in redis.smembers(LEASES_KEY):
        member = raw.decode() if isinstance(raw, bytes) else raw
        try:
            project, run_id, job_id = member.split(":", 2)
            project_id = int(project)
        except ValueError:
            log.warning("%s: dropped %r, which is not a run's lease", LEASES_KEY, member)
            redis.srem(LEASES_KEY, raw)
            continue
        if redis.exists(lease_key(project_id, run_id)) or not redis.srem(LEASES_KEY, raw):
            continue  # alive, or another keeper took it
        try:
            outcome = _dead_run(redis, config, project_id, run_id, job_id)
        except Exception:
            redis.sadd(LEASES_KEY, raw)  # the next pass tries again
            raise
        if outcome == "later":
            redis.sadd(LEASES_KEY, raw)
        elif outcome is not None:
            handed_back.append(job_id)
    return handed_back


def _dead_run(redis: Redis, config: JobsConfig, project_id: int, run_id: str, job_id: str) -> str | None:
    """One run whose lease lapsed: "retried", "failed", "later" (not decidable yet), None (nothing to do)."""
    status.clear_run(redis, project_id, run_id)  # no longer shown as running, whatever comes next
    try:
        job = Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return None
    if job.get_status(refresh=False) != JobStatus.STARTED:
        return None  # RQ saw it end (its work-horse alone died, and its worker retried it; or it finished)
    if _live_run_of(redis, job_id):
        return None  # started again meanwhile, by a worker that holds a lease for it
    started = job.started_at.timestamp() if job.started_at else 0.0
    if time.time() - started < config.job_lease_seconds:
        return "later"  # a new execution, that may not have taken its lease yet
    queue = Queue(job.origin, connection=redis)
    if not queue.acquire_maintenance_lock():  # RQ's own cleanup is at work on this queue: next pass
        return "later"
    try:
        retries_left = job.retries_left or 0
        registry = StartedJobRegistry(job.origin, connection=redis)
        if retries_left > 0:
            job.retries_left = retries_left - 1
            job.started_at = job.ended_at = None
            with redis.pipeline() as pipe:  # out of the started registry and back on the queue, at once
                pipe.multi()  # RQ's enqueue_job wants a pipeline in MULTI once it holds commands
                registry.remove_executions(job, pipeline=pipe)
                queue.enqueue_job(job, pipeline=pipe, at_front=True)
                pipe.execute()
            outcome = "retried"
        else:
            # RQ records the failure itself (failed registry, status): its executions are made to
            # look expired, then its own cleanup of abandoned jobs runs on just them.
            for entry in redis.zrange(registry.key, 0, -1):
                if (entry.decode() if isinstance(entry, bytes) else entry).startswith(f"{job_id}:"):
                    redis.zadd(registry.key, {entry: 0}, xx=True)
            registry.cleanup(timestamp=1)
            outcome = "failed"
    finally:
        queue.release_maintenance_lock()
    what = "re-queued" if outcome == "retried" else "no retries left"
    log.warning("project %s: %s; job %s %s", project_id, ABANDONED, job_id, what)
    status.record(redis, project_id, "last_failed", {
        "job_id": job_id, "reason": f"{ABANDONED}; {what}", "retries_left": retries_left, "project_missing": False})
    status.count_job(redis, "failed", 0.0)
    return outcome


def _live_run_of(redis: Redis, job_id: str) -> bool:
    for raw in redis.smembers(LEASES_KEY):
        member = raw.decode() if isinstance(raw, bytes) else raw
        project, _, rest = member.partition(":")
        run_id, _, job = rest.partition(":")
        if job == job_id and project.lstrip("-").isdigit() and redis.exists(lease_key(int(project), run_id)):
            return True
    return False


def stand_in_scheduler(redis: Redis, config: JobsConfig) -> bool:
    """Move due retries to the queue if no scheduler holds the queue's scheduler lock.

    RQ runs its scheduler in one worker; when that worker dies, the others take over only at
    their next maintenance (10 minutes or more), and scheduled retries wait meanwhile.
    """
    scheduler = RQScheduler([config.queue_name], connection=redis)
    if not scheduler.acquire_locks():
        return False
    try:
        scheduler.enqueue_scheduled_jobs()
    finally:
        scheduler.release_locks()
    return True


def start_keeper(redis: Redis, config: JobsConfig) -> threading.Thread:
    """The worker's keeper thread: every third of a lease, :func:`reap_dead_runs` and
    :func:`stand_in_scheduler`. It never ends the worker: a failed pass is logged and tried again."""

    def keep() -> None:
        while True:
            time.sleep(config.job_lease_seconds / 3)
            for step in (reap_dead_runs, stand_in_scheduler):
                try:
                    step(redis, config)
                except RedisError as exc:
                    log.warning("lease keeper: %s: %s: %s", step.__name__, type(exc).__name__, exc)
                except Exception:
                    log.exception("lease keeper: %s", step.__name__)

    thread = threading.Thread(target=keep, name="rlthf-lease-keeper", daemon=True)
    thread.start()
    return thread


__all__ = ["ABANDONED", "Heartbeat", "LeaseLost", "RunLease", "reap_dead_runs", "run_lease", "stand_in_scheduler",
           "start_keeper"]
