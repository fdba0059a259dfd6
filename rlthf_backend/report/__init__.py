"""The curation report: the reward-margin curve, the rounds and the queue, as one HTML page.

``build_report(settings, project_id)`` reads the model registry, asks Label Studio only which of
the queued tasks are answered (the page renders without it), and returns the page;
``rlthf-backend report`` writes it, ``GET /report?project=ID`` serves it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from rlthf_backend.registry.versions import ModelRegistry
from rlthf_backend.report.data import ReportData, load_report_data
from rlthf_backend.report.html import render_report
from rlthf_backend.app.settings import Settings


log = logging.getLogger(__name__)


def answered_in_label_studio(settings: Settings, task_ids: list[int], timeout_s: float = 5.0) -> Collection[int] | None:
    """Which of ``task_ids`` hold a submitted (not skipped) annotation, asked task by task (the
    queue shown is short); None when Label Studio is not configured or does not answer, so the
    page still renders."""
    if not settings.label_studio_api_key or not task_ids:
        return None
    from rlthf_backend.labelstudio.client import make_client

    try:
        ls = make_client(settings, timeout=timeout_s)
        return {t for t in task_ids if any(not a.was_cancelled for a in ls.annotations.list(id=t))}
    except Exception as exc:  # a picture without progress beats no picture
        log.warning("report: could not ask Label Studio which queued tasks are answered: %s", exc)
        return None


def build_report(settings: Settings, project_id: int, ask_label_studio: bool = True) -> str:
    """The report page of one project (``ask_label_studio``: mark the queued tasks already answered)."""
    registry = ModelRegistry(settings.resolved_model_dir, settings.model_title)
    answered = (lambda ids: answered_in_label_studio(settings, ids)) if ask_label_studio else None
    data = load_report_data(registry, project_id, settings.label_studio_url, answered)
    return render_report(data, time.strftime("%Y-%m-%d %H:%M:%S %Z"))


__all__ = ["ReportData", "build_report", "load_report_data", "render_report"]
