"""Faults of the active loop: Redis gone, a worker killed mid-training, Label Studio unreachable."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Worker

from rlthf_backend.core.reward import load_reward_model
from rlthf_backend.registry.versions import ModelRegistry
from tests.integration.test_active_loop import human_result, make_project, start_worker, wait_for_training
from tests.support.backend import start_backend
from tests.support.data import judged_pairs
from tests.support.processes import free_port, wait_until
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


def _env(label_studio, redis_url: str, data: Path, **extra: str) -> dict[str, str]:
    return {
        "RLTHF_JUDGE": "precomputed", "RLTHF_DATA_DIR": str(data), "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token, "REDIS_URL": redis_url, "RLTHF_ROUND_EVERY_N_LABELS": "0",
        "RLTHF_DEBOUNCE_SECONDS": "0.5", **extra,
    }


def test_redis_down_webhooks_still_answer_and_next_training_catches_up(ls, label_studio, tmp_path):
    redis_server = RedisServer(tmp_path)
    env = _env(label_studio, redis_server.url, tmp_path / "data")
    backend = start_backend(tmp_path / "backend", env)
    worker = start_worker(env, tmp_path / "worker")
    try:
        # Redis goes away under a running worker (one that cannot reach Redis at start stops, by design).
        registered = Redis.from_url(redis_server.url)
        wait_until(lambda: Worker.count(connection=registered) >= 1, 120, "the worker to register")
        rows = judged_pairs(30)
        label_of = {r["id"]: r["human_label"] for r in rows}
        project_id = make_project(ls, rows, "choices.xml", "redis down")
        ls.ml.create(project=project_id, url=backend.url, title="rlthf")
        tasks = [t.model_dump() for t in ls.tasks.list(project=project_id)]

        redis_server.stop()
        for task in tasks[:5]:  # Label Studio sends the webhooks; none can be queued
            t0 = time.perf_counter()
            ls.annotations.create(id=task["id"], result=human_result("choices.xml", label_of[task["data"]["pair_id"]]))
            assert time.perf_counter() - t0 < 10
        direct = []
        for _ in range(5):
            t0 = time.perf_counter()
            r = backend.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": project_id},
                                               "annotation": {"id": 1}})
            direct.append(time.perf_counter() - t0)
            assert r.status_code == 200 and r.json()["status"] == "not queued"
            assert "Redis" in r.json()["error"]
        assert max(direct) < 1.0  # Label Studio gives a webhook 1 s
        health = backend.get("/health").json()
        assert health["status"] == "UP" and health["jobs"]["ok"] is False
        train = {"action": "START_TRAINING", "project": {"id": project_id}}
        assert backend.post("/webhook", json=train).status_code == 503
        assert backend.metric("rlthf_webhooks_not_queued_total") >= 10

        redis_server.start()
        time.sleep(5.5)  # the circuit breaker's cooldown
        t1 = time.time()
        ls.annotations.create(id=tasks[5]["id"],
                              result=human_result("choices.xml", label_of[tasks[5]["data"]["pair_id"]]))
        done = wait_for_training(backend, project_id, after=t1)
        assert done["human_labels"] == 6  # the five made while Redis was down are not lost
        assert backend.get("/health").json()["jobs"]["ok"] is True
    finally:
        worker.stop()
        backend.stop()
        redis_server.stop()


def test_worker_killed_mid_training_never_serves_half_a_model(ls, label_studio, tmp_path):
    redis_server = RedisServer(tmp_path)
    env = _env(label_studio, redis_server.url, tmp_path / "data", RLTHF_JOB_TIMEOUT="60", RLTHF_JOB_RETRIES="2")
    backend = start_backend(tmp_path / "backend", env)
    worker = start_worker(env, tmp_path / "worker")
    try:
        rows = judged_pairs(40)
        project_id = make_project(ls, rows, "choices.xml", "killed worker")
        ls.ml.create(project=project_id, url=backend.url, title="rlthf")
        t0 = time.time()
        backend.post("/webhook", json={"action": "START_TRAINING", "project": {"id": project_id}})
        first = wait_for_training(backend, project_id, after=t0, round_run=True)
        registry = ModelRegistry(tmp_path / "data" / "models")
        assert registry.latest(project_id).version == first["version"]

        t1 = time.time()
        backend.post("/webhook", json={"action": "START_TRAINING", "project": {"id": project_id}})

        def mid_training() -> bool:
            running = backend.get(f"/jobs?project={project_id}").json()["running"]
            return bool(running) and running["stage"].startswith(("planning", "fitting"))

        wait_until(mid_training, 60, "the second training to be mid-way", interval_s=0.05)
        os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()

        # Nothing half-written is visible: the previous version still serves, everywhere.
        assert registry.latest(project_id).version == first["version"]
        for version in registry.versions(project_id):
            assert load_reward_model(version.path / "rm") is not None
        assert ls.projects.get(id=project_id).model_version == first["version"]

        # A new worker finds the abandoned job (after its heartbeat expires) and retries it.
        time.sleep(95)
        worker = start_worker(env, tmp_path / "worker2", name="worker2")
        retried = wait_for_training(backend, project_id, after=t1, round_run=True, timeout_s=240)
        assert retried["version"] != first["version"]
        assert registry.latest(project_id).version == retried["version"]
        # The label stream stays on the queue version the first round wrote; the retry updated it in place.
        assert ls.projects.get(id=project_id).model_version == retried["model_version_in_label_studio"] \
            == first["version"]
    finally:
        worker.stop()
        backend.stop()
        redis_server.stop()


def test_label_studio_unreachable_fails_clearly_and_retries(label_studio, tmp_path):
    redis_server = RedisServer(tmp_path)
    dead = f"http://127.0.0.1:{free_port()}"
    env = {**_env(label_studio, redis_server.url, tmp_path / "data", RLTHF_JOB_RETRIES="2"), "LABEL_STUDIO_URL": dead}
    backend = start_backend(tmp_path / "backend", env)
    worker = start_worker(env, tmp_path / "worker")
    try:
        r = backend.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 7}})
        assert r.json()["status"] == "queued" and r.json()["job_id"]

        def failed_with(retries_left: int) -> bool:
            failed = backend.get("/jobs?project=7").json()["last_failed"]
            return bool(failed) and failed["retries_left"] == retries_left

        wait_until(lambda: failed_with(2), 60, "the first failure")
        failed = backend.get("/jobs?project=7").json()["last_failed"]
        assert f"Label Studio unreachable at {dead}" in failed["reason"]
        health = backend.get("/health").json()["jobs"]
        assert health["ok"] and health["last_failure"]["project"] == 7
        assert "Label Studio unreachable" in health["last_failure"]["reason"]
        wait_until(lambda: failed_with(1), 60, "a retry after the backoff")
        assert backend.metric("rlthf_jobs_failed_total") >= 2
        assert backend.get("/jobs?project=7").json()["last_finished"] is None
    finally:
        worker.stop()
        backend.stop()
        redis_server.stop()


def test_worker_outlives_redis_vanishing_while_it_starts(tmp_path):
    """A worker whose Redis goes away at any moment (here: as RQ finishes starting) waits for Redis
    and works again; it stops only when asked to (SIGTERM). Seen in a full CI run before the fix:
    RQ raised "ConnectionError: Connection closed by server" out of its start-up and the worker
    process ended, so the trainings queued after Redis came back never ran."""
    import redis as redis_lib
    from rq import Queue

    redis_server = RedisServer(tmp_path)
    env = {"REDIS_URL": redis_server.url, "RLTHF_DATA_DIR": str(tmp_path / "data")}
    worker = start_worker(env, tmp_path / "worker")
    try:
        # right after RQ says it listens: the rest of its start-up (registries, scheduler) runs outside its retry
        wait_until(lambda: "Listening on" in worker.log_tail(), 60, "the worker's start", interval_s=0.005)
        redis_server.stop()
        time.sleep(4)
        assert worker.alive(), worker.log_tail()
        redis_server.start()
        job = Queue("rlthf", connection=redis_lib.Redis.from_url(redis_server.url)).enqueue(len, [1, 2, 3])
        wait_until(lambda: job.get_status(refresh=True) == "finished", 90, "a job run by the same worker")
        assert job.return_value() == 3 and worker.alive()
    finally:
        worker.stop()
        redis_server.stop()
    assert worker.proc.returncode == 0, worker.log_tail()  # SIGTERM: a clean stop, not a crash
