"""Strategic points of the sorted margin curve, on synthetic curves whose answer is known."""

import numpy as np
import pytest

from rlthf_backend.core.curation import points as points_mod
from rlthf_backend.core.curation.points import PointsConfig, find_curve_points, moving_average


def three_segments(head=100, middle=800, tail=100, top=5.0, flat=1.0, bottom=-5.0):
    """Steep head (top -> flat), flat middle (flat -> -flat), steep tail (-flat -> bottom)."""
    return np.concatenate([
        np.linspace(top, flat, head, endpoint=False),
        np.linspace(flat, -flat, middle, endpoint=False),
        np.linspace(-flat, bottom, tail),
    ])


def check_invariants(p, n):
    assert p.n == n
    assert 0 <= p.elbow <= p.knee <= p.reflection <= n


def test_three_segment_curve_finds_both_corners():
    curve = three_segments()
    p = find_curve_points(curve[::-1])  # order of the input does not matter
    check_invariants(p, 1000)
    assert abs(p.elbow - 100) <= 30
    assert abs(p.knee - 900) <= 30
    assert p.notes == ()
    # reflection: first rank at/after the knee whose margin <= -margin[elbow]
    sorted_curve = np.sort(curve)[::-1]
    assert p.reflection_threshold == pytest.approx(-sorted_curve[p.elbow])
    assert sorted_curve[p.reflection] <= p.reflection_threshold
    assert np.all(sorted_curve[p.knee : p.reflection] > p.reflection_threshold)


def test_normal_quantile_curve_is_symmetric():
    from statistics import NormalDist

    x = (np.arange(1000) + 0.5) / 1000
    curve = -np.array([NormalDist().inv_cdf(v) for v in x])
    p = find_curve_points(curve)
    check_invariants(p, 1000)
    assert p.elbow < 250 and p.knee > 750
    assert abs(p.elbow - (999 - p.knee)) <= 20  # mirror image of each other
    assert p.reflection >= p.knee


def test_no_negative_tail_means_nothing_beyond_reflection():
    curve = np.concatenate([np.linspace(5, 1, 100, endpoint=False), np.linspace(1, 0.5, 900)])
    p = find_curve_points(curve)
    check_invariants(p, 1000)
    assert p.reflection == 1000
    assert any("nothing beyond" in note for note in p.notes)


def test_all_equal_margins_have_no_structure():
    p = find_curve_points(np.full(50, 0.3))
    assert (p.elbow, p.knee, p.reflection) == (0, 50, 50)
    assert p.notes == ("all margins equal",)


def test_all_negative_curve_has_no_reflection_point():
    curve = -np.abs(np.linspace(-3, 3, 200))
    p = find_curve_points(curve)
    check_invariants(p, 200)
    assert p.reflection == 200
    assert any("elbow <= 0" in note for note in p.notes)


def test_pool_of_20_pairs():
    for seed in range(20):
        curve = np.random.default_rng(seed).normal(size=20)
        p = find_curve_points(curve)
        check_invariants(p, 20)
    p = find_curve_points(three_segments(head=3, middle=14, tail=3))
    check_invariants(p, 20)
    assert p.reflection < 20  # the steep tail is found even in a pool of 20


def test_tiny_pools_and_empty_curve():
    assert find_curve_points(np.array([1.0, -1.0, 0.5])).notes == ("too few pairs",)
    p = find_curve_points(np.array([]))
    assert (p.n, p.reflection) == (0, 0)


def test_knee_left_of_elbow_collapses_the_middle(monkeypatch):
    # Kneedle answers an elbow at the end of the head and a knee before the start of the tail
    # (possible on odd curves): the knee is then left of the elbow.
    monkeypatch.setattr(points_mod, "_kneedle", lambda y, curve: len(y) - 1 if curve == "convex" else -5)
    p = find_curve_points(three_segments())
    assert p.elbow == p.knee == p.split
    assert any("left of elbow" in note for note in p.notes)
    assert p.elbow <= p.reflection <= p.n


def test_random_curves_always_satisfy_invariants():
    for seed in range(30):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(8, 400))
        curve = rng.standard_t(df=3, size=n) * rng.uniform(0.1, 5)
        p = find_curve_points(curve, PointsConfig(smooth_fraction=rng.uniform(0, 0.1)))
        check_invariants(p, n)


def test_moving_average_keeps_linear_ends_linear():
    line = np.linspace(10, -10, 101)
    assert np.allclose(moving_average(line, 11), line)
    bumpy = np.array([0.0, 0.0, 9.0, 0.0, 0.0])
    assert moving_average(bumpy, 3)[2] == pytest.approx(3.0)
