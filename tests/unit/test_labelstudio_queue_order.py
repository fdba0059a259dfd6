"""The queue order Label Studio serves: the scores a round gives the batch and the rest, and which
predictions a round rewrites (all of them, or a capped number, the batch and largest changes first)."""

import numpy as np
import pytest

from rlthf_backend.labelstudio.queue_order import QueuedPrediction, queue_changes, queue_scores
from rlthf_backend.store.snapshots import ShownPrediction


def test_batch_scores_are_below_half_in_rank_order_and_others_read_as_confidence():
    rank = np.array([-1, 2, 0, -1, 1, -1])
    p_right = np.array([0.9, 0.1, 0.5, np.nan, 0.99, 0.0])
    s = queue_scores(rank, p_right)
    batch = [2, 4, 1]  # rank 0, 1, 2
    assert list(np.argsort(s)[:3]) == batch  # Label Studio serves lowest score first
    assert np.all(s[batch] < 0.5) and np.all(np.diff(s[batch]) > 0)
    others = [0, 3, 5]
    assert np.all(s[others] >= 0.5)
    assert np.allclose(s[others], [0.95, 0.75, 0.5])  # 0.5 + 0.5 * P(label right); NaN -> 0.5


def test_empty_batch_only_confidence():
    s = queue_scores(np.full(3, -1), np.array([0.2, 0.6, 1.0]))
    assert np.allclose(s, [0.6, 0.8, 1.0])


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
