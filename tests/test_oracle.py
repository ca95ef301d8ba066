"""The float64 oracle against answers worked out by hand, and against scikit-learn.

Everything else is judged against ``kmbench.check.oracle.lloyd``, so it must be right on
cases small enough to check with pencil and paper.
"""
from __future__ import annotations

import numpy as np
import pytest

import kmbench.check.data as data
import kmbench.check.oracle as oracle
from kmbench.core.seeding import initial_centers

# 1-D line: groups {0, 1, 2} and {10, 11, 12}. From centres (0, 1) Lloyd needs three
# assignments: {0} | {1..12} -> means (0, 7.2); {0,1,2} | {10,11,12} -> means (1, 11); repeat.
LINE = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
LINE_START = np.array([[0.0], [1.0]])
LINE_VAR = float(np.var(LINE))  # 25.666..., the scale tol is measured in


def test_two_separated_groups():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    out = oracle.lloyd(X, [[0.0, 0.0], [10.0, 0.0]], max_iter=10, tol=0.0)
    np.testing.assert_array_equal(out.centers, [[0.0, 0.5], [10.0, 0.5]])
    np.testing.assert_array_equal(out.labels, [0, 0, 1, 1])
    assert out.labels.dtype == np.int32
    assert out.inertia == 1.0  # four points, each 0.5 from its centre
    assert out.n_iter == 2 and out.converged
    assert out.inertia_history == [2.0, 1.0]
    assert out.relocated == 0 and out.degenerate == 0
    assert out.distances.shape == (4, 2)


def test_label_repeat_convergence_by_hand():
    out = oracle.lloyd(LINE, LINE_START, max_iter=50, tol=0.0)
    assert out.n_iter == 3 and out.converged
    np.testing.assert_allclose(out.centers, [[1.0], [11.0]], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(out.labels, [0, 0, 0, 1, 1, 1])
    assert out.inertia == pytest.approx(4.0, rel=1e-15)
    # 0+0+1+81+100+121; then against (0, 7.2): 0+1+4+2.8^2+3.8^2+4.8^2; then 1+0+1+1+0+1
    np.testing.assert_allclose(out.inertia_history, [303.0, 50.32, 4.0], rtol=1e-14)


def test_shift_convergence_stops_before_labels_repeat():
    # Squared shifts: iteration 1 moves c1 by 6.2 (38.44); iteration 2 moves c0 by 1 and c1 by 3.8
    # (1 + 14.44 = 15.44). A threshold of 20 stops after iteration 2, one before the labels repeat.
    out = oracle.lloyd(LINE, LINE_START, max_iter=50, tol=20.0 / LINE_VAR)
    assert out.n_iter == 2 and out.converged
    np.testing.assert_allclose(out.centers, [[1.0], [11.0]], atol=1e-12)
    # threshold just under 15.44: iteration 2 no longer qualifies, the label rule stops at 3
    assert oracle.lloyd(LINE, LINE_START, max_iter=50, tol=15.0 / LINE_VAR).n_iter == 3


def test_large_tol_stops_after_one_iteration():
    out = oracle.lloyd(LINE, LINE_START, max_iter=50, tol=1e9)
    assert out.n_iter == 1 and out.converged
    np.testing.assert_allclose(out.centers, [[0.0], [7.2]], atol=1e-12)
    # the final assignment is made against the updated centres, not the first labels
    np.testing.assert_array_equal(out.labels, [0, 0, 0, 1, 1, 1])


def test_starting_at_the_fixed_point_converges_at_once():
    out = oracle.lloyd(LINE, [[1.0], [11.0]], max_iter=50, tol=0.0)
    assert out.n_iter == 1 and out.converged


@pytest.mark.parametrize("max_iter", [1, 3, 7])
def test_negative_tol_runs_exactly_max_iter(max_iter):
    out = oracle.lloyd(LINE, LINE_START, max_iter=max_iter, tol=-1.0)
    assert out.n_iter == max_iter and not out.converged
    assert len(out.inertia_history) == max_iter
    if max_iter >= 2:  # after two steps the fixed point is reached and further steps keep it
        np.testing.assert_allclose(out.centers, [[1.0], [11.0]], atol=1e-12)


def test_max_iter_reached_without_convergence():
    out = oracle.lloyd(LINE, LINE_START, max_iter=2, tol=0.0)
    assert out.n_iter == 2 and not out.converged


def test_empty_cluster_reseeded_at_farthest_point():
    # Centre 2 at 100 attracts nothing. Distances to own centre: 0, 1, 4 (cluster 0 at 0) and
    # 4, 1, 0 (cluster 1 at 12); the farthest is x=2 (index 2, tying index 3 at x=10: lower wins).
    X = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
    out = oracle.lloyd(X, [[0.0], [12.0], [100.0]], max_iter=1, tol=-1.0)
    assert out.relocated == 1 and out.degenerate == 0
    # x=2 leaves cluster 0 (mean of 0, 1) and becomes centre 2
    np.testing.assert_allclose(out.centers, [[0.5], [11.0], [2.0]], atol=1e-12)


def test_empty_cluster_ties_go_to_lower_index():
    # Every point is 1 from its centre, so the order is purely by index: the two empty clusters
    # (2 and 3, in ascending order) take x[0] = -1 and x[1] = 1. That empties cluster 0, which
    # keeps its old centre (a degenerate step). The reverse tie rule would give c2=11, c3=9.
    X = np.array([[-1.0], [1.0], [9.0], [11.0]])
    out = oracle.lloyd(X, [[0.0], [10.0], [100.0], [200.0]], max_iter=1, tol=-1.0)
    assert out.relocated == 2 and out.degenerate == 1
    np.testing.assert_array_equal(out.centers.ravel(), [0.0, 10.0, -1.0, 1.0])
    np.testing.assert_array_equal(out.labels, [2, 3, 1, 1])  # against the updated centres


def test_one_empty_cluster_single_tie_break():
    # Same line, one far centre: the tie among all four points goes to index 0 (x=-1).
    X = np.array([[-1.0], [1.0], [9.0], [11.0]])
    out = oracle.lloyd(X, [[0.0], [10.0], [100.0]], max_iter=5, tol=0.0)
    np.testing.assert_array_equal(out.centers.ravel(), [1.0, 10.0, -1.0])
    np.testing.assert_array_equal(out.labels, [2, 0, 1, 1])
    assert out.relocated == 1 and out.inertia == 2.0
    assert out.n_iter == 2 and out.converged


def test_all_points_on_their_centres_moves_nothing():
    # Two distinct values, three centres: nothing to gain from re-seeding, the empty one stays.
    X = np.array([[0.0], [0.0], [5.0]])
    out = oracle.lloyd(X, [[0.0], [5.0], [9.0]], max_iter=3, tol=-1.0)
    np.testing.assert_array_equal(out.centers.ravel(), [0.0, 5.0, 9.0])
    assert out.relocated == 0 and out.degenerate == 3
    assert out.inertia == 0.0


def test_argmin_ties_go_to_lowest_index():
    # x=5 is exactly 5 from both centres
    out = oracle.lloyd([[0.0], [5.0], [10.0]], [[0.0], [10.0]], max_iter=1, tol=-1.0)
    assert out.inertia_history == [25.0]
    np.testing.assert_allclose(out.centers.ravel(), [2.5, 10.0])


def test_squared_distances_blocks_match_direct():
    rng = np.random.default_rng(0)
    X, C = rng.standard_normal((5000, 3)), rng.standard_normal((4, 3))
    direct = ((X[:, None, :] - C[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(oracle.squared_distances(X, C, block=333), direct, rtol=1e-15, atol=0)


def test_inputs_not_modified():
    X = LINE.copy()
    C = LINE_START.copy()
    oracle.lloyd(X, C, max_iter=5, tol=-1.0)
    np.testing.assert_array_equal(X, LINE)
    np.testing.assert_array_equal(C, LINE_START)


# -- an independent implementation: scikit-learn ---------------------------------------------------------
@pytest.mark.parametrize("case", [
    ("blobs", 1500, 6, 8, "k-means++", 300, 1e-4),
    ("blobs", 2000, 3, 5, "random", 300, 0.0),
    ("blobs", 800, 10, 4, "k-means++", 4, -1.0),
    ("iris", None, None, 3, "k-means++", 300, 1e-4),
], ids=["blobs-tol", "blobs-tol0", "blobs-fixed", "iris"])
def test_agrees_with_scikit_learn(case):
    from sklearn.cluster import KMeans

    name, n, d, k, init, max_iter, tol = case
    X = data.iris()[0] if name == "iris" else data.blobs(n, d, k, seed=11)[0]
    centers = initial_centers(X, k, init, seed=1)
    ours = oracle.lloyd(X, centers, max_iter, tol)
    assert ours.relocated == 0, "scikit-learn is an independent check only where no cluster empties"
    theirs = KMeans(n_clusters=k, init=centers, n_init=1, max_iter=max_iter, tol=max(tol, 0.0),
                    algorithm="lloyd").fit(X)
    np.testing.assert_array_equal(ours.labels, theirs.labels_)
    np.testing.assert_allclose(ours.centers, theirs.cluster_centers_, rtol=0, atol=1e-12 * np.abs(X).max())
    assert ours.inertia == pytest.approx(theirs.inertia_, rel=1e-12)
    if tol >= 0:
        # scikit-learn applies the same two stopping rules on the same scale
        assert ours.n_iter == theirs.n_iter_
    else:
        # it stops once labels repeat even when asked for more; ours runs the fixed work
        assert ours.n_iter == max_iter and theirs.n_iter_ <= max_iter
