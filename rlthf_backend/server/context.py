"""What the HTTP layer holds per process: settings, the judge (built lazily), background chores."""

from __future__ import annotations

import logging
import threading
import time

from rlthf_backend.core.judges import make_judge
from rlthf_backend.core.judges.base import Judge
from rlthf_backend.jobs.dispatch import TrainingDispatcher
from rlthf_backend.registry import ModelRegistry
from rlthf_backend.settings import Settings

log = logging.getLogger(__name__)


class BackendContext:
    def __init__(self, settings: Settings, judge: Judge | None = None) -> None:
        self.settings = settings
        self._judge = judge
        self._judge_lock = threading.Lock()
        self._webhook_fix_lock = threading.Lock()
        self._webhook_fix_checked: dict[int, float] = {}  # project id -> monotonic time of last check
        self.started_at = time.time()
        self.jobs = TrainingDispatcher(settings)
        self.registry = ModelRegistry(settings.resolved_model_dir, settings.model_title)

    @property
    def judge(self) -> Judge:
        """The configured judge, built on first use (a local model may take tens of seconds)."""
        if self._judge is None:
            with self._judge_lock:
                if self._judge is None:
                    self._judge = make_judge(self.settings)
        return self._judge

    @property
    def model_version(self) -> str:
        return self.judge.model_version(self.settings.model_title)

    def schedule_webhook_auth_fix(self, project_id: int, recheck_after_s: float = 300.0) -> bool:
        """Make sure Label Studio's webhook for this project carries our basic-auth header.

        Runs in a background thread (``/setup`` must answer within Label Studio's 3 s) and retries
        for a while, since Label Studio creates the webhook only after the backend was validated.
        Returns whether a check was started.
        """
        s = self.settings
        if not (s.auth_enabled and s.label_studio_api_key):
            return False
        with self._webhook_fix_lock:
            last = self._webhook_fix_checked.get(project_id)
            if last is not None and time.monotonic() - last < recheck_after_s:
                return False
            self._webhook_fix_checked[project_id] = time.monotonic()
        threading.Thread(
            target=self._fix_webhook_auth, args=(project_id,), name=f"webhook-auth-{project_id}", daemon=True
        ).start()
        return True

    def _fix_webhook_auth(self, project_id: int, attempts: int = 10, delay_s: float = 1.5) -> None:
        from rlthf_backend.labelstudio.client import basic_auth_header, ensure_webhook_auth, make_client

        s = self.settings
        header = basic_auth_header(s.basic_auth_user or "", s.basic_auth_pass.get_secret_value())  # type: ignore[union-attr]
        try:
            ls = make_client(s, timeout=10)
            for _ in range(attempts):
                if ensure_webhook_auth(ls, project_id, header):
                    return
                time.sleep(delay_s)
            log.info("project %s: no webhook without our auth header found (already set, or none yet)", project_id)
        except Exception as exc:  # a background chore: report, never crash the worker
            log.warning("project %s: could not set the webhook auth header: %s", project_id, exc)
            with self._webhook_fix_lock:
                self._webhook_fix_checked.pop(project_id, None)
