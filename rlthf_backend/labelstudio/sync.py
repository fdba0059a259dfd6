"""Bringing a :class:`ProjectSnapshot` up to date with Label Studio: whole, or only what changed.

Why this cannot miss a change. Label Studio 1.23 stamps a task's ``updated_at`` whenever one of
its annotations is created, updated, skipped or deleted (one by one or by a Data Manager action),
and whenever a prediction of it is created one by one or updated (all seen on a live 1.23.2). A
read first asks for the project's newest stamp; every later change is stamped after it. Label
Studio stamps when it saves and commits when the request ends, so a change stamped just before
that newest stamp may still be in flight: unless the newest stamp is older than ``overlap_s`` by
Label Studio's own clock, the cursor is set that much earlier and those tasks are looked at again
(cheaply: an incremental read lists the stamps of the tasks stamped after the cursor and reads
whole only those whose stamp differs from the stored one). Then it checks the result against the
project's own counters: number of tasks, submitted and skipped annotations. Deleted tasks carry
no stamp; they show as a task count above Label Studio's and are found by a light listing of
ids. A mismatch that reading the newly stamped tasks again does not explain means something
changed without a stamp (e.g. a database edited by hand), and the read falls back to a full one;
while people keep annotating faster than a read, the check waits for a quieter training. Webhooks are not used to find
changes: Label Studio sends them once, with a 1 s timeout, and never retries. Bulk-imported
predictions do not stamp their tasks; the backend learns its own from the predictions list.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from label_studio_sdk import LabelStudio

from rlthf_backend.labelstudio.client import iter_tasks
from rlthf_backend.labelstudio.config import PairwiseConfig
from rlthf_backend.labelstudio.snapshot import config_key, shown_prediction, stamp_text, task_row
from rlthf_backend.store.snapshots import ProjectSnapshot

log = logging.getLogger(__name__)

#: Seconds an incremental read reaches back before its cursor: Label Studio stamps a task when it
#: saves it and commits at the end of the request, so a change can become visible a little after a
#: newer stamp was read (a bulk request takes seconds at most).
OVERLAP_S = 10.0


#: Incremental reads in a row while people keep annotating, before a training goes on without the
#: counter check (each read must bring newly stamped tasks; one that brings none means a full read).
MAX_ATTEMPTS = 5
#: Task ids per request when reading chosen tasks whole.
_SELECTED_CHUNK = 500


@dataclass(frozen=True)
class ProjectCounts:
    """Label Studio's counters of a project: tasks, submitted and skipped annotations."""

    tasks: int
    annotations: int
    skipped: int

    @classmethod
    def of(cls, project: Any) -> ProjectCounts:
        return cls(int(project.task_number or 0), int(project.total_annotations_number or 0),
                   int(project.skipped_annotations_number or 0))


@dataclass
class SyncReport:
    """What a read did: ``mode`` full or incremental, why, and which task ids it changed."""

    mode: str
    reason: str
    tasks_read: int = 0
    changed: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    #: The cursor is the newest stamp itself (nothing could still be committing behind it); when not,
    #: the next read reaches back (a training settles it at its end, off the queue's critical path).
    settled: bool = True


def newest_stamp(ls: LabelStudio, project_id: int) -> str | None:
    """The newest ``updated_at`` among the project's tasks (Label Studio's clock), or None."""
    page = ls.tasks.list(project=project_id, page=1, page_size=1, include="id,updated_at",
                         query=json.dumps({"ordering": ["-tasks:updated_at"]}))
    first = (page.items or [None])[0]
    newest = first.model_dump() if hasattr(first, "model_dump") else first
    return stamp_text(newest["updated_at"]) if newest and newest.get("updated_at") else None


def settled_cursor(newest: str | None, server_time: datetime | None, overlap_s: float) -> str | None:
    """The cursor a read that began when ``newest`` was the newest stamp leaves: ``newest`` itself
    once Label Studio's clock (``server_time``, to the second) is ``overlap_s`` past it, else
    ``overlap_s`` earlier (a change stamped before ``newest`` may not have been committed yet)."""
    if newest is None:
        return None
    stamp = datetime.fromisoformat(newest.replace("Z", "+00:00"))
    if server_time is not None and (server_time - stamp).total_seconds() >= overlap_s + 1.0:
        return newest
    return stamp_text(stamp - timedelta(seconds=overlap_s))


def stamped_after(cursor: str) -> dict[str, Any]:
    """A Data Manager query for the tasks stamped after ``cursor``."""
    return {"filters": {"conjunction": "and", "items": [
        {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": cursor}]}}


def sync_project(
    ls: LabelStudio,
    project: Any,
    config: PairwiseConfig,
    stored: ProjectSnapshot | None,
    *,
    full: bool = False,
    overlap_s: float = OVERLAP_S,
    server_time: Callable[[], datetime | None] = lambda: None,
    adopt_queue_version: str | None = None,
) -> tuple[ProjectSnapshot, SyncReport]:
    """The project's snapshot brought up to date, and what the read did.

    A full read happens when asked, when nothing is stored, or when the stored snapshot was
    read under another label config; otherwise only changed tasks are read (module docstring).
    ``server_time`` gives Label Studio's clock as of the latest answer (None: unknown).
    ``adopt_queue_version``: with no stored snapshot, the model version whose predictions order the
    label stream, if the backend wrote them (the project's model version, when it is the backend's):
    adopted if the project holds predictions of it.
    """
    key = config_key(config)
    why_full = ("asked for" if full else "no stored state" if stored is None
                else "label config changed" if stored.config_key != key
                else "no cursor" if stored.cursor is None else None)
    attempts = 0
    report = SyncReport(mode="incremental", reason="")
    while why_full is None:
        assert stored is not None
        attempts += 1
        read_before = report.tasks_read
        snapshot = _read_changes(ls, project.id, config, stored, overlap_s, server_time, report)
        # Counters read after the changes: an annotation made in between is caught by the next try.
        counts = ProjectCounts.of(ls.projects.get(id=project.id))
        problem = _mismatch(snapshot, counts)
        if problem and snapshot.totals()[0] > counts.tasks:
            present = {int(t["id"]) for t in iter_tasks(ls, project.id, include="id")}
            report.removed += snapshot.remove([t for t in list(snapshot.rows) if t not in present])
            problem = _mismatch(snapshot, counts)
        if problem is None:
            return snapshot, report
        if attempts > 1 and report.tasks_read == read_before:
            # Nothing newly stamped explains the difference: something changed without a stamp.
            why_full = f"stored state disagrees with Label Studio ({problem})"
            log.warning("project %s: %s; reading it whole", project.id, why_full)
        elif attempts == MAX_ATTEMPTS:
            # People keep annotating faster than a read: every change read is stamped, so the snapshot is
            # right up to its cursor; a quieter training checks the counters.
            report.reason += f"; counters not checked (Label Studio kept changing: {problem})"
            return snapshot, report
    if stored is not None:
        queue_version = stored.queue_version if stored.config_key == key else None
    else:
        queue_version = adopt_queue_version
    snapshot = ProjectSnapshot(project_id=project.id, config_key=key, queue_version=queue_version)
    report = SyncReport(mode="full", reason=why_full)
    newest = newest_stamp(ls, project.id)
    before = settled_cursor(newest, server_time(), overlap_s)
    report.changed = snapshot.apply(task_row(config, t, queue_version) for t in iter_tasks(ls, project.id))
    report.tasks_read = len(report.changed)
    if snapshot.totals()[0] > ProjectCounts.of(ls.projects.get(id=project.id)).tasks:
        # A task deleted after its page was read: Label Studio no longer has it, so neither may we.
        present = {int(t["id"]) for t in iter_tasks(ls, project.id, include="id")}
        gone = snapshot.remove([t for t in list(snapshot.rows) if t not in present])
        report.changed = [t for t in report.changed if t not in gone]
    snapshot.cursor, report.settled = before, newest is None or before == newest
    if stored is None and not any(r.shown for r in snapshot.rows.values()):
        snapshot.queue_version = None
    if stored is not None:
        report.removed = [t for t in stored.rows if t not in snapshot.rows]
    return snapshot, report


def _read_changes(ls: LabelStudio, project_id: int, config: PairwiseConfig, stored: ProjectSnapshot,
                  overlap_s: float, server_time: Callable[[], datetime | None], report: SyncReport) -> ProjectSnapshot:
    """Stamps of the tasks stamped after the cursor (a light listing), then the whole of those whose
    stamp differs from the stored one: the cursor's reach-back costs a listing, not a re-read."""
    assert stored.cursor is not None
    report.reason = f"tasks stamped after {stored.cursor}"
    newest = newest_stamp(ls, project_id)
    before = settled_cursor(newest, server_time(), overlap_s)
    stamps = {int(t["id"]): stamp_text(t.get("updated_at"))
              for t in iter_tasks(ls, project_id, query=stamped_after(stored.cursor), include="id,updated_at")}
    moved = [t for t, stamp in stamps.items() if t not in stored.rows or stored.rows[t].updated_at != stamp]
    rows = []
    for start in range(0, len(moved), _SELECTED_CHUNK):
        chosen = {"selectedItems": {"all": False, "included": moved[start:start + _SELECTED_CHUNK]}}
        rows += [task_row(config, t, stored.queue_version) for t in iter_tasks(ls, project_id, query=chosen)]
    report.tasks_read += len(rows)
    report.changed = list(dict.fromkeys(report.changed + stored.apply(rows)))
    stored.cursor = max(stored.cursor, before or "")
    report.settled = newest is None or stored.cursor >= newest
    return stored


def _mismatch(snapshot: ProjectSnapshot, counts: ProjectCounts) -> str | None:
    tasks, annotations, skipped = snapshot.totals()
    if (tasks, annotations, skipped) == (counts.tasks, counts.annotations, counts.skipped):
        return None
    return (f"stored {tasks} tasks / {annotations} annotations / {skipped} skipped, Label Studio has "
            f"{counts.tasks} / {counts.annotations} / {counts.skipped}")


def read_queue_predictions(ls: LabelStudio, project_id: int, config: PairwiseConfig,
                           snapshot: ProjectSnapshot) -> list[int]:
    """Learn the queue version's prediction of every task in one request, after a full write.

    Bulk-imported predictions do not stamp their tasks (seen on 1.23.2), so the next incremental
    read would never see them; this is how the snapshot learns their ids (a later round updates
    them in place). Returns the task ids whose shown prediction changed.
    """
    by_task: dict[int, list[dict[str, Any]]] = {}
    for p in ls.predictions.list(project=project_id):
        raw = p.model_dump() if hasattr(p, "model_dump") else dict(p)
        if raw.get("model_version") == snapshot.queue_version and raw.get("task") in snapshot.rows:
            by_task.setdefault(int(raw["task"]), []).append(raw)
    changed = []
    for task_id, row in snapshot.rows.items():
        if row.problem is not None:
            continue
        shown = shown_prediction(config, by_task.get(task_id, ()), snapshot.queue_version)
        if shown != row.shown:
            row.shown = shown
            changed.append(task_id)
    return changed
