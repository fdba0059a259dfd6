"""`rlthf-backend doctor` against servers that answer wrongly: an HTML page everywhere, a byte a
second, a closed connection. Every line stays a verdict, the run ends in bounded time, exit 1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rlthf_backend.app.settings import Settings
from rlthf_backend.cli.doctor import http, passed, run_checks
from rlthf_backend.labelstudio.config import shipped_config

ROOT = Path(__file__).resolve().parents[2]
VERDICT = re.compile(r"^\[\s*(ok|FAIL|skip)\] \S+ +\S")
PAGE = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"


class FaultyServer:
    """A local HTTP server in a thread. ``mode``: html (a page for every path, JSON only for the
    paths in ``json_paths``), drip-head (the whole answer a byte a second), drip-body (headers at
    once, then the body a byte a second), close (the connection closed without an answer)."""

    def __init__(self, mode: str, json_paths: dict[str, object] | None = None) -> None:
        self.mode = mode
        self.json_paths = json_paths or {}
        self.stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def handle(self) -> None:
                if server.mode == "close":
                    self.rfile.readline()
                    return  # the socket is closed behind us
                super().handle()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?")[0]
                if path in server.json_paths:
                    body, kind = json.dumps(server.json_paths[path]).encode(), "application/json"
                else:
                    body, kind = PAGE, "text/html; charset=utf-8"
                head = (f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                        "Connection: close\r\n\r\n").encode()
                if server.mode == "html" or path in server.json_paths:
                    self.wfile.write(head + body)
                    return
                slow = head + body if server.mode == "drip-head" else body
                if server.mode == "drip-body":
                    self.wfile.write(head)
                try:
                    for i in range(len(slow)):
                        if server.stop.wait(1.0):
                            return
                        self.wfile.write(slow[i : i + 1])
                        self.wfile.flush()
                except OSError:
                    return  # the client gave up: what the doctor should do

            do_GET = do_POST = do_PATCH = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers: list[FaultyServer] = []

    def start(mode: str, json_paths: dict[str, object] | None = None) -> FaultyServer:
        servers.append(FaultyServer(mode, json_paths))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _doctor_cli(tmp_path: Path, ls_url: str, *args: str) -> tuple[int, list[str], float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LABEL_STUDIO_URL": ls_url,
           "LABEL_STUDIO_API_KEY": "0123456789abcdef0123456789abcdef01234567", "RLTHF_JUDGE": "precomputed",
           "RLTHF_DATA_DIR": str(tmp_path / "data")}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "rlthf_backend.cli", "doctor", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - started
    lines = done.stdout.splitlines()
    print(done.stdout, done.stderr, f"{seconds:.1f} s", sep="\n")
    assert "Traceback" not in done.stderr, done.stderr
    assert lines and lines[-1].endswith("check(s) failed"), done.stdout
    assert all(VERDICT.match(line) for line in lines[:-1]), done.stdout
    return done.returncode, lines[:-1], seconds


def _line(lines: list[str], name: str) -> str:
    [line] = [x for x in lines if re.match(rf"^\[\s*\w+\] {re.escape(name)} ", x)]
    return line


def test_an_html_page_everywhere_fails_naming_the_url_and_what_answered(tmp_path, serve):
    server = serve("html")
    code, lines, seconds = _doctor_cli(tmp_path, server.url, "--project", "1", "--backend-url", server.url)
    assert code == 1 and seconds < 30
    ls = _line(lines, "label-studio")
    assert ls.startswith("[FAIL]") and f"{server.url}/health answered 200 text/html" in ls and "fix:" in ls
    backend = _line(lines, "backend")
    assert backend.startswith("[FAIL]") and f"{server.url}/health answered 200 text/html" in backend
    assert "rlthf-backend serve" in backend
    # The checks that need Label Studio say so; the local ones still ran.
    assert _line(lines, "token").startswith("[skip]")
    assert _line(lines, "database").startswith("[  ok]")


def test_a_server_dripping_a_byte_a_second_is_given_up_at_the_deadline(tmp_path, serve):
    server = serve("drip-head")
    code, lines, seconds = _doctor_cli(tmp_path, server.url, "--timeout", "3", "--backend-url", server.url)
    assert code == 1 and seconds < 30  # two requests of 3 s each, and the local checks
    for name in ("label-studio", "backend"):
        line = _line(lines, name)
        assert line.startswith("[FAIL]") and "no complete answer within 3 s" in line and server.url in line


def test_a_closed_connection_fails_that_check_and_the_others_go_on(tmp_path, serve):
    server = serve("close")
    code, lines, seconds = _doctor_cli(tmp_path, server.url, "--backend-url", server.url)
    assert code == 1 and seconds < 30
    assert "disconnected" in _line(lines, "label-studio") and server.url in _line(lines, "label-studio")
    assert _line(lines, "backend").startswith("[FAIL]")
    assert _line(lines, "registry-disk").startswith("[  ok]")


def test_a_body_dripped_after_prompt_headers_ends_at_the_deadline_too(serve):
    server = serve("drip-body")
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        http("GET", server.url + "/health", timeout=2)
    assert time.monotonic() - started < 5
    assert "answered 200 text/html" in str(caught.value) and "within 2 s" in str(caught.value)


LEGACY_TOKEN = "0123456789abcdef0123456789abcdef01234567"
PROJECT = {"id": 1, "label_config": shipped_config("pairwise"), "model_version": "", "sampling": ""}


@pytest.mark.parametrize("json_paths, failing, where", [
    ({"/health": {"status": "UP"}}, "token", "/api/current-user/whoami"),
    ({"/health": {"status": "UP"}, "/api/current-user/whoami": {"email": "a@b"}}, "project-config", "/api/projects/1"),
    ({"/health": {"status": "UP"}, "/api/current-user/whoami": {"email": "a@b"}, "/api/projects/1": PROJECT},
     "ml-backend", "/api/ml"),
])
def test_html_where_label_studio_answers_json_fails_that_check_only(tmp_path, serve, json_paths, failing, where):
    server = serve("html", json_paths)
    settings = Settings(label_studio_url=server.url, label_studio_api_key=LEGACY_TOKEN, judge="precomputed",
                        data_dir=tmp_path / "data")
    checks = list(run_checks(settings, project_id=1, timeout=5))
    print("\n".join(c.line() for c in checks))
    assert not passed(checks) and all(VERDICT.match(c.line()) for c in checks)
    failed = {c.name: c for c in checks if c.verdict == "FAIL"}
    assert f"{server.url}{where}" in failed[failing].detail and "200 text/html" in failed[failing].detail
    assert "LABEL_STUDIO_URL" in failed[failing].fix
    assert [c.name for c in checks if server.url in c.detail and c.verdict == "FAIL"] == [failing]
    assert "judge" not in failed  # the judge check falls back to its built-in pair
