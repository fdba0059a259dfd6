"""The HTTP layer's limits on what clients send (Flask's test client, real judges): metric labels from
fixed sets, one request-validation layer, strict project ids, basic auth, a corrupt judgment cache,
webhooks for missing projects, bounded /setup fix-ups, 500s without internals.

Each test sends what a hostile or careless client would; docs/troubleshooting.md's "Limits" section
states the rules they check.
"""

from __future__ import annotations

import base64
import hmac
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from rlthf_backend.app.jobs import jobs_config
from rlthf_backend.jobs import keys, status
from rlthf_backend.jobs.embedded import embedded_redis
from rlthf_backend.server.app import create_app
from rlthf_backend.app.settings import Settings
from tests.fakes.openai_server import Behaviour, FakeOpenAIServer

CONFIGS = Path(__file__).resolve().parents[2] / "label_config"
PAIRWISE = (CONFIGS / "pairwise.xml").read_text()


@pytest.fixture
def settings(tmp_path):
    return Settings(judge="precomputed", data_dir=tmp_path, _env_file=None,
                    queue_name=f"limits-{tmp_path.name}", debounce_seconds=30, debounce_max_seconds=30)


@pytest.fixture
def client(settings):
    return create_app(settings).test_client()


def _post_raw(client, path: str, body: bytes | str):
    return client.post(path, data=body, content_type="application/json")


def _metrics(client) -> str:
    r = client.get("/metrics")
    assert r.status_code == 200
    return r.get_data(as_text=True)


# --- client-chosen strings never become metric labels ----------------------------------------


def test_a_lone_surrogate_action_cannot_break_metrics(client):
    r = _post_raw(client, "/webhook", '{"action": "\\ud800", "project": 1}')
    assert r.status_code < 500
    assert 'action="other"' in _metrics(client)
    assert client.get("/metrics").status_code == 200  # and stays up


def test_a_huge_action_is_refused_not_kept(client):
    r = client.post("/webhook", json={"action": "X" * 1_000_000, "project": 1})
    assert r.status_code == 400 and "action" in r.json["error"]
    page = _metrics(client)
    assert "XXXX" not in page and len(page) < 100_000


def test_invented_methods_add_no_series(client):
    for i in range(20):
        r = client.open("/health", method=f"BREW{i}")
        assert r.status_code == 405 and "error" in r.json
    page = _metrics(client)
    assert "BREW" not in page
    assert 'method="other"' in page


# --- one request-validation layer --------------------------------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        ("[" * 100_000 + "]" * 100_000, "nested"),
        ('{"a":' * 200 + "1" + "}" * 200, "nested"),
        ('{"tasks": [], "label_config": "x", "n": ' + "9" * 5000 + "}", "number"),
        ('{"tasks": [], "label_config": "x", "n": NaN}', "number"),
        ('{"tasks": [], "label_config": "x", "n": 1e400}', "number"),
    ],
    ids=["deep-list", "deep-object", "huge-int", "nan", "1e400"],
)
@pytest.mark.parametrize("path", ["/predict", "/setup", "/webhook"])
def test_hostile_json_is_a_400_naming_the_problem(client, path, body, message):
    r = _post_raw(client, path, body)
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    assert message in r.json["error"]


@pytest.mark.parametrize("value", [5, ["<View/>"], {"x": 1}, True])
def test_a_label_config_that_is_not_text_is_a_400(client, value):
    assert client.post("/setup", json={"project": "1.1", "schema": value}).status_code == 400
    r = client.post("/predict", json={"tasks": [], "label_config": value})
    assert r.status_code == 400 and "label config" in r.json["error"]


def test_a_body_over_the_limit_is_refused_unread(tmp_path):
    settings = Settings(judge="precomputed", data_dir=tmp_path, max_request_mb=1, _env_file=None)
    client = create_app(settings).test_client()
    r = client.post("/predict", data=b"{" + b" " * (2 * 1024 * 1024) + b"}", content_type="application/json")
    assert r.status_code == 413 and "1 MB" in r.json["error"]
    assert client.get("/health").status_code == 200


# --- one project-id parser ------------------------------------------------------------------------

BAD_IDS = ["true", "3.9", '"1_000"', "-1", "0", '"\\u00b2"', "Infinity", "1e400", '"' + "4" * 4000 + '"',
           "4" * 4000, '"3 "', '" 3"', '"0x10"', "[3]", "99999999999999"]


@pytest.mark.parametrize("raw", BAD_IDS)
def test_webhook_project_ids_are_parsed_strictly(client, raw):
    r = _post_raw(client, "/webhook", '{"action": "START_TRAINING", "project": {"id": %s}}' % raw)
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    # Non-JSON numbers and 4,000-digit literals are refused by the JSON layer already.
    assert "project" in r.json["error"] or "number" in r.json["error"]


@pytest.mark.parametrize("raw", ["\u00b2", "1_000", "-1", "4" * 4000, "Infinity", "3.9"])
def test_query_project_ids_are_parsed_strictly(client, raw):
    for path in ("/jobs", "/versions", "/report"):
        r = client.get(path, query_string={"project": raw})
        assert r.status_code == 400, (path, r.get_data(as_text=True)[:300])
        assert "project" in r.json["error"]
        assert "File name too long" not in r.get_data(as_text=True)


@pytest.mark.parametrize("uid", ["\u00b2.1", "1_000.5", "-1.1", "4" * 4000 + ".1", "x.1"])
def test_setup_project_uids_are_parsed_strictly(client, uid):
    r = client.post("/setup", json={"project": uid, "schema": PAIRWISE})
    assert r.status_code == 400 and "project" in r.json["error"]


@pytest.mark.parametrize("body", [{"id": 7}, {"id": "7"}, 7])
def test_real_project_ids_still_pass(client, body):
    r = client.post("/webhook", json={"action": "START_TRAINING", "project": body})
    assert r.status_code == 200 and r.json["status"] == "queued"
    assert client.get("/jobs?project=7").json["project"] == 7
    assert client.post("/setup", json={"project": "7.1700000000", "schema": PAIRWISE}).status_code == 200
    assert client.get("/versions", query_string={"project": "7.1700000000"}).status_code == 200


# --- basic auth ----------------------------------------------------------------------------------


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_non_ascii_credentials_work_and_never_500(tmp_path):
    settings = Settings(judge="precomputed", data_dir=tmp_path, basic_auth_user="jürgen", basic_auth_pass="pässwörd",
                        _env_file=None)
    client = create_app(settings).test_client()
    assert client.get("/health", headers=_basic("jürgen", "pässwörd")).status_code == 200
    assert client.get("/health", headers=_basic("jürgen", "wrong")).status_code == 401
    assert client.get("/health", headers=_basic("ß", "ß")).status_code == 401
    latin1 = {"Authorization": "Basic " + base64.b64encode("ß:ß".encode("latin-1")).decode()}
    assert client.get("/health", headers=latin1).status_code == 401


def test_non_ascii_header_against_ascii_credentials_is_401(tmp_path):
    settings = Settings(judge="precomputed", data_dir=tmp_path, basic_auth_user="ls", basic_auth_pass="s3cret",
                        _env_file=None)
    client = create_app(settings).test_client()
    assert client.get("/health", headers=_basic("lß", "s3crét")).status_code == 401


def test_the_password_is_compared_even_when_the_user_is_wrong(tmp_path, monkeypatch):
    settings = Settings(judge="precomputed", data_dir=tmp_path, basic_auth_user="ls", basic_auth_pass="s3cret",
                        _env_file=None)
    client = create_app(settings).test_client()
    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert client.get("/health", headers=_basic("nobody", "guess")).status_code == 401
    assert len(compared) == 2  # user and password: the answer's timing does not tell a valid user


@pytest.mark.parametrize("only", [{"basic_auth_user": "ls"}, {"basic_auth_pass": "s3cret"}])
def test_half_set_basic_auth_is_refused(tmp_path, only):
    with pytest.raises(ValidationError, match="set both"):
        Settings(judge="precomputed", data_dir=tmp_path, _env_file=None, **only)


# --- a judgment cache that is corrupt is served around, and /health says so -----------------------


def test_a_corrupt_cache_leaves_every_endpoint_answering(tmp_path):
    (tmp_path / "state.sqlite3").write_bytes(b"garbage, not SQLite" * 64)
    with FakeOpenAIServer(Behaviour()) as server:
        settings = Settings(judge="openai", openai_base_url=server.base_url, data_dir=tmp_path, _env_file=None)
        client = create_app(settings).test_client()
        assert client.post("/setup", json={"project": "1.1700000000", "schema": PAIRWISE}).status_code == 200
        assert client.get("/versions").status_code == 200
        task = {"id": 1, "data": {"prompt": "q", "answer1": "a long answer", "answer2": "no"}}
        r = client.post("/predict", json={"tasks": [task], "label_config": PAIRWISE})
        assert r.status_code == 200 and "result" in r.json["results"][0]
        health = client.get("/health").json
    assert health["judge_cache"]["ok"] is False
    assert "not a database" in health["judge_cache"]["detail"]
    assert str(tmp_path) not in json.dumps(health)  # no server paths in answers


# --- webhooks for projects that do not exist -------------------------------------------------------


def test_webhooks_for_many_projects_cannot_queue_unbounded_trainings(tmp_path):
    settings = Settings(judge="precomputed", data_dir=tmp_path, _env_file=None, max_queued_trainings=5,
                        queue_name=f"flood-{tmp_path.name}", debounce_seconds=30, debounce_max_seconds=30)
    client = create_app(settings).test_client()
    answers = [client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1000 + i}})
               for i in range(40)]
    queued = [r for r in answers if r.status_code == 200 and r.json["status"] == "queued"]
    refused = [r for r in answers if r.status_code == 429]
    assert len(queued) <= 5 + 1  # the cap, plus the one the worker thread may have picked up meanwhile
    assert len(queued) + len(refused) == 40
    assert "queue" in refused[0].json["error"]
    # A refused project left nothing behind in Redis.
    redis = embedded_redis(jobs_config(settings))
    assert not list(redis.scan_iter(match=keys.project_keys_pattern(1039)))
    # A project already queued still coalesces (no refusal for it).
    again = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 1001}})
    assert again.status_code == 200


def test_a_project_label_studio_does_not_have_is_not_queued_again(settings, client):
    redis = embedded_redis(jobs_config(settings))
    status.record(redis, 4242, "last_failed", {
        "job_id": "j", "reason": "ProjectNotFound: Label Studio has no project 4242", "retries_left": 0,
        "project_missing": True})
    r = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 4242}})
    assert r.status_code == 200 and r.json["status"] == "ignored"
    assert "no project 4242" in r.json["reason"]
    assert not redis.exists(keys.last_event_key(4242)) and not redis.exists(keys.pending_key(4242))
    # ...and its record goes when it is no longer remembered, not after the usual 30 days.
    assert 0 < redis.ttl(keys.status_key(4242)) <= status.MISSING_PROJECT_MEMORY_S


def test_status_records_expire(settings, client):
    client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 31}})
    ttl = embedded_redis(jobs_config(settings)).ttl(keys.status_key(31))
    assert 0 < ttl <= status.STATUS_TTL_S


# --- /setup's webhook fix-ups are bounded -------------------------------------------------------------


def test_setup_with_auth_runs_a_bounded_number_of_fixup_threads(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1000)  # accepts connections, never answers: every fix-up hangs until its timeout
    port = silent.getsockname()[1]
    try:
        settings = Settings(judge="precomputed", data_dir=tmp_path, basic_auth_user="ls", basic_auth_pass="pw",
                            label_studio_url=f"http://127.0.0.1:{port}", label_studio_api_key="tok", _env_file=None)
        client = create_app(settings).test_client()
        for pid in range(1, 201):
            r = client.post("/setup", json={"project": f"{pid}.1700000000", "schema": PAIRWISE},
                            headers=_basic("ls", "pw"))
            assert r.status_code == 200
        time.sleep(0.2)
        fixers = [t for t in threading.enumerate() if t.name.startswith("webhook-auth")]
        assert 1 <= len(fixers) <= 2, [t.name for t in fixers]
    finally:
        silent.close()


# --- errors never show internals -------------------------------------------------------------------


def test_an_unexpected_error_answers_500_without_details(settings):
    app = create_app(settings)

    @app.get("/boom")
    def boom():
        raise OSError(f"[Errno 36] File name too long: '{settings.data_dir}/models/project-444'")

    r = app.test_client().get("/boom")
    assert r.status_code == 500
    assert "File name too long" not in r.get_data(as_text=True)
    assert str(settings.data_dir) not in r.get_data(as_text=True)
