"""A real local HTTP server that speaks the OpenAI chat-completions protocol, for tests.

It judges by a rule tests can predict: the longer response wins. With ``len1`` and ``len2`` the
character lengths of the first and second response shown, P(first better) is
``(len1 + 1) / (len1 + len2 + 2)`` and the answer is "A" when that is >= 0.5, so equal lengths
give "A" with probability 0.5 (a first-position bias that asking both orders cancels).

It misbehaves on demand (see :class:`Behaviour`) and counts what it saw (:class:`Stats`),
including the most requests it ever had in flight at once.

Use::

    with FakeOpenAIServer(Behaviour(latency_ms=50)) as server:
        OpenAI(base_url=server.base_url, api_key="x")...
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_RESPONSE_RE = {
    letter: re.compile(rf"\[Response {letter}\]\n(.*?)\n\[End of response {letter}\]", re.DOTALL)
    for letter in "AB"
}


def longer_wins(response_1: str, response_2: str) -> float:
    """The default rule: P(first better) grows with the first response's share of the length."""
    return (len(response_1) + 1) / (len(response_1) + len(response_2) + 2)


@dataclass
class Behaviour:
    """How the server answers; tests may change fields while it runs.

    ``fail_first``: statuses returned (in order) by the first requests, e.g. ``[429, 429]``,
    before it behaves. ``always_status``: every request fails with it. ``hang_s``: sleep this
    long before answering (to provoke client timeouts). ``latency_ms``: added to every request.
    ``garbage``: answer text without a verdict line. ``logprobs``: include logprobs when asked.
    ``decide``: P(first better) from the two shown responses. ``reject_logprobs``: answer
    HTTP 400 to requests that ask for logprobs, as some servers and models do. ``answer_text``:
    reply with exactly this text (long or hostile answers). ``logprobs_disagree``: the answer
    token's alternatives favour the letter the text did not choose (a sampled or misaligned token).
    """

    latency_ms: float = 0.0
    fail_first: list[int] = field(default_factory=list)
    always_status: int | None = None
    hang_s: float = 0.0
    garbage: bool = False
    logprobs: bool = True
    reject_logprobs: bool = False
    decide: Callable[[str, str], float] = longer_wins
    answer_text: str | None = None
    logprobs_disagree: bool = False


@dataclass
class Stats:
    """What the server saw. ``bodies`` are the decoded request bodies, in arrival order."""

    requests: int = 0
    statuses: list[int] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)


def _tokens(text: str) -> list[str]:
    """A crude tokenisation whose pieces concatenate back to ``text`` (as real servers' do)."""
    return re.findall(r"\s*\S+", text)


def _logprobs(text: str, answer_index: int, p_first: float) -> dict[str, Any]:
    p = min(max(p_first, 1e-6), 1 - 1e-6)
    content = []
    for i, tok in enumerate(_tokens(text)):
        if i == answer_index:
            alts = sorted([(" A", math.log(p)), (" B", math.log(1 - p))], key=lambda x: -x[1])
        else:
            alts = [(tok, -0.01)]
        content.append(
            {
                "token": tok,
                "logprob": alts[0][1] if i == answer_index else -0.01,
                "bytes": list(tok.encode()),
                "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alts],
            }
        )
    return {"content": content}


class FakeOpenAIServer:
    """The server; a context manager that starts it on 127.0.0.1 (a free port) and stops it."""

    def __init__(self, behaviour: Behaviour | None = None):
        self.behaviour = behaviour or Behaviour()
        self.stats = Stats()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "FakeOpenAIServer":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; with Nagle's algorithm on, the second
                # waits for the client's delayed ACK (~40 ms), which real servers avoid too.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet tests
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake._handle(self, body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # many clients connect at once in the concurrency tests

        self._httpd = Server(("127.0.0.1", 0), Handler)
        # A short poll interval makes stop() quick (shutdown waits for the next poll).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_stats(self) -> None:
        with self._lock:
            self.stats = Stats()

    # --- request handling -----------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, raw_body: bytes) -> None:
        b = self.behaviour
        with self._lock:
            self.stats.requests += 1
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
            fail = b.fail_first.pop(0) if b.fail_first else b.always_status
        try:
            try:
                request = json.loads(raw_body or b"{}")
            except ValueError:
                request = {}
            with self._lock:
                self.stats.bodies.append(request)
            if b.latency_ms:
                time.sleep(b.latency_ms / 1000)
            if b.hang_s:
                time.sleep(b.hang_s)
            if handler.path.rstrip("/") != "/v1/chat/completions":
                status, payload = 404, {"error": {"message": f"no route {handler.path}", "type": "not_found"}}
            elif b.reject_logprobs and request.get("logprobs"):
                status, payload = 400, {
                    "error": {
                        "message": "logprobs are not supported by this model",
                        "type": "invalid_request_error",
                    }
                }
            elif fail is not None:
                status, payload = fail, {"error": {"message": f"fake failure {fail}", "type": "server_error"}}
            else:
                status, payload = 200, self._completion(request)
            with self._lock:
                self.stats.statuses.append(status)
            self._send(handler, status, payload)
        finally:
            with self._lock:
                self.stats.in_flight -= 1

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    def _completion(self, request: dict[str, Any]) -> dict[str, Any]:
        messages = request.get("messages") or [{}]
        prompt = str(messages[-1].get("content", ""))
        shown = [m.group(1) if (m := _RESPONSE_RE[x].search(prompt)) else None for x in "AB"]
        p_first = None
        if self.behaviour.answer_text is not None:
            text = self.behaviour.answer_text
        elif self.behaviour.garbage or None in shown:
            text = "Both responses have merits and I cannot decide between them."
        else:
            p_first = self.behaviour.decide(shown[0], shown[1])  # type: ignore[arg-type]
            letter = "A" if p_first >= 0.5 else "B"
            text = f"Response {letter} is more complete.\nPreference: {letter}"
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
            "logprobs": None,
        }
        if request.get("logprobs") and self.behaviour.logprobs:
            answer_index = len(_tokens(text)) - 1 if p_first is not None else -1
            token_p = p_first if p_first is not None else 0.5
            if self.behaviour.logprobs_disagree:
                token_p = 1.0 - token_p
            choice["logprobs"] = _logprobs(text, answer_index, token_p)
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "fake"),
            "choices": [choice],
            "usage": {
                "prompt_tokens": len(prompt) // 4,
                "completion_tokens": 12,
                "total_tokens": len(prompt) // 4 + 12,
            },
        }
