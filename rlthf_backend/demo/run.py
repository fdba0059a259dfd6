"""``rlthf-backend demo``: Label Studio + this backend + a project of real pairs, on one machine.

Starts Label Studio (its own virtualenv, created on first use) on loopback with a generated admin,
starts the backend in embedded mode, creates a pairwise project from the sample that ships in the
package, connects the backend through the SDK as the project settings page would, pre-labels it
(by default with the verdicts GPT-4 / gpt-3.5-turbo gave these pairs in their public releases:
the ``precomputed`` judge; ``--judge smollm2`` runs the small local model instead), runs a first
curation round, says how many of the first tasks of the queue are the judge's mistakes, prints
the URL and login, and stops everything on Ctrl-C. Nothing is downloaded but PyPI packages.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
from label_studio_sdk import LabelStudio
from pydantic import SecretStr

from rlthf_backend.demo import load_sample_pairs
from rlthf_backend.demo.label_studio import LabelStudioServer, start_label_studio
from rlthf_backend.demo.processes import ManagedProcess, http_ok, rlthf_backend_exe, wait_until
from rlthf_backend.demo.queue_check import check_queue
from rlthf_backend.registry.records import QueueCheck, write_check
from rlthf_backend.labelstudio.client import iter_tasks, make_client
from rlthf_backend.labelstudio.config import parse_label_config, shipped_config
from rlthf_backend.app.prelabel import prelabel_project
from rlthf_backend.app.project import model_registry
from rlthf_backend.app.settings import Settings

log = logging.getLogger(__name__)

PROJECT_TITLE = "RLTHF demo"

#: ``--judge`` choices: the settings each one means (for this process and the backend's).
DEMO_JUDGES: dict[str, dict[str, str]] = {
    # The verdicts real strong judges gave the shipped pairs (task fields llm_label, llm_label_swapped).
    "precomputed": {"judge": "precomputed"},
    # SmolLM2-135M on this CPU: live and offline, but too small to judge well (close to coin flips).
    "smollm2": {"judge": "transformers", "transformers_model": "smollm2"},
}
DEFAULT_DEMO_JUDGE = "precomputed"
#: How the demo names each judge when it reports the queue check.
JUDGE_NAMES = {"precomputed": "GPT-4 / gpt-3.5-turbo, as published", "smollm2": "SmolLM2-135M"}
#: How long the demo waits for the first round before it prints the login anyway.
FIRST_ROUND_TIMEOUT_S = 600


class DemoError(RuntimeError):
    pass


def _require_free(port: int, what: str, option: str) -> None:
    # Label Studio silently moves to the next port when its own is busy: refuse instead.
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise DemoError(f"port {port} for {what} is busy; choose another with {option}")


def _credentials(folder: Path) -> dict[str, str]:
    """Admin login and API token, generated once and kept with Label Studio's data."""
    path = folder / "credentials.json"
    if path.exists():
        return json.loads(path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    creds = {"username": "admin@example.com", "password": secrets.token_urlsafe(10), "token": secrets.token_hex(20)}
    path.write_text(json.dumps(creds))
    path.chmod(0o600)
    return creds


def task_for_pair(pair: dict) -> dict:
    """Task data for the shipped configs. The human label stays out: annotators must not see it."""
    data = {"pair_id": pair["id"], "prompt": pair["prompt"], "answer1": pair["response_a"],
            "answer2": pair["response_b"], "llm_label": pair["llm_label"], "llm_model": pair["llm_judge"]}
    if pair.get("llm_label_swapped"):
        data["llm_label_swapped"] = pair["llm_label_swapped"]
    return data


def _project(ls: LabelStudio) -> tuple[int, bool]:
    """The demo project, created and filled on the first run."""
    for project in ls.projects.list():
        if project.title == PROJECT_TITLE:
            return project.id, False
    project = ls.projects.create(title=PROJECT_TITLE, label_config=shipped_config("pairwise"),
                                 description="Real pairs (LLMBar, PandaLM); see rlthf_backend/demo/LICENSES.md")
    ls.projects.import_tasks(id=project.id, request=[task_for_pair(p) for p in load_sample_pairs()])
    return project.id, True


def _wait_for_first_round(backend_url: str, project_id: int, timeout_s: float) -> bool:
    """Wait until the backend finished a training that ran a curation round (False: timed out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            done = httpx.get(f"{backend_url}/jobs", params={"project": project_id}, timeout=5).json()["last_finished"]
            if done and done.get("round_run"):
                return True
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass  # the backend is busy training in its only worker: ask again
        time.sleep(1)
    return False


def demo_queue_check(ls: LabelStudio, project_id: int, judge_version: str, judge: str) -> QueueCheck | None:
    """Compare the first tasks of the queue with the shipped human labels (see queue_check)."""
    project = ls.projects.get(id=project_id)
    truth = {p["id"]: p["human_label"] for p in load_sample_pairs()}
    return check_queue(parse_label_config(project.label_config), iter_tasks(ls, project_id),
                       queue_version=project.model_version, judge_version=judge_version,
                       human_labels=truth, judge=JUDGE_NAMES[judge])


def run_demo(settings: Settings, *, ls_port: int = 8080, backend_port: int = 9090, judge: str = DEFAULT_DEMO_JUDGE,
             stop: threading.Event | None = None) -> None:
    """Run the demo until ``stop`` is set or the process gets SIGINT / SIGTERM."""
    if judge not in DEMO_JUDGES:
        raise DemoError(f"unknown demo judge {judge!r}; choose from {', '.join(DEMO_JUDGES)}")
    settings = settings.model_copy(update=DEMO_JUDGES[judge])
    stop = stop or threading.Event()
    base = settings.data_dir / "demo"
    _require_free(ls_port, "Label Studio", "--ls-port")
    _require_free(backend_port, "the backend", "--port")
    creds = _credentials(base)

    print(f"starting Label Studio on http://127.0.0.1:{ls_port} (first start: about a minute)", flush=True)
    label_studio: LabelStudioServer = start_label_studio(
        base / "label-studio", port=ls_port, username=creds["username"], password=creds["password"],
        token=creds["token"])
    backend: ManagedProcess | None = None
    try:
        backend_url = f"http://127.0.0.1:{backend_port}"
        env = {**os.environ, "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": creds["token"],
               "RLTHF_DATA_DIR": str(settings.data_dir),
               **{f"RLTHF_{key.upper()}": value for key, value in DEMO_JUDGES[judge].items()}}
        backend = ManagedProcess(
            [rlthf_backend_exe(), "serve", "--host", "127.0.0.1", "--port", str(backend_port)],
            env=env, log_path=base / "backend.log")
        wait_until(http_ok(f"{backend_url}/health"), 120, "the backend to answer /health")
        jobs = "embedded jobs" if not settings.redis_url else f"jobs on {settings.redis_url}"
        print(f"backend on {backend_url} ({jobs})", flush=True)

        ls = make_client(label_studio.url, creds["token"], timeout=300)
        project_id, created = _project(ls)
        if not any(m.url.rstrip("/") == backend_url for m in ls.ml.list(project=project_id)):
            ls.ml.create(project=project_id, url=backend_url, title="RLTHF")
        ls_settings = settings.model_copy(
            update={"label_studio_url": label_studio.url, "label_studio_api_key": SecretStr(creds["token"])})
        what = ("the verdicts GPT-4 / gpt-3.5-turbo gave these pairs (precomputed)" if judge == "precomputed"
                else "SmolLM2-135M on this machine (offline, a few seconds per pair)")
        print(f"pre-labelling with {what}...", flush=True)
        summary = prelabel_project(ls_settings, project_id, progress=True)
        print(summary.describe(), flush=True)
        if created:
            for ml in ls.ml.list(project=project_id):
                ls.ml.train(id=ml.id)  # START_TRAINING: the first round orders the queue
            print("first curation round (reward model + queue order)...", flush=True)
            if not _wait_for_first_round(backend_url, project_id, FIRST_ROUND_TIMEOUT_S):
                print(f"the first round is still running; see {backend_url}/jobs?project={project_id}", flush=True)
        check = demo_queue_check(ls, project_id, summary.model_version, judge)
        if check is not None:
            write_check(model_registry(settings).project_dir(project_id), check)
            print(check.describe() + "\n(The demo knows the answers from the shipped human labels; a real project "
                  "learns this from the audit slice and people's answers: see the report.)", flush=True)
        print(
            "\nReady.\n"
            f"  Label Studio: {label_studio.url}/projects/{project_id}/data\n"
            f"  login:        {creds['username']}\n"
            f"  password:     {creds['password']}\n"
            f"  backend:      {backend_url}  (GET /jobs?project={project_id} shows the trainings)\n"
            f"  report:       {backend_url}/report?project={project_id}\n"
            "Click 'Label All Tasks': the tasks the engine wants a person for come first.\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        _wait_for_stop(stop)
    finally:
        print("stopping...", flush=True)
        if backend is not None:
            backend.stop()
        label_studio.stop()


def _wait_for_stop(stop: threading.Event) -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    stop.wait()
