"""Several RQ worker processes against one Redis and one shared model registry."""

from __future__ import annotations

import time

import pytest

from rlthf_backend.registry.versions import ModelRegistry
from tests.integration.test_active_loop import make_project, start_worker, wait_for_training
from tests.support.backend import start_backend
from tests.support.data import judged_pairs
from tests.support.processes import wait_until
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


def _intervals(registry: ModelRegistry, project_id: int) -> list[tuple[float, float]]:
    return [(v.meta["trained_from"], v.meta["trained_until"]) for v in registry.versions(project_id)]


def test_projects_train_in_parallel_and_one_project_never_overlaps(ls, label_studio, tmp_path):
    redis_server = RedisServer(tmp_path)
    env = {
        "RLTHF_JUDGE": "precomputed", "RLTHF_DATA_DIR": str(tmp_path / "data"),
        "RLTHF_MODEL_DIR": str(tmp_path / "shared-models"), "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token, "REDIS_URL": redis_server.url, "RLTHF_DEBOUNCE_SECONDS": "0",
    }
    backend = start_backend(tmp_path / "backend", env)
    workers = [start_worker(env, tmp_path / f"w{i}", name=f"worker{i}") for i in range(3)]
    registry = ModelRegistry(tmp_path / "shared-models")
    try:
        rows = judged_pairs(80)
        a = make_project(ls, rows[:40], "choices.xml", "scale a")
        b = make_project(ls, rows[40:], "choices.xml", "scale b")
        t0 = time.time()
        for pid in (a, b):
            backend.post("/webhook", json={"action": "START_TRAINING", "project": {"id": pid}})
        # While project a trains, a second Train click queues a second job for it; a free worker
        # picks it up at once and must wait for the project's lock.
        wait_until(lambda: bool(backend.get(f"/jobs?project={a}").json()["running"]), 60, "project a running")
        backend.post("/webhook", json={"action": "START_TRAINING", "project": {"id": a}})
        wait_for_training(backend, b, after=t0)
        wait_until(lambda: len(registry.versions(a)) == 2 and not backend.get(f"/jobs?project={a}").json()["running"]
                   and not backend.get(f"/jobs?project={a}").json()["queued"], 300, "two trainings of project a")

        (a1, a2), (b1,) = sorted(_intervals(registry, a)), _intervals(registry, b)
        assert a1[1] <= a2[0], f"trainings of one project overlapped: {a1} {a2}"
        assert b1[0] < a1[1] and a1[0] < b1[1], f"projects did not train in parallel: a {a1}, b {b1}"
        # One registry, written by whichever worker ran the job, read by the backend.
        versions = backend.get("/versions", params={"project": a}).json()["versions"]
        assert [v.version for v in registry.versions(a)] == versions[1:]
        # The label stream is ordered by the queue version the project's first round wrote (later rounds
        # update its predictions in place).
        assert ls.projects.get(id=a).model_version == registry.versions(a)[0].version
    finally:
        for w in workers:
            w.stop()
        backend.stop()
        redis_server.stop()
