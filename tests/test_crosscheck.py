"""The judge itself: compare() must pass correct results, fail wrong ones, and explain only real ties."""
import numpy as np
import pytest

import kmbench.check.data as data
import kmbench.check.oracle as oracle
from kmbench.check.crosscheck import compare, explain_divergence
from kmbench.core.kmeans import create, execute
from kmbench.core.seeding import initial_centers


def _fit(X, centers, max_iter, backend="identity"):
    b = create(backend, n=X.shape[0], k=centers.shape[0], d=X.shape[1], dtype=str(X.dtype))
    return execute(b, X, centers.astype(X.dtype), max_iter=max_iter, tol=-1.0)


def test_correct_result_passes_and_perturbed_centres_fail():
    X, _ = data.blobs(500, 4, 5, seed=3)
    C = initial_centers(X, 5, "random", 3)
    ref = oracle.lloyd(X, C, 5, -1.0)
    good = _fit(X, C, 5)
    assert compare(good, ref, X, "float64").ok
    bad = type(good)(**{**good.__dict__, "centers": good.centers + 1e-6})
    verdict = compare(bad, ref, X, "float64")
    assert not verdict.ok and "centre error" in verdict.status


def test_wrong_labels_fail_even_with_replay():
    X, _ = data.blobs(400, 3, 4, seed=5)
    C = initial_centers(X, 4, "random", 5)
    ref = oracle.lloyd(X, C, 4, -1.0)
    good = _fit(X, C, 4)
    labels = good.labels.copy()
    labels[:10] = (labels[:10] + 1) % 4
    bad = type(good)(**{**good.__dict__, "labels": labels})
    verdict = compare(bad, ref, X, "float64", replay=(lambda t: _fit(X, C, t), C))
    assert not verdict.ok and "labels differ" in verdict.status


def test_tie_broken_the_other_way_is_explained_and_nothing_else_is():
    # Two points exactly midway between two centres on a line: the oracle sends both to centre 0.
    X = np.array([[-3.0], [-2.0], [0.0], [0.0], [2.0], [3.0]])
    C = np.array([[-1.0], [1.0]])
    ref = oracle.lloyd(X, C, 3, -1.0)

    def other_tie_break(t):
        # A backend that breaks the tie towards centre 1 for one of the two points, then is exact.
        labels = np.array([0, 0, 0, 1, 1, 1])
        centers = np.array([X[labels == j].mean(axis=0) for j in range(2)])
        return oracle.lloyd(X, centers, t - 1, -1.0) if t > 1 else _as_result(centers, X)

    first = other_tie_break(3)
    assert explain_divergence(other_tie_break, X, C, "float64", 3) is not None
    assert not compare(_as_result(first.centers, X), ref, X, "float64").ok

    def simply_wrong(t):
        return _as_result(np.array([[-5.0], [5.0]]), X)

    assert explain_divergence(simply_wrong, X, C, "float64", 3) is None


def _as_result(centers, X):
    ref = oracle.lloyd(X, centers, 1, -1.0)
    ref.centers = np.asarray(centers, dtype=float)
    return ref


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_check_command_passes_for_foundation_backends(dtype, capsys):
    from kmbench.cli import main

    code = main(["check", "--backend", "identity" if dtype == "float64" else "float32",
                 "--backend", "sklearn", "--dtype", dtype])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 beyond tolerance" in out
