"""The pure parts of incremental rounds: the fit budget, which predictions a round rewrites, and
the snapshot of a project's tasks."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlthf_backend.core.curation.state import HUMAN_A, HUMAN_NONE
from rlthf_backend.core.reward.factory import FitBudget
from rlthf_backend.labelstudio.config import parse_label_config
from rlthf_backend.labelstudio.queue_order import QueuedPrediction, queue_changes
from rlthf_backend.labelstudio.results import result_for_label
from rlthf_backend.labelstudio.pool import pool_from_rows
from rlthf_backend.labelstudio.snapshot import config_key, stamp_text, task_row
from rlthf_backend.store.snapshots import ProjectSnapshot, ShownPrediction
from rlthf_backend.labelstudio.sync import settled_cursor, stamped_after

CFG = parse_label_config((Path(__file__).resolve().parents[2] / "label_config" / "choices.xml").read_text())


# ---------------------------------------------------------------------------------- fit budget
def test_a_pool_within_the_budget_trains_on_everything():
    w = np.array([1.0, 3.0, 0.0, 1.0])
    assert np.array_equal(FitBudget(10, np.zeros(4, bool)).apply(w), w)
    assert np.array_equal(FitBudget(0, np.zeros(4, bool)).apply(w), w)  # 0: no limit


@given(n=st.integers(5, 400), cap=st.integers(1, 300), n_keep=st.integers(0, 50), seed=st.integers(0, 10))
@settings(max_examples=60, deadline=None)
def test_over_budget_keeps_every_human_pair_and_a_reweighted_sample_of_the_rest(n, cap, n_keep, seed):
    rng = np.random.default_rng(seed)
    w = np.where(rng.random(n) < 0.1, 0.0, 1.0)
    keep = np.zeros(n, bool)
    keep[rng.choice(n, size=min(n_keep, n), replace=False)] = True
    w[keep] = 3.0
    out = FitBudget(cap, keep, seed=seed).apply(w)
    positive = w > 0
    if positive.sum() <= cap:
        assert np.array_equal(out, w)
        return
    assert np.array_equal(out[keep], w[keep])  # human labels always train, at their weight
    rest = positive & ~keep
    room = max(0, cap - int(keep.sum()))
    assert int(np.sum(out[rest] > 0)) == min(room, int(rest.sum()))
    assert np.all(out[~positive] == 0)
    if room:  # the sample carries the rest's total weight: the loss keeps its expectation
        assert np.isclose(out[rest].sum(), w[rest].sum())
    assert np.array_equal(out, FitBudget(cap, keep, seed=seed).apply(w))  # deterministic


# -------------------------------------------------------------------------- queue rewrites
def shown(label="a", score=0.8, pid=1):
    return ShownPrediction(prediction_id=pid, label=label, score=score)


@pytest.mark.parametrize("old, new, written", [
    (None, QueuedPrediction(1, "a", 0.8), True),  # no prediction of the queue version yet
    (shown("a", 0.8), QueuedPrediction(1, "a", 0.8), False),
    (shown("a", 0.8), QueuedPrediction(1, "a", 0.84), False),  # confidence within tolerance
    (shown("a", 0.8), QueuedPrediction(1, "a", 0.9), True),  # confidence moved
    (shown("a", 0.8), QueuedPrediction(1, "b", 0.8), True),  # the shown label changed
    (shown("a", 0.52), QueuedPrediction(1, "a", 0.49), True),  # into the batch, however close
    (shown("a", 0.49), QueuedPrediction(1, "a", 0.52), True),  # out of the batch (an old batch's leftover)
    (shown("a", 0.20), QueuedPrediction(1, "a", 0.21), True),  # batch rank moved
    (shown("a", 0.20), QueuedPrediction(1, "a", 0.20), False),
    (shown("a", None), QueuedPrediction(1, "a", 0.8), True),  # a prediction without a score
])
def test_a_round_rewrites_only_what_the_queue_or_the_score_column_would_get_wrong(old, new, written):
    assert (queue_changes([new], {1: old}, score_tolerance=0.05) == [new]) is written


# ---------------------------------------------------------------------------------- snapshot
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


def test_a_capped_round_writes_the_batch_and_the_largest_changes_first():
    old = {1: shown("a", 0.20), 2: shown("a", 0.60), 3: shown("a", 0.60), 4: shown("a", 0.60), 5: None,
           6: shown("a", 0.60)}
    wanted = [QueuedPrediction(1, "a", 0.10),  # batch rank moved: always
              QueuedPrediction(2, "a", 0.70),  # +0.10
              QueuedPrediction(3, "a", 0.95),  # +0.35
              QueuedPrediction(4, "b", 0.61),  # the shown label changes: outranks any score drift
              QueuedPrediction(5, "a", 0.80),  # no prediction yet: always
              QueuedPrediction(6, "a", 0.62)]  # within tolerance: never
    assert [p.task_id for p in queue_changes(wanted, old, 0.05, max_moves=2)] == [1, 5, 4, 3]
    assert [p.task_id for p in queue_changes(wanted, old, 0.05, max_moves=0)] == [1, 5]
    assert [p.task_id for p in queue_changes(wanted, old, 0.05)] == [1, 5, 4, 3, 2]
