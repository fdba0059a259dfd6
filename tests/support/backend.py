"""The backend under test, started as a user starts it: ``rlthf-backend serve``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from rlthf_backend.demo.processes import ManagedProcess, free_port, rlthf_backend_exe, wait_until


@dataclass
class BackendServer:
    url: str
    process: ManagedProcess
    auth: tuple[str, str] | None = None

    def get(self, path: str, **kw) -> httpx.Response:
        kw.setdefault("auth", self.auth)
        return httpx.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        kw.setdefault("auth", self.auth)
        return httpx.post(self.url + path, timeout=120, **kw)

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on /metrics (0 if absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.get("/metrics").text.splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            sample, _, label_text = key.partition("{")
            got = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
            if sample == name and got == want:
                return float(value)
        return 0.0

    def stop(self) -> None:
        self.process.stop()


def start_backend(workdir: Path, env_overrides: dict[str, str], workers: int = 2) -> BackendServer:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLTHF_")}
    for k in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "BASIC_AUTH_USER", "BASIC_AUTH_PASS", "REDIS_URL"):
        env.pop(k, None)
    env.update({"RLTHF_DATA_DIR": str(workdir / "data"), "RLTHF_LOG_LEVEL": "INFO"})
    env.update(env_overrides)
    workdir.mkdir(parents=True, exist_ok=True)
    proc = ManagedProcess(
        [rlthf_backend_exe(), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env=env,
        log_path=workdir / "backend.log",
        cwd=workdir,  # no stray .env from the repo
    )
    auth = None
    if env.get("BASIC_AUTH_USER"):
        auth = (env["BASIC_AUTH_USER"], env["BASIC_AUTH_PASS"])
    server = BackendServer(url=f"http://127.0.0.1:{port}", process=proc, auth=auth)
    try:
        wait_until(lambda: server.get("/health").status_code == 200, 60, "the backend to answer /health")
    except TimeoutError:
        tail = proc.log_tail()
        proc.stop()
        raise RuntimeError(f"the backend did not start; last log lines:\n{tail}")
    return server
