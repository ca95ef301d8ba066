"""The scikit-learn-intelex peer backend against the float64 oracle, and its declared deviations."""
from __future__ import annotations

import numpy as np
import pytest

import kmbench
from kmbench.check import data, oracle
from kmbench.check.crosscheck import compare
from kmbench.core.kmeans import create, execute

pytest.importorskip("sklearnex")


def run_sklearnex(X, centers, *, max_iter, tol):
    backend = create("sklearnex", n=X.shape[0], k=centers.shape[0], d=X.shape[1], dtype=str(X.dtype))
    return backend, execute(backend, X, centers, max_iter=max_iter, tol=tol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_runs_onedal_in_the_working_dtype_and_agrees_with_oracle(dtype):
    X = data.blobs(2000, 8, 8, seed=3)[0].astype(dtype)
    centers = X[np.random.default_rng(0).choice(len(X), 8, replace=False)].copy()
    backend, result = run_sklearnex(X, centers, max_iter=20, tol=-1.0)
    reference = oracle.lloyd(X, centers, 20, -1.0)
    c = compare(result, reference, X, dtype, deviations=backend.deviations, stops_early=True)
    assert c.status == "ok", c
    # oneDAL served the call (no silent fallback to scikit-learn), in the data's dtype.
    assert result.info["accelerated"] is True
    assert result.dtype == dtype and result.centers.dtype == np.dtype(dtype)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_empty_clusters_follow_the_contract(seed):
    # Several clusters start far from every point: oneDAL re-seeds them at the farthest points, in order.
    X, C = data.with_empty_clusters(500, 4, 10, seed=seed)
    reference = oracle.lloyd(X, C, 10, -1.0)
    assert reference.relocated >= 3
    backend, result = run_sklearnex(X, C, max_iter=10, tol=-1.0)
    c = compare(result, reference, X, "float64", deviations=backend.deviations, stops_early=True)
    assert c.status == "ok", c


def test_degenerate_empty_clusters_show_the_declared_deviation():
    # Every point sits on one of the first three centres: the contract keeps the two far centres.
    base = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    X = np.repeat(base, 20, axis=0)
    C = np.vstack([base, [[50.0, 50.0], [60.0, 60.0]]])
    reference = oracle.lloyd(X, C, 10, -1.0)
    assert reference.degenerate > 0
    backend, result = run_sklearnex(X, C, max_iter=10, tol=-1.0)
    c = compare(result, reference, X, "float64", deviations=backend.deviations, stops_early=True)
    assert c.ok and c.status.startswith("deviation (declared): degenerate-empty"), c
    # What it does instead: the far centres move onto data points.
    assert np.abs(result.centers[3:]).max() <= 1.0


def test_stops_once_labels_repeat_even_for_fixed_work():
    X, _ = data.blobs(400, 2, 5, seed=8, spread=1.5)
    centers = X[:5].copy()
    settles = oracle.lloyd(X, centers, 100, 0.0).n_iter
    result = kmbench.fit(X, 5, backend="sklearnex", init=centers, max_iter=settles + 5, tol=-1.0)
    assert result.n_iter == settles and result.converged
