"""Starting and stopping local server processes (the demo, and the tests that start real servers)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def rlthf_backend_exe() -> str:
    """The ``rlthf-backend`` script of this interpreter's environment (else the one on PATH)."""
    exe = Path(sys.executable).parent / "rlthf-backend"
    return str(exe) if exe.exists() else (shutil.which("rlthf-backend") or "rlthf-backend")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.25) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def http_ok(url: str, **kwargs) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=2, **kwargs).status_code == 200


class ManagedProcess:
    """A subprocess in its own process group, with its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 15) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
