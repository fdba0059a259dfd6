"""The judge's two-lane request pool, and the pre-labelling progress record /jobs shows."""

from __future__ import annotations

import threading
import time

import fakeredis

from rlthf_backend.core.judges.base import JudgeCall, current_call, judge_call
from rlthf_backend.core.judges.lanes import LanePool
from rlthf_backend.jobs import status


def test_urgent_work_is_taken_before_queued_bulk_work():
    pool = LanePool(2, name="test")
    started: list[str] = []
    gate = threading.Event()

    def work(name: str) -> str:
        started.append(name)
        gate.wait(5)
        return name

    bulk = [pool.submit(work, f"bulk{i}") for i in range(10)]
    time.sleep(0.1)  # two bulk items run; eight wait
    urgent = pool.submit(work, "urgent", urgent=True)
    gate.set()
    assert urgent.result(5) == "urgent"
    assert [f.result(5) for f in bulk] == [f"bulk{i}" for i in range(10)]
    # The urgent item started as soon as a worker was free: third, ahead of eight queued bulk items.
    assert started.index("urgent") == 2, started
    assert pool.queued() == 0
    pool.shutdown()


def test_pool_bound_holds_and_exceptions_reach_the_caller():
    pool = LanePool(3)
    running, peak, lock = [0], [0], threading.Lock()

    def work(i: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        if i == 5:
            raise ValueError("five")
        return i

    futures = [pool.submit(work, i) for i in range(20)]
    results = [f.exception(5) or f.result() for f in futures]
    assert peak[0] == 3
    assert isinstance(results[5], ValueError) and results[:5] == [0, 1, 2, 3, 4]
    pool.shutdown()


def test_judge_call_context_and_deadline():
    assert not current_call().urgent and not current_call().stopped
    call = JudgeCall(urgent=True, deadline=time.monotonic() + 0.05)
    with judge_call(call):
        assert current_call() is call and not call.stopped
        time.sleep(0.06)
        assert call.stopped
    assert current_call() is not call
    other = JudgeCall()
    other.cancel()
    assert other.stopped


def test_prelabel_progress_round_trips_through_the_status_hash():
    redis = fakeredis.FakeRedis()
    progress = status.PrelabelProgress(total=10, done=4, judged=3, cached=1, written=4, seconds=2.0, rate_per_s=2.0,
                                       eta_s=3.0, requests=6, prompt_tokens=600, completion_tokens=72, job_id="j1")
    status.record_prelabel(redis, 7, progress)
    status.record(redis, 7, "queued", {"job_id": "t1", "reason": "ANNOTATION_CREATED"})
    read = status.read(redis, 7)
    assert read.prelabel == progress
    shown = read.as_dict()
    assert shown["prelabel"]["done"] == 4 and shown["prelabel"]["requests"] == 6
    assert shown["queued"]["job_id"] == "t1" and shown["running"] is None
    line = progress.describe()
    assert "4/10 tasks" in line and "2.00 tasks/s" in line and "about 3 s left" in line and "600 prompt" in line
    # A hand-edited field reads as no progress, never as an error.
    redis.hset(status.status_key(7), "prelabel", '{"total": "many"}')
    assert status.read(redis, 7).prelabel is None
