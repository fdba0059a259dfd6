"""The HTTP layer through Flask's test client, with the real precomputed judge (no servers)."""

import base64
import json
from pathlib import Path

import pytest

from rlthf_backend.server.app import create_app
from rlthf_backend.app.settings import Settings

CONFIGS = Path(__file__).resolve().parents[2] / "label_config"
PAIRWISE = (CONFIGS / "pairwise.xml").read_text()
CHOICES = (CONFIGS / "choices.xml").read_text()


def _task(i, **data):
    base = {"prompt": f"question {i}", "answer1": "first", "answer2": "second", "llm_label": "b"}
    base.update(data)
    return {"id": i, "data": base}


@pytest.fixture
def settings(tmp_path):
    return Settings(judge="precomputed", data_dir=tmp_path, _env_file=None)


@pytest.fixture
def client(settings):
    return create_app(settings).test_client()


def test_health(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json["status"] == "UP"
    assert r.json["judge"] == "precomputed"


def test_setup_answers_model_version_naming_the_judge(client):
    r = client.post("/setup", json={"project": "3.1700000000", "schema": PAIRWISE, "extra_params": "{\"a\": 1}"})
    assert r.status_code == 200
    assert "judge-precomputed" in r.json["model_version"]


def test_setup_refuses_non_pairwise_config_naming_what_is_missing(client):
    xml = "<View><Text name='t' value='$text'/><Choices name='s' toName='t'><Choice value='Pos'/></Choices></View>"
    r = client.post("/setup", json={"project": "3.1", "schema": xml})
    assert r.status_code == 400
    assert "no preference control" in r.json["error"]


def test_setup_refuses_bad_extra_params(client):
    r = client.post("/setup", json={"project": "3.1", "schema": PAIRWISE, "extra_params": "{not json"})
    assert r.status_code == 400 and "extra_params" in r.json["error"]


def test_predict_pairwise_shape_score_and_version(client):
    tasks = [_task(1, llm_label="b", llm_label_swapped="b"), _task(2, llm_label="a", llm_label_swapped="b")]
    r = client.post("/predict", json={"tasks": tasks, "label_config": PAIRWISE, "project": "1.1"})
    assert r.status_code == 200
    results = r.json["results"]
    assert len(results) == 2
    assert results[0]["result"][0]["value"] == {"selected": "right"}
    assert results[0]["result"][0]["type"] == "pairwise"
    assert results[0]["model_version"] == r.json["model_version"]
    assert 0.5 < results[0]["score"] <= 1.0
    # The two orders disagree: no preference, shown with probability 0.5.
    assert results[1]["score"] == 0.5


def test_predict_choices_shape(client):
    r = client.post("/predict", json={"tasks": [_task(7, llm_label="a")], "label_config": CHOICES})
    item = r.json["results"][0]["result"][0]
    assert item == {"from_name": "preference", "to_name": "prompt", "type": "choices", "value": {"choices": ["A"]}}


def test_predict_bad_tasks_fail_alone_and_in_place(client):
    tasks = [
        _task(1),
        {"id": 2, "data": {"prompt": "p", "answer1": "x"}},  # missing answer2
        _task(3, answer1={"not": "text"}),
        _task(4, llm_label="maybe"),
        _task(5, llm_label="a"),
    ]
    r = client.post("/predict", json={"tasks": tasks, "label_config": PAIRWISE})
    assert r.status_code == 200
    results = r.json["results"]
    assert len(results) == 5
    assert "result" in results[0] and "result" in results[4]
    assert "answer2" in results[1]["error"] and "result" not in results[1]
    assert "answer1" in results[2]["error"] and "dict" in results[2]["error"]
    assert "llm_label" in results[3]["error"]


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{nope", "not valid JSON"),
        (b"", "empty request body"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"tasks": "x", "label_config": PAIRWISE}).encode(), "'tasks' must be a list"),
        (json.dumps({"tasks": [1], "label_config": PAIRWISE}).encode(), "JSON object"),
        (json.dumps({"tasks": []}).encode(), "unsupported label config"),
    ],
)
def test_predict_malformed_bodies_are_400_with_a_reason(client, body, message):
    r = client.post("/predict", data=body, content_type="application/json")
    assert r.status_code == 400
    assert message in r.json["error"]


def test_webhook_acknowledges_and_counts(client):
    before = _sample(client, 'rlthf_webhooks_total{action="ANNOTATION_CREATED"}')
    r = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 4}, "annotation": {}})
    assert r.status_code == 200 and r.json["action"] == "ANNOTATION_CREATED"
    assert _sample(client, 'rlthf_webhooks_total{action="ANNOTATION_CREATED"}') == before + 1
    assert client.post("/webhook", json={"project": 1}).status_code == 400


def test_versions_lists_the_judge_version(client):
    setup = client.post("/setup", json={"project": "1.1700000000", "schema": PAIRWISE}).json
    assert client.get("/versions").json == {"versions": [setup["model_version"]]}


def test_unknown_route_is_json_404(client):
    r = client.get("/nope")
    assert r.status_code == 404 and "error" in r.json


def test_basic_auth_guards_every_endpoint(tmp_path):
    settings = Settings(
        judge="precomputed", data_dir=tmp_path, basic_auth_user="ls", basic_auth_pass="s3cret", _env_file=None
    )
    client = create_app(settings).test_client()
    for method, path in [("get", "/health"), ("post", "/setup"), ("post", "/predict"), ("post", "/webhook"),
                         ("get", "/versions"), ("get", "/metrics")]:
        r = getattr(client, method)(path)
        assert r.status_code == 401, path
        assert r.headers["WWW-Authenticate"].startswith("Basic")
    good = {"Authorization": "Basic " + base64.b64encode(b"ls:s3cret").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"ls:wrong").decode()}
    assert client.get("/health", headers=good).status_code == 200
    assert client.get("/health", headers=bad).status_code == 401


def _sample(client, key: str) -> float:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_embedded_mode_runs_jobs_in_process_through_the_same_queue(tmp_path):
    """No REDIS_URL: the webhook queues on an in-memory Redis and a worker thread runs the job."""
    import time

    # The picked-up job waits for a quiet second before it claims the pending slot, so an event
    # that follows at once must join it: same job id, coalesced.
    settings = Settings(judge="precomputed", data_dir=tmp_path, debounce_seconds=1, job_retries=0,
                        queue_name=f"embedded-test-{tmp_path.name}", _env_file=None)
    client = create_app(settings).test_client()
    assert client.get("/health").json["jobs"]["mode"] == "embedded"
    r = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 5}})
    assert r.status_code == 200 and r.json["status"] == "queued" and r.json["coalesced"] is False
    again = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 5},
                                          "annotation": {"id": 1}})
    assert again.json["coalesced"] is True
    assert again.json["job_id"] == r.json["job_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        failed = client.get("/jobs?project=5").json["last_failed"]
        if failed:
            break
        time.sleep(0.1)
    # No Label Studio token is configured: the job ran, failed, and says why.
    assert failed and "LABEL_STUDIO_API_KEY is not set" in failed["reason"]
