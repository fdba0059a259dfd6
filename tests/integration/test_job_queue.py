"""Coalescing, debounce and the project lock against the real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis as redis_lib
from rq import Queue

from rlthf_backend.jobs.queue import (
    ProjectBusy,
    claim_pending,
    clear_force_round,
    enqueue_training,
    project_lock,
    wait_for_quiet,
)
from rlthf_backend.jobs.config import JobsConfig
from rlthf_backend.jobs.keys import PREFIX

pytestmark = pytest.mark.integration


@pytest.fixture
def redis():
    client = redis_lib.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
    try:
        client.ping()
    except redis_lib.RedisError as exc:
        pytest.skip(f"no Redis at 127.0.0.1:6379: {exc}")
    yield client
    for key in client.scan_iter(f"{PREFIX}:project:9*"):
        client.delete(key)


@pytest.fixture
def config():
    return JobsConfig(redis_url="redis://127.0.0.1:6379/0", queue_name=f"test-{uuid.uuid4().hex[:8]}",
                      job_timeout=30)


def _pid() -> int:
    return 900000 + int(uuid.uuid4().int % 99999)


def test_burst_collapses_into_one_queued_job_until_it_starts(redis, config):
    pid = _pid()
    queue = Queue(config.queue_name, connection=redis)
    try:
        results = [enqueue_training(redis, config, pid, "ANNOTATION_CREATED") for _ in range(50)]
        assert not results[0].coalesced and all(r.coalesced for r in results[1:])
        assert {r.job_id for r in results} == {results[0].job_id}
        assert queue.count == 1

        # Once the job starts, new events queue exactly one more behind it.
        assert claim_pending(redis, pid, results[0].job_id) is None
        later = [enqueue_training(redis, config, pid, "ANNOTATION_UPDATED") for _ in range(20)]
        assert len({r.job_id for r in later}) == 1 and later[0].job_id != results[0].job_id
        assert queue.count == 2
    finally:
        queue.empty()


def test_train_click_is_kept_until_a_job_succeeds(redis, config):
    pid = _pid()
    queue = Queue(config.queue_name, connection=redis)
    try:
        job = enqueue_training(redis, config, pid, "START_TRAINING", force_round=True)
        forced = claim_pending(redis, pid, job.job_id)
        assert forced and forced.startswith("START_TRAINING")
        # A job killed now would leave the click for its retry:
        assert claim_pending(redis, pid, "retry-of-same-job") == forced
        # A new click during the run is not cleared by the running job's success.
        enqueue_training(redis, config, pid, "START_TRAINING", force_round=True)
        clear_force_round(redis, pid, forced)
        assert claim_pending(redis, pid, "next") not in (None, forced)
    finally:
        queue.empty()


def test_wait_for_quiet_waits_for_the_burst_to_end(redis, config):
    pid = _pid()
    queue = Queue(config.queue_name, connection=redis)
    stop = time.monotonic() + 1.0

    def burst():
        while time.monotonic() < stop:
            enqueue_training(redis, config, pid, "ANNOTATION_CREATED")
            time.sleep(0.05)

    enqueue_training(redis, config, pid, "ANNOTATION_CREATED")  # the burst's first event, before anyone waits
    t = threading.Thread(target=burst)
    t.start()
    try:
        started = time.monotonic()
        waited = wait_for_quiet(redis, pid, quiet_s=0.5, max_wait_s=10, poll_s=0.05)
        t.join()
        assert waited >= stop - started  # not before the burst ended (+ the quiet time)
        assert wait_for_quiet(redis, pid, quiet_s=60, max_wait_s=0.3, poll_s=0.05) >= 0.3  # bounded
    finally:
        t.join()
        queue.empty()


def test_project_lock_is_exclusive(redis):
    pid = _pid()
    short = JobsConfig(job_timeout=1)
    with project_lock(redis, short, pid):
        with pytest.raises(ProjectBusy):
            with project_lock(redis, short, pid):
                pass
    with project_lock(redis, short, pid):  # released
        pass
