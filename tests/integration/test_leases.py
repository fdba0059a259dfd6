"""Leases against the real Redis at 127.0.0.1:6379 and real RQ workers: a worker killed (kill -9,
process group and work-horse) while its job holds a project frees the project within a lease,
stops showing as running, and its job runs again (or fails with one line when no retry is left)."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis as redis_lib
from rq import Queue, Retry
from rq.job import Job

from rlthf_backend.jobs import status
from rlthf_backend.jobs.config import JobsConfig
from rlthf_backend.jobs.keys import LEASES_KEY, PREFIX
from rlthf_backend.jobs.lease import ABANDONED
from rlthf_backend.jobs.queue import project_lock
from tests.support.processes import ManagedProcess, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/0"
LEASE_S = 3


@pytest.fixture
def redis():
    client = redis_lib.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis_lib.RedisError as exc:
        pytest.skip(f"no Redis at 127.0.0.1:6379: {exc}")
    yield client
    for key in client.scan_iter(f"{PREFIX}:project:97*"):
        client.delete(key)


@pytest.fixture
def queue_name(redis):
    name = f"test-lease-{uuid.uuid4().hex[:8]}"
    yield name
    Queue(name, connection=redis).empty()


def _pid() -> int:
    return 970000 + int(uuid.uuid4().int % 9999)


def start_worker(queue_name: str, workdir: Path, name: str) -> ManagedProcess:
    """``rlthf-backend worker`` of this checkout (not of whatever the console script belongs to)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RLTHF_")}, "PYTHONPATH": str(ROOT),
           "REDIS_URL": REDIS_URL, "RLTHF_QUEUE_NAME": queue_name, "RLTHF_JOB_LEASE_SECONDS": str(LEASE_S),
           "RLTHF_JOB_TIMEOUT": "120", "RLTHF_DATA_DIR": str(workdir / "data")}
    return ManagedProcess([sys.executable, "-m", "rlthf_backend.cli", "worker"], env=env,
                          log_path=workdir / f"{name}.log", cwd=workdir)


def _kill_mid_job(redis, queue_name: str, project_id: int, tmp_path: Path, retries: int):
    """Enqueue a job that holds the project's lock for an hour, then kill -9 its worker and work-horse."""
    runs = tmp_path / "runs.txt"
    worker = start_worker(queue_name, tmp_path / "w1", "worker1")
    job = Queue(queue_name, connection=redis).enqueue(
        "tests.support.lease_jobs.hold_project", project_id, str(runs), 3600, job_timeout=120,
        retry=Retry(max=retries) if retries else None)
    try:
        wait_until(lambda: runs.exists() and status.read(redis, project_id).running.info["stage"] == "holding the lock",
                   60, "the job to hold the project lock")
        horse, parent = map(int, runs.read_text().split())
        assert parent == worker.proc.pid
        os.killpg(worker.proc.pid, signal.SIGKILL)
        try:
            os.kill(horse, signal.SIGKILL)
        except ProcessLookupError:  # went with the group
            pass
        worker.proc.wait(10)
    finally:
        worker.stop()
    return job, runs, time.monotonic()


def test_a_killed_worker_frees_its_project_within_a_lease_and_its_job_runs_again(redis, queue_name, tmp_path):
    project_id = _pid()
    job, runs, killed_at = _kill_mid_job(redis, queue_name, project_id, tmp_path, retries=1)
    assert job.get_status(refresh=True) == "started"  # RQ itself has not noticed (its heartbeat lasts 90 s)

    # The lock was a lease: free within one (it used to be held for job_timeout + 60 s).
    with project_lock(redis, JobsConfig(job_timeout=30, job_lease_seconds=LEASE_S), project_id):
        freed_after = time.monotonic() - killed_at
    assert freed_after < LEASE_S + 1.5, f"the project stayed locked {freed_after:.1f} s after its worker died"
    wait_until(lambda: status.read(redis, project_id).running is None, 3, "the status to stop saying running")
    assert status.read(redis, project_id).abandoned.job_id == job.id  # nobody cleared it yet: no worker runs

    # A worker's keeper hands the job back to RQ, which runs it again at once (not after 90 s + maintenance).
    worker = start_worker(queue_name, tmp_path / "w2", "worker2")
    try:
        wait_until(lambda: job.get_status(refresh=True) == "finished", 40, "the job to run again")
        rerun_after = time.monotonic() - killed_at
        assert len(runs.read_text().splitlines()) == 2 and job.return_value() == "done"
        assert rerun_after < 30, f"re-run {rerun_after:.1f} s after the worker died"
        state = status.read(redis, project_id)
        assert state.running is None and state.abandoned is None and state.last_finished.job_id == job.id
        assert state.last_failed.job_id == job.id and state.last_failed.reason.startswith(ABANDONED)
        assert state.last_failed.retries_left == 1 and Job.fetch(job.id, connection=redis).retries_left == 0
        assert not any(job.id in m.decode() for m in redis.smembers(LEASES_KEY))
    finally:
        worker.stop()
    assert "Traceback" not in worker.log_tail(200), worker.log_tail(200)


def test_a_killed_worker_without_retries_left_fails_its_job_with_one_line(redis, queue_name, tmp_path):
    project_id = _pid()
    job, runs, killed_at = _kill_mid_job(redis, queue_name, project_id, tmp_path, retries=0)
    worker = start_worker(queue_name, tmp_path / "w2", "worker2")
    try:
        wait_until(lambda: job.get_status(refresh=True) == "failed", 30, "the job to be failed")
        assert time.monotonic() - killed_at < 20
        state = status.read(redis, project_id)
        assert state.running is None and state.abandoned is None and state.failing
        assert state.last_failed.reason == f"{ABANDONED}; no retries left" and state.last_failed.retries_left == 0
        assert "AbandonedJobError" in Job.fetch(job.id, connection=redis).latest_result().exc_string
        assert len(runs.read_text().splitlines()) == 1  # not run again
        with project_lock(redis, JobsConfig(job_timeout=1, job_lease_seconds=LEASE_S), project_id):
            pass  # and the project is free for its next training
    finally:
        worker.stop()
