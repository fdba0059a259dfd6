import numpy as np

from rlthf_backend.labelstudio.queue_order import queue_scores


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
