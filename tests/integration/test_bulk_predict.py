"""Large "Retrieve Predictions" and pre-labelling: answers on time, opened tasks first, progress,
nothing paid for twice.

The judge is the openai judge against the fake OpenAI server (tests/fakes/openai_server.py), a
real local HTTP server with configurable latency that prefers the longer response; the first part
runs the judge in this process, the second a real backend (``rlthf-backend serve``, embedded job
queue) and a real Label Studio 1.23.2.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from label_studio_sdk import LabelStudio

from rlthf_backend.app.judges import make_judge
from rlthf_backend.app.settings import Settings
from rlthf_backend.core.judges.base import JudgeCall, judge_call
from rlthf_backend.core.types import Pair
from rlthf_backend.server.app import create_app
from tests.fakes.openai_server import Behaviour, FakeOpenAIServer
from tests.support.backend import BackendServer, rlthf_backend_exe, start_backend
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

CONFIGS = Path(__file__).resolve().parents[2] / "label_config"
PAIRWISE = (CONFIGS / "pairwise.xml").read_text()


def _data(i: int) -> dict:
    """A pair whose longer answer (the fake judge's choice) is answer1 for even i, answer2 for odd i."""
    short, long = f"short {i}", f"a much longer and more careful answer number {i}"
    a, b = (long, short) if i % 2 == 0 else (short, long)
    return {"prompt": f"question {i}", "answer1": a, "answer2": b, "llm_label": "a"}


def _expected_side(i: int) -> str:
    return "left" if i % 2 == 0 else "right"


def _settings(server: FakeOpenAIServer, tmp_path: Path, **extra) -> Settings:
    return Settings(judge="openai", openai_base_url=server.base_url, openai_model="fake-judge", data_dir=tmp_path,
                    judge_concurrency=4, _env_file=None, **extra)


def _prompt_key(body: dict) -> str:
    return body["messages"][0]["content"]


# --- the judge and /predict in this process ---------------------------------------------------


def test_predict_answers_within_the_budget_and_defers_the_rest(tmp_path, caplog):
    n = 40
    with FakeOpenAIServer(Behaviour(latency_ms=250)) as server:
        settings = _settings(server, tmp_path, predict_budget_s=1.0)
        client = create_app(settings).test_client()
        tasks = [{"id": i + 1, "data": _data(i)} for i in range(n)]
        t0 = time.perf_counter()
        r = client.post("/predict", json={"tasks": tasks, "label_config": PAIRWISE, "project": "5.1700000000"})
        took = time.perf_counter() - t0
        assert r.status_code == 200
        results = r.json["results"]
        assert len(results) == n
        ready = [i for i, res in enumerate(results) if "result" in res]
        later = [i for i, res in enumerate(results) if "result" not in res]
        print(f"\n/predict of {n} tasks (80 prompts, 4 in flight, 250 ms each): {took:.2f} s, "
              f"{len(ready)} ready, {len(later)} not yet")
        assert took < 1.0 + 1.5, took  # the budget plus slack (a request in flight does not hold the answer)
        assert ready and later
        for i in ready:
            assert results[i]["result"][0]["value"]["selected"] == _expected_side(i)
        assert all("not judged yet" in results[i]["error"] for i in later)
        # No Label Studio credentials: answered what was ready, and said once why the rest waits.
        assert any("not judged in the background" in rec.message and "LABEL_STUDIO_API_KEY" in rec.message
                   for rec in caplog.records)
        # What was asked in time is stored: asking again costs only the pairs never asked.
        time.sleep(0.5)  # the requests in flight at the deadline land in the store
        asked_before = server.stats.requests
        settings2 = _settings(server, tmp_path, predict_budget_s=30.0)
        again = create_app(settings2).test_client().post(
            "/predict", json={"tasks": tasks, "label_config": PAIRWISE, "project": "5.1700000000"})
        assert all("result" in res for res in again.json["results"])
        assert server.stats.requests == 2 * n, (asked_before, server.stats.requests)
        assert len({_prompt_key(b) for b in server.stats.bodies}) == 2 * n  # no prompt asked twice


def test_an_opened_task_is_judged_ahead_of_a_bulk_request(tmp_path):
    with FakeOpenAIServer(Behaviour(latency_ms=200)) as server:
        settings = _settings(server, tmp_path, predict_budget_s=20.0)
        client = create_app(settings).test_client()
        bulk = [{"id": i + 1, "data": _data(i)} for i in range(60)]  # 120 prompts at 4 in flight: ~6 s
        threading.Thread(target=client.post, args=("/predict",),
                         kwargs={"json": {"tasks": bulk, "label_config": PAIRWISE}}, daemon=True).start()
        time.sleep(0.6)
        opened = {"id": 1000, "data": _data(1000)}
        t0 = time.perf_counter()
        answer = client.post("/predict", json={"tasks": [opened], "label_config": PAIRWISE})
        took = time.perf_counter() - t0
        print(f"\nopened task answered in {took:.2f} s while a 60-task /predict was judging")
        assert answer.json["results"][0]["result"][0]["value"]["selected"] == _expected_side(1000)
        assert took < 2.0, took  # two prompts behind at most one request in flight each, not 116 queued


def test_a_stopped_run_resumes_without_asking_again(tmp_path):
    n = 30
    pairs = [Pair(f"q{i}", _data(i)["answer1"], _data(i)["answer2"]) for i in range(n)]
    with FakeOpenAIServer(Behaviour(latency_ms=100)) as server:
        judge = make_judge(_settings(server, tmp_path))
        with judge_call(JudgeCall(deadline=time.monotonic() + 0.35)):
            first = judge.judge_many(pairs)
        got = [j for j in first if j.ok]
        assert 0 < len(got) < n
        assert all(j.extra.get("not_asked") for j in first if not j.ok)
        second = make_judge(_settings(server, tmp_path)).judge_many(pairs)
        assert all(j.ok for j in second)
        assert sum(bool(j.extra.get("cached")) for j in second) >= len(got)
        assert server.stats.requests == 2 * n
        assert len({_prompt_key(b) for b in server.stats.bodies}) == 2 * n
        assert [j.label for j in second] == ["a" if i % 2 == 0 else "b" for i in range(n)]


# --- against a real Label Studio -----------------------------------------------------------


def _project(ls: LabelStudio, title: str, indices, config: str = "pairwise.xml") -> int:
    project = ls.projects.create(title=title, label_config=(CONFIGS / config).read_text())
    ls.projects.import_tasks(id=project.id, request=[{**_data(i), "pair_id": i} for i in indices])
    return project.id


def _tasks(ls: LabelStudio, project_id: int) -> list[dict]:
    return [t.model_dump(mode="json") for t in ls.tasks.list(project=project_id, fields="all")]


@pytest.fixture(scope="module")
def judge_server():
    with FakeOpenAIServer(Behaviour(latency_ms=250)) as server:
        yield server


@pytest.fixture(scope="module")
def backend(tmp_path_factory, label_studio, judge_server) -> BackendServer:
    server = start_backend(tmp_path_factory.mktemp("bulk-backend"), {
        "RLTHF_JUDGE": "openai", "RLTHF_OPENAI_BASE_URL": judge_server.base_url, "RLTHF_OPENAI_MODEL": "fake-judge",
        "RLTHF_JUDGE_CONCURRENCY": "4", "RLTHF_PREDICT_BUDGET_S": "2",
        "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token,
    }, workers=1)
    yield server
    server.stop()


def _wait_all_predicted(ls: LabelStudio, project_id: int, n: int, timeout_s: float) -> list[dict]:
    tasks: list[dict] = []

    def done() -> bool:
        nonlocal tasks
        tasks = _tasks(ls, project_id)
        return len(tasks) == n and all(t["predictions"] for t in tasks)

    wait_until(done, timeout_s, "every task to hold a prediction", interval_s=1.0)
    return tasks


def test_one_retrieve_predictions_click_predicts_every_task(ls, backend, judge_server):
    n = 40  # 80 prompts at 4 in flight, 250 ms each: ~5 s of judging against a 2 s budget
    project_id = _project(ls, "bulk retrieve", range(n))
    ls.ml.create(project=project_id, url=backend.url, title="rlthf")
    judge_server.reset_stats()
    t0 = time.perf_counter()
    ls.actions.create(id="retrieve_tasks_predictions", project=project_id, selected_items={"all": True, "excluded": []})
    click = time.perf_counter() - t0
    stored_at_answer = sum(bool(t["predictions"]) for t in _tasks(ls, project_id))
    tasks = _wait_all_predicted(ls, project_id, n, 90)
    everything = time.perf_counter() - t0
    print(f"\nRetrieve Predictions on {n} tasks: answered in {click:.1f} s with {stored_at_answer} stored; "
          f"all {n} predicted after {everything:.1f} s; {judge_server.stats.requests} judge requests")
    assert click < 2 + 10, click  # the 2 s budget, plus Label Studio storing the answer
    assert stored_at_answer < n  # the budget really cut the request short
    model_version = backend.get("/versions").json()["versions"][0]
    for task in tasks:
        [pred] = task["predictions"]  # one each: the background job wrote only the "not yet" tasks
        assert pred["model_version"] == model_version
        assert pred["result"][0]["value"]["selected"] == _expected_side(task["data"]["pair_id"])
    assert judge_server.stats.requests == 2 * n  # every pair judged once, in the request or the job
    status = backend.get(f"/jobs?project={project_id}").json()["prelabel"]
    assert status["state"] == "finished" and status["done"] == status["total"] == n - stored_at_answer
    assert status["written"] == status["total"] and status["requests"] > 0


def test_opened_task_answers_fast_during_a_bulk_job_and_progress_shows(ls, backend, judge_server):
    n = 100  # 200 prompts at 4 in flight, 250 ms each: ~12 s of background judging
    project_id = _project(ls, "bulk progress", range(1000, 1000 + n))  # pairs no other test judged
    ls.ml.create(project=project_id, url=backend.url, title="rlthf")
    tasks = _tasks(ls, project_id)
    body = {"tasks": tasks, "label_config": PAIRWISE, "project": f"{project_id}.1700000000"}
    first = backend.post("/predict", json=body).json()["results"]
    deferred = [t for t, res in zip(tasks, first) if "result" not in res]
    assert len(deferred) > n // 2

    # At once, an annotator opens the last task the job would reach.
    opened = deferred[-1]
    t0 = time.perf_counter()
    answer = backend.post("/predict", json={"tasks": [opened], "label_config": PAIRWISE,
                                            "project": f"{project_id}.1700000000"}).json()["results"][0]
    took = time.perf_counter() - t0
    print(f"opened task answered in {took:.2f} s during the bulk job")
    assert took < 5.0, took
    assert answer["result"][0]["value"]["selected"] == _expected_side(opened["data"]["pair_id"])
    seen_running = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        state = backend.get(f"/jobs?project={project_id}").json()["prelabel"]
        if state and state["state"] == "running" and 0 < state["done"] < state["total"]:
            seen_running = state
            break
        time.sleep(0.3)
    assert seen_running is not None, "no running progress seen in /jobs"
    print(f"\n/jobs while running: {seen_running}")
    assert seen_running["total"] == len(deferred) and seen_running["requests"] > 0
    assert seen_running["rate_per_s"] and seen_running["eta_s"] is not None
    health = backend.get("/health").json()["jobs"]
    assert str(project_id) in health.get("prelabeling", {})

    # This test posted /predict itself (Label Studio stores nothing from it): the job writes the deferred tasks.
    wanted = {t["id"] for t in deferred}
    wait_until(lambda: all(t["predictions"] for t in _tasks(ls, project_id) if t["id"] in wanted), 120,
               "every deferred task to hold a prediction", interval_s=1.0)


def test_interrupted_prelabel_resumes_without_asking_the_judge_again(ls, label_studio, tmp_path):
    n = 40
    project_id = _project(ls, "prelabel resume", range(n), config="choices.xml")
    with FakeOpenAIServer(Behaviour(latency_ms=150)) as server:
        env = {**os.environ, "RLTHF_JUDGE": "openai", "RLTHF_OPENAI_BASE_URL": server.base_url,
               "RLTHF_OPENAI_MODEL": "fake-judge", "RLTHF_JUDGE_CONCURRENCY": "4", "RLTHF_DATA_DIR": str(tmp_path),
               "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token}
        cmd = [rlthf_backend_exe(), "prelabel", "--project", str(project_id)]
        proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: server.stats.requests >= 24, 60, "the prelabel run to ask the judge")
        proc.send_signal(signal.SIGINT)  # Ctrl-C: stop starting requests, keep and write what was paid for
        out, err = proc.communicate(timeout=60)
        first_requests = server.stats.requests
        print(f"\ninterrupted after {first_requests} requests (exit {proc.returncode}):\n{out}")
        assert "interrupted" in out, err[-2000:]
        assert first_requests < 2 * n
        written_first = sum(bool(t["predictions"]) for t in _tasks(ls, project_id))
        assert written_first > 0

        again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
        print(again.stdout)
        assert server.stats.requests == 2 * n, "a pair was asked twice"
        assert len({_prompt_key(b) for b in server.stats.bodies}) == 2 * n
        assert f"already predicted {written_first}" in again.stdout
        assert "judge requests" in again.stdout and "tasks/s" in again.stdout
        tasks = _tasks(ls, project_id)
        assert all(len(t["predictions"]) == 1 for t in tasks)
        for t in tasks:
            want = "A" if t["data"]["pair_id"] % 2 == 0 else "B"
            assert t["predictions"][0]["result"][0]["value"]["choices"] == [want]
