"""The active loop with real parts: Label Studio, the backend under gunicorn, Redis, RQ workers.

Annotations are made through the SDK as a person would, with the pairs' real human labels.
"""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from label_studio_sdk import LabelStudio

from rlthf_backend.registry.versions import ModelRegistry
from tests.support.backend import BackendServer, rlthf_backend_exe, start_backend
from tests.support.data import judged_pairs, task_data
from tests.support.processes import ManagedProcess, wait_until
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

CONFIGS = Path(__file__).resolve().parents[2] / "label_config"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def loop_env(tmp_path_factory, label_studio, redis_server) -> dict[str, str]:
    data = tmp_path_factory.mktemp("loop-data")
    return {
        "RLTHF_JUDGE": "precomputed",
        "RLTHF_DATA_DIR": str(data),
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "REDIS_URL": redis_server.url,
        "RLTHF_ROUND_EVERY_N_LABELS": "0",
        "RLTHF_DEBOUNCE_SECONDS": "1.5",
    }


def start_worker(env: dict[str, str], workdir: Path, name: str = "worker") -> ManagedProcess:
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("RLTHF_")}, **env}
    workdir.mkdir(parents=True, exist_ok=True)
    return ManagedProcess([rlthf_backend_exe(), "worker"], env=full, log_path=workdir / f"{name}.log", cwd=workdir)


@pytest.fixture(scope="module")
def backend(tmp_path_factory, loop_env) -> BackendServer:
    server = start_backend(tmp_path_factory.mktemp("loop-backend"), loop_env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(tmp_path_factory, loop_env):
    proc = start_worker(loop_env, tmp_path_factory.mktemp("loop-worker"))
    yield proc
    proc.stop()


def make_project(ls: LabelStudio, rows, config: str, title: str) -> int:
    project = ls.projects.create(title=title, label_config=(CONFIGS / config).read_text())
    ls.projects.import_tasks(id=project.id, request=[task_data(r) for r in rows])
    return project.id


def human_result(config: str, label: str) -> list[dict]:
    if config == "pairwise.xml":
        return [{"from_name": "comparison", "to_name": "comparison", "type": "pairwise",
                 "value": {"selected": {"a": "left", "b": "right"}[label]}}]
    return [{"from_name": "preference", "to_name": "prompt", "type": "choices",
             "value": {"choices": [{"a": "A", "b": "B"}[label]]}}]


def finished_jobs(backend: BackendServer, project_id: int) -> dict:
    return backend.get(f"/jobs?project={project_id}").json()


def wait_for_training(backend: BackendServer, project_id: int, after: float, timeout_s: float = 240,
                      **expect) -> dict:
    """The newest finished training of the project that started after ``after`` and matches ``expect``."""
    found: dict = {}

    def check() -> bool:
        st = finished_jobs(backend, project_id)
        if st.get("last_failed") and st["last_failed"]["at"] > after:
            raise AssertionError(f"training failed: {st['last_failed']}")
        done = st.get("last_finished")
        if not done or done["started_at"] < after or st.get("running") or st.get("queued"):
            return False
        if any(done.get(k) != v for k, v in expect.items()):
            return False
        found.update(done)
        return True

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return found
        time.sleep(0.5)
    raise TimeoutError(
        f"no finished training matching {expect} for project {project_id}: {finished_jobs(backend, project_id)}"
    )


def next_task_id(label_studio, project_id: int) -> int:
    r = httpx.get(f"{label_studio.url}/api/projects/{project_id}/next",
                  headers={"Authorization": f"Token {label_studio.token}"}, timeout=60)
    r.raise_for_status()
    return r.json()["id"]


def test_end_to_end_rounds_reorder_label_studio_queue(ls, label_studio, backend, worker, loop_env, tmp_path):
    config = "pairwise.xml"
    rows = judged_pairs(64)
    label_of = {r["id"]: r["human_label"] for r in rows}
    project_id = make_project(ls, rows, config, "active loop")
    ml = ls.ml.create(project=project_id, url=backend.url, title="rlthf")

    env = {**os.environ, **loop_env}
    pre = subprocess.run([rlthf_backend_exe(), "prelabel", "--project", str(project_id)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert pre.returncode == 0, pre.stderr

    # The Train button: Label Studio sends START_TRAINING to /webhook; a first round runs.
    t0 = time.time()
    ls.ml.train(id=ml.id)
    first = wait_for_training(backend, project_id, after=t0, round_run=True)
    version, batch = first["version"], first["human_batch"]
    assert first["round_index"] == 0 and batch
    assert first["pool_size"] == 64 and first["human_labels"] == 0

    project = ls.projects.get(id=project_id)
    assert project.model_version == version
    assert project.sampling == "Uncertainty sampling"
    tasks = [t.model_dump() for t in ls.tasks.list(project=project_id, fields="all")]
    for task in tasks:
        current = [p for p in task["predictions"] if p["model_version"] == version]
        assert len(current) == 1, task["id"]
        assert 0.0 < current[0]["score"] <= 1.0
    batch_scores = {t["id"]: next(p["score"] for p in t["predictions"] if p["model_version"] == version)
                    for t in tasks if t["id"] in batch}
    assert sorted(batch, key=batch_scores.get) == batch and max(batch_scores.values()) < 0.5
    assert ModelRegistry(Path(loop_env["RLTHF_DATA_DIR"]) / "models").latest(project_id).version == version
    assert version in backend.get("/versions", params={"project": project_id}).json()["versions"]

    # Label Studio's own label stream serves the engine's first choice.
    assert next_task_id(label_studio, project_id) == batch[0]

    # A person answers the whole batch (their real labels): the batch is done, a new round runs.
    t1 = time.time()
    by_task = {t["id"]: t["data"]["pair_id"] for t in tasks}
    for task_id in batch:
        ls.annotations.create(id=task_id, result=human_result(config, label_of[by_task[task_id]]))
    second = wait_for_training(backend, project_id, after=t1, round_run=True, human_labels=len(batch))
    assert second["round_index"] == 1 and second["round_reason"] == "human batch done"
    assert second["version"] != version
    assert not set(second["human_batch"]) & set(batch)
    # An incremental round: it read what changed (here, where the whole project was written seconds ago,
    # that is everything) and updated predictions in place, under the queue version the first round
    # created, rather than writing a new prediction for every task.
    assert second["sync"]["mode"] == "incremental"
    assert second["model_version_in_label_studio"] == version == ls.projects.get(id=project_id).model_version
    assert 0 < second["predictions_written"] < 64 - len(batch)
    unlabelled = [t.model_dump() for t in ls.tasks.list(project=project_id, fields="all") if not t.annotations]
    scores = {}
    for task in unlabelled:
        current = [p for p in task["predictions"] if p["model_version"] == version]
        assert len(current) == 1, task["id"]
        scores[task["id"]] = current[0]["score"]
    new_batch = second["human_batch"]
    assert sorted(new_batch, key=scores.get) == new_batch and max(scores[t] for t in new_batch) < 0.5
    assert all(score >= 0.5 for t, score in scores.items() if t not in new_batch)
    assert next_task_id(label_studio, project_id) == second["human_batch"][0]

    # The round log records the people-vs-LLM disagreement of the answered batch.
    summary = second["round_summary"]
    assert summary["last_batch_answered"] == len(batch)
    assert 0.0 <= summary["last_batch_disagreement"] <= 1.0


def test_skips_and_other_events_do_not_train(backend):
    r = backend.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 999},
                                       "annotation": {"id": 1, "was_cancelled": True}})
    assert r.json()["status"] == "ignored"
    r = backend.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 999}})
    assert r.json()["status"] == "ignored"
    assert finished_jobs(backend, 999)["queued"] is None


def test_annotation_storm_collapses_into_few_trainings(ls, backend, worker, loop_env):
    config = "choices.xml"
    rows = judged_pairs(220)
    label_of = {r["id"]: r["human_label"] for r in rows}
    project_id = make_project(ls, rows, config, "storm")
    ls.ml.create(project=project_id, url=backend.url, title="rlthf")
    tasks = [t.model_dump() for t in ls.tasks.list(project=project_id, page_size=500)][:200]

    hooks_before = backend.metric("rlthf_webhooks_total", action="ANNOTATION_CREATED")
    ok_before = backend.metric("rlthf_http_requests_total", endpoint="/webhook", method="POST", status="200")
    jobs_before = backend.metric("rlthf_jobs_finished_total")
    t0 = time.time()

    def annotate(task) -> None:
        ls.annotations.create(id=task["id"], result=human_result(config, label_of[task["data"]["pair_id"]]))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(annotate, tasks))

    final = wait_for_training(backend, project_id, after=t0, human_labels=200, timeout_s=300)
    assert final["pool_size"] == 220
    # Every webhook arrived and was answered.
    wait_until(lambda: backend.metric("rlthf_webhooks_total", action="ANNOTATION_CREATED") - hooks_before >= 200,
               30, "200 ANNOTATION_CREATED webhooks")
    answered = backend.metric("rlthf_http_requests_total", endpoint="/webhook", method="POST", status="200")
    assert answered - ok_before >= 200
    time.sleep(3)  # nothing else may still be coming
    runs = backend.metric("rlthf_jobs_finished_total") - jobs_before
    assert 1 <= runs <= 3, runs
    assert finished_jobs(backend, project_id)["last_finished"]["human_labels"] == 200


def test_event_for_a_missing_project_fails_once_without_retries(backend, worker):
    r = backend.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 424242}})
    assert r.json()["status"] == "queued"
    wait_until(lambda: bool(finished_jobs(backend, 424242)["last_failed"]), 60, "the failure")
    failed = finished_jobs(backend, 424242)["last_failed"]
    assert "Label Studio has no project 424242" in failed["reason"] and failed["retries_left"] == 0
    first_at = failed["at"]
    time.sleep(12)  # past the first retry interval (10 s): nothing runs again
    assert finished_jobs(backend, 424242)["last_failed"]["at"] == first_at
