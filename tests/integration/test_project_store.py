"""Project snapshots in the shared database, on SQLite and on PostgreSQL: what a round saves is
what the next round (on any host) loads, and a round writes only the rows that changed."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from rlthf_backend.core.curation.state import HUMAN_B, HUMAN_NONE
from rlthf_backend.store.snapshots import ProjectSnapshot, ShownPrediction, TaskRow
from rlthf_backend.store.database import open_database
from rlthf_backend.store.projects import ProjectStore

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> ProjectStore:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
        with open_database(url).engine.begin() as connection:
            connection.execute(text("TRUNCATE project_sync, project_tasks"))
    return ProjectStore(open_database(url).engine)


def row(task_id: int, **changes) -> TaskRow:
    base = dict(task_id=task_id, data={"prompt": f"p{task_id}", "answer1": "x", "answer2": "y", "n": [1, "é"]},
                updated_at=f"2026-12-01T10:00:{task_id % 60:02d}.000000Z")
    return TaskRow(**{**base, **changes})


def snapshot(n: int, project_id: int = 7) -> ProjectSnapshot:
    snap = ProjectSnapshot(project_id=project_id, config_key="cfg", cursor="2026-12-01T10:00:00.000000Z",
                           queue_version="v1")
    snap.apply(row(t) for t in range(1, n + 1))
    return snap


def test_a_snapshot_round_trips_unchanged(store):
    assert store.load(7) is None  # never read: the first training reads the project whole
    snap = snapshot(3)
    snap.rows[2] = row(2, human=HUMAN_B, votes=["b", "b"], annotators=[4, 5], total_annotations=2,
                       cancelled_annotations=1, shown=ShownPrediction(99, "a", 0.25))
    snap.rows[3] = row(3, problem="task 3: data has no field 'answer2'")
    store.save(snap, list(snap.rows), [], replace=True)
    loaded = store.load(7)
    assert loaded == snap
    assert loaded.rows[1].human == HUMAN_NONE and loaded.rows[2].shown.score == 0.25


def test_an_incremental_save_writes_only_the_changed_rows(store):
    snap = snapshot(500)
    store.save(snap, list(snap.rows), [], replace=True)
    inserted: list[int] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO PROJECT_TASKS"):
            inserted.append(len(parameters) if executemany else 1)

    try:
        snap.rows[10] = row(10, human=HUMAN_B, votes=["b"], total_annotations=1)
        snap.apply([row(501)])
        removed = snap.remove([20, 21])
        snap.cursor = "2026-12-01T11:00:00.000000Z"
        store.save(snap, [10, 501], removed)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert sum(inserted) == 2
    loaded = store.load(7)
    assert loaded == snap and 20 not in loaded.rows and loaded.rows[10].votes == ["b"]


def test_projects_are_kept_apart_and_forgetting_one_leaves_the_other(store):
    a, b = snapshot(2, project_id=1), snapshot(3, project_id=2)
    store.save(a, list(a.rows), [], replace=True)
    store.save(b, list(b.rows), [], replace=True)
    store.forget(1)
    assert store.load(1) is None and store.load(2) == b
