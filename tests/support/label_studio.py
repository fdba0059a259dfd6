"""A real Label Studio 1.23.2 for tests: its own virtualenv (cached), fresh data, a preset token.

The virtualenv lives in ``$RLTHF_TEST_LS_VENV`` or ``~/.cache/rlthf/ls-venv-1.23.2`` and is created
on first use (about 4 minutes); Label Studio pins ``label-studio-sdk==2.1.2`` and many Django
packages, so it never shares the backend's environment.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import ManagedProcess, free_port, http_ok, wait_until

LABEL_STUDIO_VERSION = "1.23.2"


def ls_venv_path() -> Path:
    default = Path.home() / ".cache" / "rlthf" / f"ls-venv-{LABEL_STUDIO_VERSION}"
    return Path(os.environ.get("RLTHF_TEST_LS_VENV", default))


def ensure_label_studio_installed() -> Path:
    """The ``label-studio`` executable, installing it into its own venv if needed."""
    venv = ls_venv_path()
    exe = venv / "bin" / "label-studio"
    marker = venv / ".installed"
    if marker.exists() and exe.exists():
        return exe
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test runs install once
        if not (marker.exists() and exe.exists()):
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "-q", f"label-studio=={LABEL_STUDIO_VERSION}"], check=True
            )
            marker.write_text(LABEL_STUDIO_VERSION)
    return exe


@dataclass
class LabelStudioServer:
    url: str
    token: str
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()


def start_label_studio(data_dir: Path) -> LabelStudioServer:
    exe = ensure_label_studio_installed()
    port = free_port()
    token = secrets.token_hex(20)
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": "tester@example.com",
        "LABEL_STUDIO_PASSWORD": secrets.token_urlsafe(12),
        "LABEL_STUDIO_USER_TOKEN": token,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        # 1.23.1+ refuses ML backends and webhooks on loopback unless told otherwise.
        "ML_BLOCK_LOCAL_IP": "false",
        "SSRF_PROTECTION_ENABLED": "false",
    }
    # Never let the backend's virtualenv leak into Label Studio's.
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = f"{exe.parent}:{env.get('PATH', '')}"
    proc = ManagedProcess(
        [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)],
        env=env,
        log_path=data_dir / "label-studio.log",
        cwd=data_dir,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(http_ok(f"{url}/health"), 240, "Label Studio to answer /health")
    except TimeoutError:
        tail = proc.log_tail()
        proc.stop()
        raise RuntimeError(f"Label Studio did not start; last log lines:\n{tail}")
    return LabelStudioServer(url=url, token=token, process=proc)
