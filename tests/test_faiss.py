"""The faiss peer backend against the float64 oracle, and its declared deviations."""
from __future__ import annotations

import numpy as np
import pytest

import kmbench
import kmbench.check.data as data
import kmbench.check.oracle as oracle
from kmbench.check.crosscheck import TOLERANCES, compare
from kmbench.core.kmeans import BackendUnavailable, create, execute
from kmbench.core.seeding import initial_centers

pytest.importorskip("faiss")


def run_faiss(X, centers, *, max_iter, tol, threads=None):
    backend = create("faiss", n=X.shape[0], k=centers.shape[0], d=X.shape[1], dtype="float32", threads=threads)
    return backend, execute(backend, X, centers.astype(np.float32), max_iter=max_iter, tol=tol)


def cases():
    X1, _ = data.blobs(2000, 8, 8, seed=3)
    X2, _ = data.digits()
    X3 = data.uniform(3000, 4, seed=4)
    return [("blobs", X1, 8, "k-means++", 20), ("digits", X2, 10, "k-means++", 15),
            ("uniform, 1 step", X3, 16, "random", 1)]


@pytest.mark.parametrize("name, X, k, init, max_iter", cases(), ids=[c[0] for c in cases()])
def test_agrees_with_oracle_without_empty_clusters(name, X, k, init, max_iter):
    X = X.astype(np.float32)
    centers = initial_centers(X, k, init, 0)
    reference = oracle.lloyd(X, centers, max_iter, -1.0)
    assert reference.relocated == 0, "the case must not exercise the empty-cluster rule"
    backend, result = run_faiss(X, centers, max_iter=max_iter, tol=-1.0)
    c = compare(result, reference, X, "float32", deviations=backend.deviations)
    # "ok", not a declared deviation: nothing faiss does differently is in play here.
    assert c.status == "ok", c.status
    assert result.n_iter == max_iter and result.labels.dtype == np.int32
    # faiss's per-iteration objective is the inertia of each assignment step, as the contract means.
    np.testing.assert_allclose(result.inertia_history, reference.inertia_history, rtol=1e-5)


def test_empty_clusters_show_the_declared_deviation():
    X, C = data.with_empty_clusters(300, 3, 6, seed=0)
    X = X.astype(np.float32)
    reference = oracle.lloyd(X, C, 10, -1.0)
    assert reference.relocated > 0
    backend, result = run_faiss(X, C, max_iter=10, tol=-1.0)
    c = compare(result, reference, X, "float32", deviations=backend.deviations)
    assert c.ok and c.status.startswith("deviation (declared): empty-clusters"), c.status
    # faiss did re-seed (by splitting) rather than leave the far-away centres empty.
    assert result.info["relocated"] > 0
    assert np.all(np.abs(result.centers) < 100), "a far-away initial centre was never moved"


def test_float64_input_runs_in_float32():
    X, _ = data.blobs(1500, 5, 4, seed=1)
    with pytest.warns(kmbench.DtypeChanged, match="float64 data is computed in float32"):
        result = kmbench.fit(X, 4, backend="faiss", max_iter=10, tol=-1.0, seed=2)
    assert result.dtype == "float32" and result.centers.dtype == np.float32
    X32 = X.astype(np.float32)
    reference = oracle.lloyd(X32, initial_centers(X, 4, "k-means++", 2).astype(np.float32), 10, -1.0)
    assert compare(result, reference, X32, "float32").status == "ok"


def test_forcing_float64_is_refused_with_a_reason():
    X, _ = data.blobs(100, 3, 2, seed=1)
    with pytest.raises(BackendUnavailable, match="dtype=float64"):
        kmbench.fit(X, 2, backend="faiss", dtype="float64")


def test_convergence_differs_only_in_when_it_stops():
    X, _ = data.blobs(3000, 5, 6, seed=2)
    X = X.astype(np.float32)
    centers = initial_centers(X, 6, "k-means++", 0)
    reference = oracle.lloyd(X, centers, 300, 1e-4)
    assert reference.converged
    backend, result = run_faiss(X, centers, max_iter=300, tol=1e-4)
    assert "convergence" in backend.deviations and result.converged
    # faiss needs one more iteration to see its objective stop falling; by then nothing moves.
    assert reference.n_iter <= result.n_iter <= reference.n_iter + 1
    c = compare(result, reference, X, "float32", deviations=backend.deviations)
    tol = TOLERANCES["float32"]
    assert c.label_mismatches == c.near_ties
    assert c.center_error <= tol["centers"] and c.inertia_error <= tol["inertia"]


def test_exact_ties_go_to_the_lowest_index():
    # A fixed point of Lloyd where (1, +-1) are exactly as far from centre 0 as from centre 1;
    # 30 rows so that faiss takes its BLAS search path (it switches at 20 queries).
    c0 = [(-1, 1), (-1, -1), (1, 1), (1, -1)]
    c1 = [(3, 1), (3, -1), (1.5, 0.5), (1.5, -0.5), (1.5, 0.5), (1.5, -0.5)]
    X = np.array((c0 + c1) * 3, dtype=np.float32)
    centers = np.array([[0, 0], [2, 0]], dtype=np.float32)
    backend, result = run_faiss(X, centers, max_iter=3, tol=-1.0)
    ties = np.flatnonzero(X[:, 0] == 1)
    assert ties.size == 6 and np.all(result.labels[ties] == 0)
    np.testing.assert_array_equal(result.centers, centers)
    reference = oracle.lloyd(X, centers, 3, -1.0)
    np.testing.assert_array_equal(result.labels, reference.labels)


def test_runs_at_the_harness_thread_count():
    X, _ = data.blobs(500, 4, 3, seed=5)
    _, result = run_faiss(X.astype(np.float32), initial_centers(X, 3, "random", 0), max_iter=2, tol=-1.0,
                          threads=1)
    assert result.threads == 1 and result.info["omp_threads"] == 1
