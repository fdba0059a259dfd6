"""Enqueueing training, coalesced: at most one queued and one running training per project.

A burst of annotations therefore costs at most two trainings: the one running when the burst
starts and one queued behind it, which starts after the burst has landed. The job reads every
label from Label Studio when it starts, so coalescing never loses a label.

A picked-up job also waits for a quiet moment (no event for ``debounce_seconds``, at most
``debounce_max_seconds``) before it claims the slot, so a storm of annotations lands in one run.

Redis keys (per project, spelled in ``jobs.keys``): ``pending``, the id of the queued, not yet
started training (SET NX); ``force_round``, a Train click waiting for the next job; ``last_event``,
the unix time of the newest label event; ``lock``, held by the running training (a lease: a
training whose worker died frees its project within ``job_lease_seconds``, see ``jobs.lease``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import LockError, LockNotOwnedError
from rq import Queue, Retry

from rlthf_backend.jobs import status
from rlthf_backend.jobs.config import JobsConfig
from rlthf_backend.jobs.keys import force_round_key, last_event_key, lock_key, pending_key
from rlthf_backend.jobs.lease import Heartbeat

log = logging.getLogger(__name__)

#: Seconds between retries of a failed training (the last value repeats).
RETRY_INTERVALS = (10, 60, 300)


class QueueFull(RuntimeError):
    """The queue holds ``max_queued_trainings`` already; this project is not added."""


class ProjectMissing(RuntimeError):
    """Label Studio said a moment ago that it has no such project: nothing is queued for it."""


@dataclass(frozen=True)
class Enqueued:
    job_id: str
    coalesced: bool  # True: joined the training already queued for this project


def training_queue(redis: Redis, config: JobsConfig) -> Queue:
    return Queue(config.queue_name, connection=redis, default_timeout=config.job_timeout)


def enqueue_training(
    redis: Redis, config: JobsConfig, project_id: int, reason: str, *, force_round: bool = False
) -> Enqueued:
    """Queue a training of ``project_id`` unless one is already queued (then join it).

    A project with nothing queued is refused, before any of its keys is written, with
    :class:`ProjectMissing` while Label Studio is remembered not to have it, and with
    :class:`QueueFull` when ``max_queued_trainings`` trainings wait already: webhooks naming
    endless invented projects can grow neither the queue nor Redis.
    """
    queue = training_queue(redis, config)
    if not redis.exists(pending_key(project_id)):  # a new training: refused before any key is written
        missing = status.missing_project(redis, project_id)
        if missing is not None:
            raise ProjectMissing(f"{missing} (checked in the last {status.MISSING_PROJECT_MEMORY_S // 60} "
                                 "minutes); not queued")
        if queue.count >= config.max_queued_trainings:
            raise QueueFull(f"the training queue is full ({config.max_queued_trainings} trainings waiting, "
                            "RLTHF_MAX_QUEUED_TRAININGS); the project's next event queues it")
    redis.set(last_event_key(project_id), time.time(), ex=24 * 3600)
    if force_round:  # a unique value, so a job clears only the click it served
        redis.set(force_round_key(project_id), f"{reason}:{uuid.uuid4().hex[:8]}", ex=config.job_timeout * 4)
    job_id = f"train-p{int(project_id)}-{uuid.uuid4().hex[:12]}"
    if not redis.set(pending_key(project_id), job_id, nx=True, ex=config.job_timeout * 2):
        existing = redis.get(pending_key(project_id))
        if existing is not None:
            return Enqueued(existing.decode() if isinstance(existing, bytes) else existing, coalesced=True)
        return enqueue_training(redis, config, project_id, reason, force_round=False)  # it just started
    try:
        retries = config.job_retries
        queue.enqueue(
            "rlthf_backend.app.training.job.train_project_job",
            int(project_id),
            job_id=job_id,
            job_timeout=config.job_timeout,
            result_ttl=7 * 24 * 3600,
            failure_ttl=7 * 24 * 3600,
            retry=Retry(max=retries, interval=list(RETRY_INTERVALS[:retries]) or [0]) if retries else None,
            description=f"train project {project_id} ({reason})",
        )
    except Exception:
        redis.delete(pending_key(project_id))
        raise
    status.record(redis, project_id, "queued", {"job_id": job_id, "reason": reason})
    return Enqueued(job_id, coalesced=False)


def enqueue_prelabel(redis: Redis, config: JobsConfig, project_id: int, task_ids: list[int],
                     model_version: str) -> str:
    """Queue the judging of ``task_ids`` (what a /predict could not answer in time) and the writing
    of their predictions to Label Studio; returns the job id. Runs
    ``rlthf_backend.app.prelabel.prelabel_tasks_job`` on :attr:`JobsConfig.prelabel_queue`."""
    job_id = f"prelabel-p{int(project_id)}-{uuid.uuid4().hex[:12]}"
    Queue(config.prelabel_queue, connection=redis, default_timeout=config.job_timeout).enqueue(
        "rlthf_backend.app.prelabel.prelabel_tasks_job",
        int(project_id),
        [int(t) for t in task_ids],
        model_version,
        job_id=job_id,
        job_timeout=config.job_timeout,
        result_ttl=24 * 3600,
        failure_ttl=7 * 24 * 3600,
        description=f"pre-label {len(task_ids)} tasks of project {project_id}",
    )
    status.record_prelabel(redis, project_id, status.PrelabelProgress(total=len(task_ids), state="queued",
                                                                      job_id=job_id))
    return job_id


def wait_for_quiet(redis: Redis, project_id: int, quiet_s: float, max_wait_s: float, poll_s: float = 0.2) -> float:
    """Block until no label event came for ``quiet_s`` (or ``max_wait_s`` passed); returns seconds waited."""
    start = time.monotonic()
    while True:
        waited = time.monotonic() - start
        last = redis.get(last_event_key(project_id))
        since = time.time() - float(last) if last is not None else float("inf")
        if since >= quiet_s or waited >= max_wait_s:
            return waited
        time.sleep(poll_s)


def claim_pending(redis: Redis, project_id: int, job_id: str) -> str | None:
    """Called by a starting job: from now on, new events queue a new training behind this one.

    Returns the waiting Train click, if any (the job must then run a curation round, and pass
    the value to :func:`clear_force_round` once it succeeded: a killed job leaves it for its retry).
    """
    pipe = redis.pipeline()
    pipe.get(pending_key(project_id))
    pipe.get(force_round_key(project_id))
    pending, forced = pipe.execute()
    pending = pending.decode() if isinstance(pending, bytes) else pending
    if pending == job_id:
        redis.delete(pending_key(project_id))
    return forced.decode() if isinstance(forced, bytes) else forced


def clear_force_round(redis: Redis, project_id: int, served: str) -> None:
    """Forget the Train click a successful job served (not one that came in meanwhile)."""
    if redis.get(force_round_key(project_id)) in (served, served.encode()):
        redis.delete(force_round_key(project_id))


class ProjectBusy(RuntimeError):
    pass


@contextmanager
def project_lock(redis: Redis, config: JobsConfig, project_id: int) -> Iterator[Heartbeat]:
    """One training per project at a time, across every worker on every machine.

    The lock lasts one lease (``job_lease_seconds``) and is renewed while the block runs, so a
    killed holder frees the project within a lease. The block may call ``check()`` on what this
    yields: it raises :class:`~rlthf_backend.jobs.lease.LeaseLost` once the lock lapsed anyway.
    """
    lock = redis.lock(lock_key(project_id), timeout=config.job_lease_seconds, blocking_timeout=config.job_timeout)
    if not lock.acquire():
        raise ProjectBusy(f"project {project_id}: another training held the lock for {config.job_timeout} s")

    def renew() -> str | None:
        try:
            lock.reacquire()  # its expiry back to a full lease
        except LockNotOwnedError:
            return "the project lock lapsed (Redis unreachable for longer than a lease?); another training may start"
        return None

    try:
        with Heartbeat(f"project {project_id}: lock", config.job_lease_seconds / 3, renew) as heartbeat:
            yield heartbeat
    finally:
        try:
            lock.release()
        except LockError:  # lapsed: nothing of ours to release
            log.warning("project %s: the project lock had lapsed before its release", project_id)
