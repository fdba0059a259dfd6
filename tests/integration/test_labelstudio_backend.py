"""The backend as Label Studio 1.23.2 uses it: real Label Studio, real backend processes, the SDK.

Judging uses the ``precomputed`` judge (real GPT-4 / gpt-3.5 verdicts stored in the task data);
the ``openai`` and ``transformers`` judges have their own integration tests.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from label_studio_sdk import LabelStudio

from tests.support.backend import BackendServer, rlthf_backend_exe, start_backend
from tests.support.data import judged_pairs, task_data
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

CONFIGS = Path(__file__).resolve().parents[2] / "label_config"
N_TASKS = 12


@pytest.fixture(scope="module")
def rows():
    return judged_pairs(N_TASKS)


@pytest.fixture(scope="module")
def backend(tmp_path_factory, label_studio) -> BackendServer:
    server = start_backend(
        tmp_path_factory.mktemp("backend"),
        {
            "RLTHF_JUDGE": "precomputed",
            "LABEL_STUDIO_URL": label_studio.url,
            "LABEL_STUDIO_API_KEY": label_studio.token,
        },
    )
    yield server
    server.stop()


def _project(ls: LabelStudio, config_file: str, rows, title: str) -> int:
    project = ls.projects.create(title=title, label_config=(CONFIGS / config_file).read_text())
    ls.projects.import_tasks(id=project.id, request=[task_data(r) for r in rows])
    return project.id


def _tasks(ls: LabelStudio, project_id: int) -> list[dict]:
    return [t.model_dump() for t in ls.tasks.list(project=project_id, fields="all")]


def _expected(row) -> tuple[str, bool]:
    """What the precomputed judge must show: the stored verdict, and whether the swapped order agrees."""
    v = row["llm_labels"][row["test_judge"]]
    return v["ab"], v.get("ba") in (None, v["ab"])


def test_connect_and_retrieve_predictions_pairwise(ls, backend, rows):
    project_id = _project(ls, "pairwise.xml", rows, "pairwise retrieve")
    ml = ls.ml.create(project=project_id, url=backend.url, title="rlthf")
    assert ml.id

    # The "Retrieve Predictions" action of the Data Manager: one synchronous /predict call.
    ls.actions.create(id="retrieve_tasks_predictions", project=project_id, selected_items={"all": True, "excluded": []})

    tasks = _tasks(ls, project_id)
    assert len(tasks) == N_TASKS
    model_version = backend.get("/versions").json()["versions"][0]
    by_pair = {r["id"]: r for r in rows}
    for task in tasks:
        preds = task["predictions"]
        assert len(preds) == 1, task["id"]
        pred = preds[0]
        assert pred["model_version"] == model_version
        [item] = pred["result"]
        assert item["type"] == "pairwise" and item["from_name"] == "comparison"
        expected, orders_agree = _expected(by_pair[task["data"]["pair_id"]])
        assert item["value"]["selected"] == {"a": "left", "b": "right"}[expected]
        assert pred["score"] == pytest.approx(1.0 if orders_agree else 0.5)


def test_prelabel_command_writes_choices_predictions(ls, backend, label_studio, rows, tmp_path):
    project_id = _project(ls, "choices.xml", rows, "choices prelabel")
    env = {**os.environ, "RLTHF_JUDGE": "precomputed", "RLTHF_DATA_DIR": str(tmp_path),
           "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token}
    run = subprocess.run([rlthf_backend_exe(), "prelabel", "--project", str(project_id)],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"predictions written {N_TASKS}" in run.stdout

    tasks = _tasks(ls, project_id)
    by_pair = {r["id"]: r for r in rows}
    versions = set()
    for task in tasks:
        [pred] = task["predictions"]
        versions.add(pred["model_version"])
        [item] = pred["result"]
        assert item["type"] == "choices" and item["to_name"] == "prompt"
        expected, orders_agree = _expected(by_pair[task["data"]["pair_id"]])
        assert item["value"]["choices"] == [{"a": "A", "b": "B", "tie": "Tie"}[expected]]
        assert pred["score"] == pytest.approx(1.0 if orders_agree else 0.5)
    assert len(versions) == 1
    assert ls.projects.get(id=project_id).model_version == versions.pop()

    # A second run finds nothing left to do and writes nothing twice.
    again = subprocess.run([rlthf_backend_exe(), "prelabel", "--project", str(project_id)],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"already predicted {N_TASKS}" in again.stdout
    assert all(len(t["predictions"]) == 1 for t in _tasks(ls, project_id))


def test_bad_task_data_gets_no_prediction_and_the_rest_do(ls, backend, rows):
    project = ls.projects.create(title="bad data", label_config=(CONFIGS / "pairwise.xml").read_text())
    good = [task_data(r) for r in rows[:3]]
    bad = {**task_data(rows[3]), "llm_label": "maybe"}
    ls.projects.import_tasks(id=project.id, request=[*good, bad])
    ls.ml.create(project=project.id, url=backend.url, title="rlthf")
    ls.actions.create(id="retrieve_tasks_predictions", project=project.id, selected_items={"all": True, "excluded": []})
    preds = {t["data"]["pair_id"]: t["predictions"] for t in _tasks(ls, project.id)}
    assert all(preds[r["id"]] for r in rows[:3])
    assert preds[rows[3]["id"]] == []  # no empty prediction stored: it is asked again next time


def test_unsupported_config_is_refused_on_connect(ls, backend):
    project = ls.projects.create(
        title="not pairwise",
        label_config="<View><Text name='t' value='$text'/>"
        "<Choices name='s' toName='t'><Choice value='Pos'/></Choices></View>",
    )
    with pytest.raises(Exception) as info:
        ls.ml.create(project=project.id, url=backend.url, title="rlthf")
    # Label Studio shows only the status line of our answer; the reason is in the backend's log.
    assert "400 Client Error" in str(info.value)
    wait_until(lambda: "unsupported label config: no preference control" in backend.process.log_tail(200),
               5, "the refusal's reason in the backend log")


def test_annotation_webhook_arrives_and_is_answered(ls, backend, rows):
    project_id = _project(ls, "pairwise.xml", rows[:3], "webhook")
    ls.ml.create(project=project_id, url=backend.url, title="rlthf")
    before = backend.metric("rlthf_webhooks_total", action="ANNOTATION_CREATED")
    task = _tasks(ls, project_id)[0]
    ls.annotations.create(id=task["id"], result=[{"from_name": "comparison", "to_name": "comparison",
                                                  "type": "pairwise", "value": {"selected": "left"}}])
    wait_until(lambda: backend.metric("rlthf_webhooks_total", action="ANNOTATION_CREATED") > before,
               20, "the ANNOTATION_CREATED webhook")
    ok = backend.metric("rlthf_http_requests_total", endpoint="/webhook", method="POST", status="200")
    assert ok >= 1


def test_basic_auth_backend_fixes_its_webhook_and_receives_events(ls, label_studio, rows, tmp_path):
    server = start_backend(tmp_path, {
        "RLTHF_JUDGE": "precomputed", "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token, "BASIC_AUTH_USER": "ls", "BASIC_AUTH_PASS": "pa55word",
    })
    try:
        assert server.get("/health").status_code == 200
        assert server.post("/webhook", json={"action": "X"}, auth=None).status_code == 401
        project_id = _project(ls, "pairwise.xml", rows[:2], "basic auth")
        ls.ml.create(project=project_id, url=server.url, title="rlthf", auth_method="BASIC_AUTH",
                     basic_auth_user="ls", basic_auth_pass="pa55word")

        def header_set() -> bool:
            hooks = [h for h in ls.webhooks.list(project=str(project_id)) if h.url == server.url + "/webhook"]
            return bool(hooks) and all((h.headers or {}).get("Authorization", "").startswith("Basic ") for h in hooks)

        wait_until(header_set, 30, "the backend to put its auth header on Label Studio's webhook")
        task = _tasks(ls, project_id)[0]
        ls.annotations.create(id=task["id"], result=[{"from_name": "comparison", "to_name": "comparison",
                                                      "type": "pairwise", "value": {"selected": "right"}}])
        wait_until(lambda: server.metric("rlthf_webhooks_total", action="ANNOTATION_CREATED") >= 1,
                   20, "the authenticated webhook")
    finally:
        server.stop()


def test_openai_judge_through_label_studio(ls, label_studio, rows, tmp_path):
    """A paid API cannot run here: a real local HTTP server speaks the chat-completions protocol."""
    from tests.fakes.openai_server import Behaviour, FakeOpenAIServer

    with FakeOpenAIServer(Behaviour(latency_ms=20, fail_first=[429, 500])) as fake:
        server = start_backend(tmp_path, {
            "RLTHF_JUDGE": "openai", "RLTHF_OPENAI_BASE_URL": fake.base_url, "RLTHF_OPENAI_API_KEY": "test",
            "RLTHF_OPENAI_MODEL": "judge-7b", "LABEL_STUDIO_URL": label_studio.url,
            "LABEL_STUDIO_API_KEY": label_studio.token,
        })
        try:
            project_id = _project(ls, "choices.xml", rows[:6], "openai judge")
            ls.ml.create(project=project_id, url=server.url, title="rlthf")
            ls.actions.create(id="retrieve_tasks_predictions", project=project_id,
                              selected_items={"all": True, "excluded": []})
            tasks = _tasks(ls, project_id)
            assert all(len(t["predictions"]) == 1 for t in tasks)
            for task in tasks:
                [pred] = task["predictions"]
                assert "judge-openai-judge-7b" in pred["model_version"]
                # The fake prefers the longer response; the judge asked both orders and used logprobs.
                d = task["data"]
                longer = "A" if len(d["answer1"]) > len(d["answer2"]) else "B"
                assert pred["result"][0]["value"]["choices"] == [longer]
                assert 0.5 < pred["score"] < 1.0
            assert fake.stats.requests == 2 * 6 + 2  # both orders per pair, plus the two failures retried

            # Judgments are cached: a second project with the same pairs costs no request.
            before = fake.stats.requests
            again = _project(ls, "choices.xml", rows[:6], "openai judge again")
            ls.ml.create(project=again, url=server.url, title="rlthf")
            ls.actions.create(id="retrieve_tasks_predictions", project=again,
                              selected_items={"all": True, "excluded": []})
            assert all(len(t["predictions"]) == 1 for t in _tasks(ls, again))
            assert fake.stats.requests == before
        finally:
            server.stop()
