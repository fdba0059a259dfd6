"""The real server (``rlthf-backend serve`` under gunicorn) against hostile requests: what gunicorn
itself answers (too long URLs and headers, malformed request lines, bodies over the limit), what it
logs, the workers' metrics page, and a hostile judge answer end to end."""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path

import httpx
import pytest

from rlthf_backend.labelstudio.config import shipped_config
from tests.fakes.openai_server import Behaviour, FakeOpenAIServer
from tests.support.backend import start_backend

pytestmark = pytest.mark.integration

PAIRWISE = shipped_config("pairwise")


@pytest.fixture(scope="module")
def judge_server():
    with FakeOpenAIServer(Behaviour()) as server:
        yield server


@pytest.fixture(scope="module")
def backend(tmp_path_factory, judge_server):
    server = start_backend(tmp_path_factory.mktemp("serve-under-gunicorn"), {
        "BASIC_AUTH_USER": "ls", "BASIC_AUTH_PASS": "s3cret", "RLTHF_JUDGE": "openai",
        "RLTHF_OPENAI_BASE_URL": judge_server.base_url, "RLTHF_JUDGE_MAX_RETRIES": "0",
        "RLTHF_MAX_REQUEST_MB": "1"}, workers=1)
    yield server
    server.stop()


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_workers_count_into_the_metrics_page(backend):
    """The start-up checks run in gunicorn's master: they must not break the workers' shared metrics."""
    before = backend.metric("rlthf_webhooks_total", action="TASKS_CREATED")
    assert backend.post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": 1}}).status_code == 200
    assert backend.metric("rlthf_webhooks_total", action="TASKS_CREATED") == before + 1


def test_a_too_long_url_is_a_json_414(backend):
    r = httpx.get(backend.url + "/health?x=" + "a" * 10_000, timeout=10)
    assert r.status_code == 414
    assert r.headers["content-type"] == "application/json" and "error" in r.json()


def test_a_too_large_header_is_a_json_431(backend):
    r = httpx.get(backend.url + "/health", headers={"X-Big": "b" * 20_000}, timeout=10)
    assert r.status_code == 431
    assert r.headers["content-type"] == "application/json" and "error" in r.json()


def test_a_malformed_request_line_is_json_too(backend):
    answer = _raw(backend.url, b"GET /health HTTP/9.9\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b"application/json" in answer


def test_a_colon_less_auth_header_never_reaches_the_access_log(backend):
    secret = "hunter2-no-colon"
    r = httpx.get(backend.url + "/health", timeout=10,
                  headers={"Authorization": "Basic " + base64.b64encode(secret.encode()).decode()})
    assert r.status_code == 401
    assert httpx.get(backend.url + "/health", auth=("ls", "s3cret"), timeout=10).status_code == 200
    time.sleep(0.5)  # the access log line is written after the answer
    log = Path(backend.process.log_path).read_text()
    assert '"GET /health HTTP/1.1" 401' in log  # the request is logged...
    assert secret not in log and " ls " not in log  # ...without any user name


def test_a_body_over_the_limit_is_413_and_the_worker_lives(backend):
    r = backend.post("/predict", content=b"{" + b" " * (3 * 1024 * 1024) + b"}",
                     headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "1 MB" in r.json()["error"]
    assert backend.get("/health").status_code == 200


def test_an_endless_judge_answer_neither_blocks_nor_breaks_the_server(backend, judge_server):
    judge_server.behaviour.answer_text = "Preference: A" + " " * 300_000 + "*x"
    try:
        task = {"id": 1, "data": {"prompt": "q", "answer1": "one answer", "answer2": "another"}}
        started = time.monotonic()
        r = backend.post("/predict", json={"tasks": [task], "label_config": PAIRWISE})
        assert r.status_code == 200
        assert "error" in r.json()["results"][0]  # parse failure of that task, reported in place
        assert time.monotonic() - started < 20  # the unfixed parser needed minutes
        assert backend.get("/health").status_code == 200
        assert {b.get("max_tokens") for b in judge_server.stats.bodies} == {1024}
    finally:
        judge_server.behaviour.answer_text = None
