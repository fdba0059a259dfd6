"""Running the app under gunicorn from ``rlthf-backend serve``."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication


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
                "worker_class": "gthread",
                "timeout": timeout_s,
                "graceful_timeout": 10,
                "accesslog": "-",
                "errorlog": "-",
                "child_exit": _child_exit,
            }
        ).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
