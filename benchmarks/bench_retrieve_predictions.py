"""What a Label Studio user sees after clicking the Data Manager's "Retrieve Predictions" on N tasks.

Starts a real Label Studio 1.23.2 (fresh data folder, its own virtualenv: tests/support/label_studio.py),
the fake OpenAI judge server with a fixed latency (tests/fakes/openai_server.py) and the backend
(``python -m rlthf_backend.cli serve``, one gunicorn worker, the openai judge at the fake server,
EMBEDDED job queue: no REDIS_URL, the background job runs inside the backend; LABEL_STUDIO_URL and
LABEL_STUDIO_API_KEY are set so it can write predictions). Then it creates a pairwise project of N
tasks, connects the backend as the project's ML backend, and clicks "Retrieve Predictions" on all
tasks the way the UI does (POST /api/dm/actions?id=retrieve_tasks_predictions). It prints:

- seconds until the click answered (Label Studio gives up on /predict after ML_TIMEOUT_PREDICT, 100 s)
  and how many tasks the click itself predicted (the rest go to the background job);
- one line per poll (~5 s): tasks holding a prediction, and the job's progress from /jobs;
- the time an annotator waits when opening a not-yet-predicted task during the job (target < 5 s):
  GET /api/tasks/<id>/ on Label Studio, which asks the backend for that one task;
- seconds from the click until every task holds a prediction, against a target of
  (2*N/concurrency)*latency + 60 s; judge requests seen (expected 2*N); tasks with > 1 prediction.

The figures are for people: it exits non-zero only when something crashes.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_retrieve_predictions.py \
        [--tasks 2000] [--latency-ms 1000] [--concurrency 8] [--budget-s 60] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
from collections import Counter
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from label_studio_sdk import LabelStudio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.* when run as a script

from tests.fakes.openai_server import Behaviour, FakeOpenAIServer  # noqa: E402
from tests.support.backend import BackendServer  # noqa: E402
from tests.support.label_studio import LabelStudioServer, start_label_studio  # noqa: E402
from tests.support.processes import ManagedProcess, free_port, wait_until  # noqa: E402

PAIRWISE = (ROOT / "label_config" / "pairwise.xml").read_text()
LS_ML_TIMEOUT_PREDICT_S = 100.0
OPENED_TASK_TARGET_S = 5.0
POLL_INTERVAL_S = 5.0


@dataclass
class Results:
    tasks: int
    click_s: float | None = None
    click_detail: str = ""
    held_at_click: int | None = None  # tasks holding a prediction at the first look after the click
    job_total: int | None = None  # tasks the background job took over (the rest: the click itself)
    opened: str = "not measured"
    all_predicted_s: float | None = None
    held_at_end: int = 0
    multi_predicted: list[int] = field(default_factory=list)  # ids of tasks holding more than one
    judge_requests: int = 0
    distinct_prompts: int = 0
    asked_twice: list[int] = field(default_factory=list)  # pair ids of prompts the judge saw more than once
    last_job: dict | None = None
    poll_lines: list[str] = field(default_factory=list)


def pair_data(i: int) -> dict:
    """A pair whose longer answer (the fake judge's choice) is answer1 for even i, answer2 for odd i."""
    short, long = f"short {i}", f"a much longer and more careful answer number {i}"
    a, b = (long, short) if i % 2 == 0 else (short, long)
    return {"prompt": f"question {i}", "answer1": a, "answer2": b, "pair_id": i}


def _pair_id(prompt: str) -> int:
    """The pair a judge prompt is about (its question names it), -1 if none."""
    found = re.search(r"question (\d+)", prompt)
    return int(found.group(1)) if found else -1


# --- the servers ----------------------------------------------------------------------------


def start_backend(workdir: Path, env_overrides: dict[str, str]) -> BackendServer:
    """``python -m rlthf_backend.cli serve`` with this interpreter and this checkout on PYTHONPATH."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLTHF_")}
    for k in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "BASIC_AUTH_USER", "BASIC_AUTH_PASS", "REDIS_URL"):
        env.pop(k, None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env.update({"RLTHF_DATA_DIR": str(workdir / "data"), "RLTHF_LOG_LEVEL": "INFO"})
    env.update(env_overrides)
    workdir.mkdir(parents=True, exist_ok=True)
    proc = ManagedProcess(
        [sys.executable, "-m", "rlthf_backend.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        env=env, log_path=workdir / "backend.log", cwd=workdir,  # cwd: no stray .env from the repo
    )
    server = BackendServer(url=f"http://127.0.0.1:{port}", process=proc)
    try:
        wait_until(lambda: server.get("/health").status_code == 200, 60, "the backend to answer /health")
    except TimeoutError:
        tail = proc.log_tail()
        proc.stop()
        raise RuntimeError(f"the backend did not start; last log lines:\n{tail}") from None
    return server


def backend_env(judge: FakeOpenAIServer, label_studio: LabelStudioServer, args) -> dict[str, str]:
    return {
        "RLTHF_JUDGE": "openai", "RLTHF_OPENAI_BASE_URL": judge.base_url, "RLTHF_OPENAI_MODEL": "fake-judge",
        "RLTHF_OPENAI_API_KEY": "x", "RLTHF_JUDGE_CONCURRENCY": str(args.concurrency),
        "RLTHF_PREDICT_BUDGET_S": str(args.budget_s),
        "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token,
    }


# --- Label Studio ---------------------------------------------------------------------------


def create_project(ls: LabelStudio, n: int) -> int:
    project = ls.projects.create(title=f"retrieve predictions x{n}", label_config=PAIRWISE)
    for start in range(0, n, 500):
        ls.projects.import_tasks(id=project.id, request=[pair_data(i) for i in range(start, min(n, start + 500))])
    return project.id


def prediction_counts(label_studio: LabelStudioServer, project_id: int) -> dict[int, int]:
    """Task id -> number of predictions it holds, over the whole project.

    The Data Manager's task list with only the ``total_predictions`` column: about 5x cheaper than
    reading every prediction (``fields=all``), which matters when Label Studio is busy storing them.
    """
    counts: dict[int, int] = {}
    page = 1
    while True:
        r = httpx.get(f"{label_studio.url}/api/tasks/", timeout=300, headers=_auth(label_studio),
                      params={"project": project_id, "page": page, "page_size": 1000,
                              "include": "id,total_predictions"})
        r.raise_for_status()
        body = r.json()
        counts.update({t["id"]: t.get("total_predictions") or 0 for t in body["tasks"]})
        if not body["tasks"] or len(counts) >= body["total"]:
            return counts
        page += 1


def _auth(label_studio: LabelStudioServer) -> dict[str, str]:
    return {"Authorization": f"Token {label_studio.token}"}


def click_retrieve_predictions(label_studio: LabelStudioServer, project_id: int) -> tuple[float, str]:
    """The Data Manager action on every task, as the UI sends it; seconds until it answered, and its answer."""
    t0 = time.perf_counter()
    r = httpx.post(f"{label_studio.url}/api/dm/actions/", timeout=300, headers=_auth(label_studio),
                   params={"id": "retrieve_tasks_predictions", "project": project_id},
                   json={"selectedItems": {"all": True, "excluded": []}})
    took = time.perf_counter() - t0
    r.raise_for_status()
    return took, r.text[:200]


def open_task(label_studio: LabelStudioServer, task_id: int) -> tuple[float, int]:
    """Open a task as the labelling view does: Label Studio asks the backend for a task without a prediction."""
    t0 = time.perf_counter()
    r = httpx.get(f"{label_studio.url}/api/tasks/{task_id}/", timeout=300, headers=_auth(label_studio))
    took = time.perf_counter() - t0
    r.raise_for_status()
    return took, len(r.json().get("predictions") or [])


# --- the backend's progress ----------------------------------------------------------------


def job_progress(backend: BackendServer, project_id: int) -> dict | None:
    try:
        return backend.get(f"/jobs?project={project_id}").json().get("prelabel")
    except (httpx.HTTPError, ValueError):
        return None


def describe_job(job: dict | None) -> str:
    if not job:
        return "job: none"
    rate = f"{job['rate_per_s']:.2f} tasks/s" if job.get("rate_per_s") is not None else "rate -"
    eta = f"eta {job['eta_s']:.0f} s" if job.get("eta_s") is not None else "eta -"
    return (f"job {job.get('state')}: {job.get('done')}/{job.get('total')} done, {job.get('written')} written, "
            f"{rate}, {eta}, {job.get('requests')} requests")


# --- the steps -----------------------------------------------------------------------------


def measure_opened_task(label_studio, backend, project_id: int, task_id: int, res: Results) -> None:
    """During the bulk job: open the task the job reaches last and time its prediction."""
    job = job_progress(backend, project_id)
    running = bool(job and job.get("state") in ("queued", "running"))
    try:
        took, held = open_task(label_studio, task_id)
    except httpx.HTTPError as exc:
        res.opened = f"failed for task {task_id}: {exc!r}"
        print(f"[opened] {res.opened}", flush=True)
        return
    verdict = "ok" if took < OPENED_TASK_TARGET_S else "SLOW"
    note = (f" (job {job['state']}: {job.get('done')}/{job.get('total')} done when opened)" if running
            else " (no job queued or running: not a measurement under load)")
    res.opened = (f"{took:.2f} s for task {task_id} (target < {OPENED_TASK_TARGET_S:.0f} s: {verdict}), "
                  f"{held} prediction(s) shown{note}")
    print(f"[opened] task {task_id} opened during the job: {res.opened}", flush=True)


def poll_until_all_predicted(label_studio, backend, project_id: int, t_click: float, cap_s: float,
                             res: Results) -> None:
    n = res.tasks
    while True:
        t_poll = time.perf_counter()
        counts = prediction_counts(label_studio, project_id)
        held = sum(c > 0 for c in counts.values())
        job = job_progress(backend, project_id)
        res.last_job = job
        since = time.perf_counter() - t_click
        line = (f"[poll] +{since:6.1f} s  {held}/{n} tasks hold a prediction  |  {describe_job(job)}  "
                f"(poll took {time.perf_counter() - t_poll:.1f} s)")
        print(line, flush=True)
        res.poll_lines.append(line)
        res.held_at_end = held
        res.multi_predicted = sorted(t for t, c in counts.items() if c > 1)
        if held >= n:
            res.all_predicted_s = since
            return
        if since > cap_s:
            print(f"[poll] giving up after {since:.0f} s (cap {cap_s:.0f} s)", flush=True)
            return
        time.sleep(max(0.0, POLL_INTERVAL_S - (time.perf_counter() - t_poll)))


def run(args, workdir: Path) -> Results:
    n, latency_s = args.tasks, args.latency_ms / 1000
    res = Results(tasks=n)
    cap_s = (2 * n / args.concurrency) * latency_s + 300
    print(f"[setup] data folder {workdir}", flush=True)
    t0 = time.perf_counter()
    label_studio = start_label_studio(workdir / "label-studio")
    print(f"[setup] Label Studio 1.23.2 at {label_studio.url} ({time.perf_counter() - t0:.0f} s to start)", flush=True)
    try:
        with FakeOpenAIServer(Behaviour(latency_ms=args.latency_ms)) as judge:
            backend = start_backend(workdir / "backend", backend_env(judge, label_studio, args))
            print(f"[setup] backend at {backend.url} (embedded job queue, one worker); fake judge at {judge.base_url} "
                  f"({args.latency_ms:.0f} ms per request)", flush=True)
            try:
                ls = LabelStudio(base_url=label_studio.url, api_key=label_studio.token, timeout=300)
                t0 = time.perf_counter()
                project_id = create_project(ls, n)
                ls.ml.create(project=project_id, url=backend.url, title="rlthf")
                last_task = max(prediction_counts(label_studio, project_id))  # the task the job reaches last
                print(f"[setup] project {project_id}: {n} tasks, backend connected "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
                judge.reset_stats()
                measure(label_studio, backend, project_id, last_task, cap_s, res)
                res.judge_requests = judge.stats.requests
                seen = Counter(str(b.get("messages")) for b in judge.stats.bodies)
                res.distinct_prompts = len(seen)
                res.asked_twice = sorted({_pair_id(prompt) for prompt, k in seen.items() if k > 1})
            except BaseException:
                print(f"--- backend log (last lines) ---\n{backend.process.log_tail()}", file=sys.stderr)
                raise
            finally:
                backend.stop()
    finally:
        label_studio.stop()
    return res


def measure(label_studio, backend, project_id: int, last_task: int, cap_s: float, res: Results) -> None:
    print("[click] Retrieve Predictions on all tasks ...", flush=True)
    t_click = time.perf_counter()
    res.click_s, res.click_detail = click_retrieve_predictions(label_studio, project_id)
    print(f"[click] answered in {res.click_s:.1f} s: {res.click_detail}", flush=True)
    # The annotator opens a task at once; the first poll counts what the click stored meanwhile.
    opener = threading.Thread(target=measure_opened_task, args=(label_studio, backend, project_id, last_task, res),
                              daemon=True)
    opener.start()
    counts = prediction_counts(label_studio, project_id)
    res.held_at_click = sum(c > 0 for c in counts.values())
    job = job_progress(backend, project_id)
    res.job_total = job.get("total") if job else 0
    print(f"[click] {res.held_at_click} tasks held a prediction at the first look "
          f"(+{time.perf_counter() - t_click:.1f} s); the background job took {res.job_total}", flush=True)
    opener.join()
    poll_until_all_predicted(label_studio, backend, project_id, t_click, cap_s, res)


def summary(args, res: Results) -> str:
    n, latency_s = args.tasks, args.latency_ms / 1000
    target = (2 * n / args.concurrency) * latency_s + 60
    click_ok = res.click_s is not None and res.click_s < LS_ML_TIMEOUT_PREDICT_S
    by_click = None if res.job_total is None else n - res.job_total
    if res.all_predicted_s is None:
        everything = f"NOT REACHED: {res.held_at_end}/{n} tasks hold a prediction"
    else:
        verdict = "ok" if res.all_predicted_s <= target else "over target"
        everything = f"{res.all_predicted_s:.1f} s (target {target:.0f} s: {verdict})"
    lines = [
        "=" * 78,
        f"Retrieve Predictions on {n} tasks: judge latency {args.latency_ms:.0f} ms, concurrency {args.concurrency}, "
        f"predict budget {args.budget_s:g} s, embedded job queue",
        f"  click answered after            {res.click_s:.1f} s (< {LS_ML_TIMEOUT_PREDICT_S:.0f} s ML_TIMEOUT_PREDICT: "
        f"{'ok' if click_ok else 'NO'})",
        f"  predicted by the click itself    {by_click} tasks (background job: {res.job_total}); "
        f"{res.held_at_click} held one at the first look",
        f"  every task holds a prediction    {everything}",
        f"  opened task during the job       {res.opened}",
        f"  judge requests                   {res.judge_requests} (expected {2 * n}), "
        f"{res.distinct_prompts} distinct prompts; pairs asked more than once: {_ids(res.asked_twice)}",
        f"  tasks with > 1 prediction        {_ids(res.multi_predicted)}",
        f"  last job progress                {describe_job(res.last_job)}",
        "=" * 78,
    ]
    return "\n".join(lines)


def _ids(ids: list[int]) -> str:
    return f"{len(ids)}" + (f" (ids {ids[:10]}{' ...' if len(ids) > 10 else ''})" if ids else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=1000.0, help="the fake judge's latency per request")
    parser.add_argument("--concurrency", type=int, default=8, help="RLTHF_JUDGE_CONCURRENCY")
    parser.add_argument("--budget-s", type=float, default=60.0, help="RLTHF_PREDICT_BUDGET_S")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where Label Studio's and the backend's data go (a fresh subfolder; "
                             "default: a temporary folder, removed after a run that did not crash)")
    args = parser.parse_args()
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-retrieve-", dir=args.data_dir))
    res = run(args, workdir)  # a crash propagates: non-zero exit, data folder kept for its logs
    print(summary(args, res), flush=True)
    if args.data_dir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
