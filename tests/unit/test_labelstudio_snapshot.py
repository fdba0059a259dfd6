"""The snapshot of a project's tasks that incremental reads keep: a task's row, the pool built from
the rows, the label config's key, timestamps and the read cursor."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

from rlthf_backend.core.curation.state import HUMAN_A, HUMAN_NONE
from rlthf_backend.labelstudio.config import parse_label_config
from rlthf_backend.labelstudio.results import result_for_label
from rlthf_backend.labelstudio.pool import pool_from_rows
from rlthf_backend.labelstudio.snapshot import config_key, stamp_text, task_row
from rlthf_backend.store.snapshots import ProjectSnapshot, ShownPrediction
from rlthf_backend.labelstudio.sync import settled_cursor, stamped_after

CFG = parse_label_config((Path(__file__).resolve().parents[2] / "label_config" / "choices.xml").read_text())


def task(tid, *, annotations=(), predictions=(), data=None, updated="2026-12-01T10:00:00.000000Z", **extra):
    data = {"prompt": "p", "answer1": "x", "answer2": "y"} if data is None else data
    return {"id": tid, "data": data, "annotations": list(annotations), "predictions": list(predictions),
            "updated_at": updated, **extra}


def test_a_task_row_keeps_the_label_the_counters_and_the_queue_versions_prediction():
    ann = {"result": result_for_label(CFG, "a"), "completed_by": 7, "was_cancelled": False}
    preds = [{"id": 5, "model_version": "old", "result": result_for_label(CFG, "b"), "score": 0.1},
             {"id": 9, "model_version": "q1", "result": result_for_label(CFG, "b"), "score": 0.7},
             {"id": 8, "model_version": "q1", "result": result_for_label(CFG, "a"), "score": 0.6}]
    row = task_row(CFG, task(3, annotations=[ann], predictions=preds, total_annotations=1,
                             cancelled_annotations=2), queue_version="q1")
    assert (row.human, row.votes, row.annotators) == (HUMAN_A, ["a"], [7])
    assert (row.total_annotations, row.cancelled_annotations) == (1, 2)
    assert row.shown == ShownPrediction(prediction_id=9, label="b", score=0.7)  # the newest of q1
    assert task_row(CFG, task(3, predictions=preds), queue_version=None).shown is None


def test_a_task_that_does_not_fit_the_config_is_kept_as_a_problem_and_counted():
    snap = ProjectSnapshot(project_id=1, config_key=config_key(CFG))
    snap.apply([task_row(CFG, task(2, data={"prompt": "p"}, total_annotations=1), None),
                task_row(CFG, task(1), None)])
    pool = pool_from_rows(CFG, snap.rows.values())
    assert pool.task_ids == [1] and "answer1" in pool.skipped[2]
    assert snap.totals() == (2, 1, 0)  # problem tasks count: Label Studio counts them too
    assert pool.human == [HUMAN_NONE]


def test_the_pool_is_in_task_id_order_whatever_order_rows_arrive_in():
    snap = ProjectSnapshot(project_id=1, config_key="k")
    snap.apply([task_row(CFG, task(t, data={"prompt": f"p{t}", "answer1": "x", "answer2": "y"}), None)
                for t in (5, 2, 9)])
    snap.apply([task_row(CFG, task(2, data={"prompt": "new", "answer1": "x", "answer2": "y"}), None)])
    assert snap.remove([9, 404]) == [9]
    pool = pool_from_rows(CFG, snap.rows.values())
    assert pool.task_ids == [2, 5] and pool.pairs[0].prompt == "new"


def test_the_label_config_key_changes_with_the_configs_meaning():
    other = parse_label_config((Path(__file__).resolve().parents[2] / "label_config" / "pairwise.xml").read_text())
    assert config_key(CFG) == config_key(parse_label_config(
        (Path(__file__).resolve().parents[2] / "label_config" / "choices.xml").read_text()))
    assert config_key(CFG) != config_key(other)


def test_the_cursor_reaches_back_only_while_a_change_may_still_be_in_flight():
    newest = "2026-12-01T10:00:05.250000Z"
    at = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    assert settled_cursor(newest, None, 10) == "2026-12-01T09:59:55.250000Z"  # Label Studio's clock unknown
    assert settled_cursor(newest, at("2026-12-01T10:00:09Z"), 10) == "2026-12-01T09:59:55.250000Z"
    assert settled_cursor(newest, at("2026-12-01T10:00:17Z"), 10) == newest  # long committed
    assert settled_cursor(None, at("2026-12-01T10:00:17Z"), 10) is None  # no tasks yet
    item = stamped_after(newest)["filters"]["items"][0]
    assert (item["filter"], item["operator"], item["value"]) == ("filter:tasks:updated_at", "greater", newest)


def test_timestamps_become_fixed_width_utc_text_that_orders_like_time():
    assert stamp_text("2026-12-01T10:00:05Z") == "2026-12-01T10:00:05.000000Z"
    assert stamp_text(datetime(2026, 12, 1, 11, 0, 5, 1, tzinfo=timezone(timedelta(hours=1)))) == \
        "2026-12-01T10:00:05.000001Z"
    assert stamp_text("2026-12-01T10:00:05.5+00:00") > stamp_text("2026-12-01T10:00:05.25Z")
