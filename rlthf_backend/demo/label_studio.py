"""A local Label Studio 1.23.2 in its own virtualenv: for the demo and the integration tests.

Label Studio pins ``label-studio-sdk==2.1.2`` and many Django packages, so it never shares the
backend's environment. The virtualenv is created on first use (about 4 minutes) and reused.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rlthf_backend.demo.processes import ManagedProcess, free_port, http_ok, wait_until

LABEL_STUDIO_VERSION = "1.23.2"


def default_venv() -> Path:
    return Path.home() / ".cache" / "rlthf" / f"ls-venv-{LABEL_STUDIO_VERSION}"


def ensure_label_studio_installed(venv: Path | None = None) -> Path:
    """The ``label-studio`` executable, installing Label Studio into ``venv`` if needed."""
    venv = Path(venv or default_venv())
    exe = venv / "bin" / "label-studio"
    marker = venv / ".installed"
    if marker.exists() and exe.exists():
        return exe
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel runs install once
        if not (marker.exists() and exe.exists()):
            print(f"installing Label Studio {LABEL_STUDIO_VERSION} into {venv} (a few minutes, once)", flush=True)
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
    username: str
    password: str
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()


def start_label_studio(
    data_dir: Path,
    *,
    port: int | None = None,
    username: str = "admin@example.com",
    password: str | None = None,
    token: str | None = None,
    venv: Path | None = None,
    start_timeout_s: float = 240,
    ssrf_protection: bool = False,
) -> LabelStudioServer:
    """Start Label Studio on loopback with a preset admin and API token; wait until it answers.

    Sets what a local ML backend needs: 1.23.1+ refuses backends and webhooks on local addresses
    unless ``ML_BLOCK_LOCAL_IP`` and ``SSRF_PROTECTION_ENABLED`` are off (``ssrf_protection=True``
    keeps Label Studio's own default, on: the state ``doctor`` must diagnose). Data (SQLite) lives
    in ``data_dir``, so a restart keeps projects and users.
    """
    exe = ensure_label_studio_installed(venv)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    token = token or secrets.token_hex(20)
    password = password or secrets.token_urlsafe(12)
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": username,
        "LABEL_STUDIO_PASSWORD": password,
        "LABEL_STUDIO_USER_TOKEN": token,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # the preset token is a legacy token
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",  # otherwise it retries error reports to an unreachable host
        "FRONTEND_SENTRY_DSN": "",
        "ML_BLOCK_LOCAL_IP": str(ssrf_protection).lower(),
        "SSRF_PROTECTION_ENABLED": str(ssrf_protection).lower(),
    }
    env.pop("VIRTUAL_ENV", None)  # never let the backend's virtualenv leak into Label Studio's
    env["PATH"] = f"{exe.parent}:{env.get('PATH', '')}"
    proc = ManagedProcess(
        [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)],
        env=env,
        log_path=data_dir / "label-studio.log",
        cwd=data_dir,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(http_ok(f"{url}/health"), start_timeout_s, "Label Studio to answer /health")
    except TimeoutError:
        tail = proc.log_tail()
        proc.stop()
        raise RuntimeError(f"Label Studio did not start; last log lines:\n{tail}") from None
    return LabelStudioServer(url=url, token=token, username=username, password=password, process=proc)
