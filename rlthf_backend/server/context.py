"""What the HTTP layer holds per process: settings, the judge (built lazily), background chores."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from typing import Any

from rlthf_backend.core.judges.base import Judge
from rlthf_backend.jobs.dispatch import TrainingDispatcher
from rlthf_backend.app.jobs import jobs_config
from rlthf_backend.app.judges import process_judge
from rlthf_backend.app.project import label_studio, model_registry
from rlthf_backend.app.settings import Settings

log = logging.getLogger(__name__)

#: Threads that put our auth header on Label Studio's webhooks (each fix-up may wait ~15 s).
WEBHOOK_FIX_THREADS = 2
#: Projects waiting for a fix-up at most; more are skipped (the next /setup of each asks again).
WEBHOOK_FIX_BACKLOG = 64
#: Projects whose last check time is remembered (oldest forgotten first).
WEBHOOK_FIX_REMEMBERED = 10_000


class BackendContext:
    def __init__(self, settings: Settings, judge: Judge | None = None) -> None:
        self.settings = settings
        self._judge = judge
        self._judge_lock = threading.Lock()
        self._webhook_fix_lock = threading.Lock()
        self._webhook_fix_checked: OrderedDict[int, float] = OrderedDict()  # project -> monotonic time
        self._webhook_fix_queue: queue.Queue[int] = queue.Queue(maxsize=WEBHOOK_FIX_BACKLOG)
        self._webhook_fix_threads: list[threading.Thread] = []
        self.started_at = time.time()
        self.jobs = TrainingDispatcher(jobs_config(settings))
        self.registry = model_registry(settings)

    @property
    def judge(self) -> Judge:
        """The configured judge, built on first use (a local model may take tens of seconds)."""
        if self._judge is None:
            with self._judge_lock:
                if self._judge is None:
                    self._judge = process_judge(self.settings)
        return self._judge

    @property
    def model_version(self) -> str:
        return self.judge.model_version(self.settings.model_title)

    def judge_later(self, project_id: int | None, task_ids: list[Any], model_version: str) -> str | None:
        """Queue the background judging of the tasks a /predict answered "not yet" (their predictions
        then reach Label Studio without another request); the job id, or None with one log line why not."""
        why = None
        if project_id is None:
            why = "the request named no project"
        elif not self.settings.label_studio_api_key:
            why = "LABEL_STUDIO_API_KEY is not set (the job writes predictions to Label Studio at LABEL_STUDIO_URL)"
        ids = [t for t in task_ids if isinstance(t, int) and not isinstance(t, bool)]
        if why is None and not ids:
            why = "they have no task ids"
        if why is None:
            try:
                job_id = self.jobs.submit_prelabel(project_id, ids, model_version)  # type: ignore[arg-type]
            except Exception as exc:  # Redis gone: the answer must still leave
                why = f"the job could not be queued: {exc}"
            else:
                log.info("project %s: %d tasks not judged within the /predict budget -> background job %s",
                         project_id, len(ids), job_id)
                return job_id
        log.warning("project %s: %d tasks answered \"not yet\" are not judged in the background: %s; "
                    "run `rlthf-backend prelabel --project ID`", project_id, len(task_ids), why)
        return None

    def judge_cache_health(self) -> dict[str, Any]:
        """For ``/health``: whether judgments are cached, and why not (building a judge is cheap)."""
        try:
            cache = getattr(self.judge, "cache", None)
        except Exception as exc:  # a judge that cannot be built: /health must still answer
            return {"ok": False, "detail": f"the judge cannot be built: {type(exc).__name__}: {exc}"}
        if cache is None:
            return {"ok": True, "detail": "this judge's verdicts are not cached"}
        return cache.health()

    def schedule_webhook_auth_fix(self, project_id: int, recheck_after_s: float = 300.0) -> bool:
        """Make sure Label Studio's webhook for this project carries our basic-auth header.

        Runs in a background thread (``/setup`` must answer within Label Studio's 3 s) and retries
        for a while, since Label Studio creates the webhook only after the backend was validated.
        A fixed pool of threads works a bounded backlog, so any number of ``/setup`` calls costs
        the same threads. Returns whether a check was scheduled.
        """
        s = self.settings
        if not (s.auth_enabled and s.label_studio_api_key):
            return False
        with self._webhook_fix_lock:
            last = self._webhook_fix_checked.get(project_id)
            if last is not None and time.monotonic() - last < recheck_after_s:
                return False
            try:
                self._webhook_fix_queue.put_nowait(project_id)
            except queue.Full:
                log.warning("project %s: %d webhook fix-ups already waiting; skipped (the next /setup retries)",
                            project_id, WEBHOOK_FIX_BACKLOG)
                return False
            self._webhook_fix_checked[project_id] = time.monotonic()
            self._webhook_fix_checked.move_to_end(project_id)
            while len(self._webhook_fix_checked) > WEBHOOK_FIX_REMEMBERED:
                self._webhook_fix_checked.popitem(last=False)
            while len(self._webhook_fix_threads) < WEBHOOK_FIX_THREADS:
                thread = threading.Thread(target=self._work_webhook_fixes, daemon=True,
                                          name=f"webhook-auth-{len(self._webhook_fix_threads)}")
                thread.start()
                self._webhook_fix_threads.append(thread)
        return True

    def _work_webhook_fixes(self) -> None:
        while True:
            self._fix_webhook_auth(self._webhook_fix_queue.get())

    def _fix_webhook_auth(self, project_id: int, attempts: int = 10, delay_s: float = 1.5) -> None:
        from rlthf_backend.labelstudio.client import basic_auth_header, ensure_webhook_auth

        s = self.settings
        header = basic_auth_header(s.basic_auth_user or "", s.basic_auth_pass.get_secret_value())  # type: ignore[union-attr]
        try:
            ls = label_studio(s, timeout=10)
            for _ in range(attempts):
                if ensure_webhook_auth(ls, project_id, header):
                    return
                time.sleep(delay_s)
            log.info("project %s: no webhook without our auth header found (already set, or none yet)", project_id)
        except Exception as exc:  # a background chore: report, never crash the worker
            log.warning("project %s: could not set the webhook auth header: %s", project_id, exc)
            with self._webhook_fix_lock:
                self._webhook_fix_checked.pop(project_id, None)
