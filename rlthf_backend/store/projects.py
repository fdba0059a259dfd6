"""Each project's snapshot of Label Studio (:class:`ProjectSnapshot`) in the shared database.

A round loads the snapshot, reads only what changed in Label Studio, and saves back only the
rows that changed: O(changed) writes per round, whatever the size of the project. A full read
replaces the project's rows in one transaction. Every host reads the same rows, so a worker on
another host starts from where the last round, wherever it ran, left off.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Engine

from rlthf_backend.store.schema import project_sync, project_tasks
from rlthf_backend.store.snapshots import ProjectSnapshot, ShownPrediction, TaskRow

#: Rows per INSERT / DELETE statement (well under SQLite's and PostgreSQL's parameter limits).
_CHUNK = 500


class ProjectStore:
    """Load and save :class:`ProjectSnapshot` s by project id."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, project_id: int) -> ProjectSnapshot | None:
        """The stored snapshot, or None when this project was never read whole."""
        with self.engine.connect() as conn:
            head = conn.execute(select(project_sync).where(project_sync.c.project_id == project_id)).first()
            if head is None:
                return None
            snapshot = ProjectSnapshot(project_id=project_id, config_key=head.config_key, cursor=head.cursor,
                                       queue_version=head.queue_version)
            result = conn.execution_options(yield_per=5000).execute(
                select(project_tasks).where(project_tasks.c.project_id == project_id))
            for r in result:
                snapshot.rows[r.task_id] = _row_from_db(r)
        return snapshot

    def save(self, snapshot: ProjectSnapshot, changed: Sequence[int], removed: Sequence[int],
             *, replace: bool = False) -> None:
        """Write ``changed`` rows, drop ``removed`` ones and the snapshot's head, in one transaction;
        ``replace`` rewrites every row (after a full read)."""
        pid = snapshot.project_id
        with self.engine.begin() as conn:
            if replace:
                conn.execute(delete(project_tasks).where(project_tasks.c.project_id == pid))
                changed, removed = list(snapshot.rows), []
            for chunk in _chunks(list(removed)):
                conn.execute(delete(project_tasks).where(project_tasks.c.project_id == pid,
                                                         project_tasks.c.task_id.in_(chunk)))
            if not replace:
                for chunk in _chunks([t for t in changed if t in snapshot.rows]):
                    conn.execute(delete(project_tasks).where(project_tasks.c.project_id == pid,
                                                             project_tasks.c.task_id.in_(chunk)))
            rows = [_row_to_db(pid, snapshot.rows[t]) for t in changed if t in snapshot.rows]
            for chunk in _chunks(rows):
                conn.execute(insert(project_tasks), chunk)
            _save_head(conn, snapshot)

    def forget(self, project_id: int) -> None:
        """Drop the project's snapshot: the next round reads it whole."""
        with self.engine.begin() as conn:
            conn.execute(delete(project_tasks).where(project_tasks.c.project_id == project_id))
            conn.execute(delete(project_sync).where(project_sync.c.project_id == project_id))


def _save_head(conn: Connection, snapshot: ProjectSnapshot) -> None:
    values = {"config_key": snapshot.config_key, "cursor": snapshot.cursor,
              "queue_version": snapshot.queue_version, "saved_at": time.time()}
    done = conn.execute(update(project_sync).where(project_sync.c.project_id == snapshot.project_id).values(**values))
    if done.rowcount == 0:
        conn.execute(insert(project_sync).values(project_id=snapshot.project_id, **values))


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _row_to_db(project_id: int, row: TaskRow) -> dict:
    shown = row.shown
    return {
        "project_id": project_id, "task_id": row.task_id, "data": json.dumps(row.data, default=str),
        "updated_at": row.updated_at, "total_annotations": row.total_annotations,
        "cancelled_annotations": row.cancelled_annotations, "human": row.human,
        "votes": json.dumps(row.votes), "annotators": json.dumps(row.annotators, default=str),
        "problem": row.problem,
        "shown_prediction_id": shown.prediction_id if shown else None,
        "shown_label": shown.label if shown else None,
        "shown_score": shown.score if shown else None,
    }


def _row_from_db(r) -> TaskRow:
    shown = None
    if r.shown_prediction_id is not None:
        shown = ShownPrediction(prediction_id=r.shown_prediction_id, label=r.shown_label, score=r.shown_score)
    return TaskRow(
        task_id=r.task_id, data=json.loads(r.data), updated_at=r.updated_at, total_annotations=r.total_annotations,
        cancelled_annotations=r.cancelled_annotations, human=r.human, votes=json.loads(r.votes),
        annotators=json.loads(r.annotators), problem=r.problem, shown=shown,
    )
