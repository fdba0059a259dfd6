"""Running the app under gunicorn from ``rlthf-backend serve``."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

#: gunicorn's access-log format without ``%(u)s``: gunicorn fills that with whatever precedes the
#: first colon of a basic-auth header, so a colon-less header would put its password in the log.
ACCESS_LOG_FORMAT = '%(h)s - - %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
#: Longest request line (414 beyond) and header field (431 beyond), in bytes: gunicorn's defaults.
LIMIT_REQUEST_LINE = 4094
LIMIT_REQUEST_FIELD_SIZE = 8190


def _write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own error answers (414, 431, 400 on a malformed request) as JSON like the app's."""
    body = json.dumps({"error": f"{reason}: {mesg}" if mesg else reason}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


class JsonErrorWorker(ThreadWorker):
    """gunicorn's threaded worker, answering the requests gunicorn refuses itself in JSON."""

    def init_process(self) -> None:
        # gunicorn writes those answers through this one function (an HTML page by default); the
        # worker process is ours alone, so it is replaced here, after the fork.
        util.write_error = _write_json_error
        super().init_process()


class _StandaloneApplication(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        # Imported in each worker after the fork, so per-process state (metrics, judge) is fresh.
        from rlthf_backend.server.app import create_app

        return create_app()


def run_gunicorn(host: str, port: int, workers: int = 1, threads: int = 4, timeout_s: int = 120) -> None:
    """Serve until stopped. ``timeout_s`` must exceed Label Studio's 100 s /predict timeout."""
    # Prometheus counters live in per-worker files that /metrics aggregates.
    metrics_dir = tempfile.mkdtemp(prefix="rlthf-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        _StandaloneApplication(
            {
                "bind": f"{host}:{port}",
                "workers": workers,
                "threads": threads,
                "worker_class": f"{__name__}.JsonErrorWorker",
                "timeout": timeout_s,
                "graceful_timeout": 10,
                "accesslog": "-",
                "access_log_format": ACCESS_LOG_FORMAT,
                "errorlog": "-",
                "limit_request_line": LIMIT_REQUEST_LINE,
                "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
                "child_exit": _child_exit,
            }
        ).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
