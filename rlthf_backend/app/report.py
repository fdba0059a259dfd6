"""``build_report``: a project's curation report, from its registry folder and (for the queue's
progress only) Label Studio."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from rlthf_backend.app.project import label_studio, model_registry
from rlthf_backend.app.settings import Settings
from rlthf_backend.report import load_report_data, render_report

log = logging.getLogger(__name__)


def answered_in_label_studio(settings: Settings, task_ids: list[int], timeout_s: float = 5.0) -> Collection[int] | None:
    """Which of ``task_ids`` hold a submitted (not skipped) annotation, asked task by task (the
    queue shown is short); None when Label Studio is not configured or does not answer, so the
    page still renders."""
    if not settings.label_studio_api_key or not task_ids:
        return None
    try:
        ls = label_studio(settings, timeout=timeout_s)
        return {t for t in task_ids if any(not a.was_cancelled for a in ls.annotations.list(id=t))}
    except Exception as exc:  # a picture without progress beats no picture
        log.warning("report: could not ask Label Studio which queued tasks are answered: %s", exc)
        return None


def build_report(settings: Settings, project_id: int, ask_label_studio: bool = True) -> str:
    """The report page of one project (``ask_label_studio``: mark the queued tasks already answered)."""
    answered = (lambda ids: answered_in_label_studio(settings, ids)) if ask_label_studio else None
    data = load_report_data(model_registry(settings), project_id, settings.label_studio_url, answered)
    return render_report(data, time.strftime("%Y-%m-%d %H:%M:%S %Z"))
