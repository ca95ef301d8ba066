"""The one seeded initialiser: every backend starts from the centres chosen here.

String inits are resolved once, in float64 NumPy, before any backend runs, so
timings and cross-checks compare equal work from equal starting points.
"""
from __future__ import annotations

import math

import numpy as np

from kmbench.core.validation import check_init, is_lazy_array, is_torch_tensor


def as_host_array(X) -> np.ndarray:
    """A NumPy view (or, for lazy arrays, the computed values) of X."""
    if is_torch_tensor(X):
        return X.detach().cpu().numpy()
    if is_lazy_array(X):
        return np.asarray(X.compute())
    return np.asarray(X)


def initial_centers(X, n_clusters: int, init="k-means++", seed=None) -> np.ndarray:
    """Starting centres, float64 array of shape (n_clusters, n_features).

    ``"random"`` takes ``default_rng(seed).choice(n, k, replace=False)`` rows;
    ``"k-means++"`` is greedy k-means++ with ``2 + int(ln k)`` candidates per step;
    an array is validated and returned as float64.
    """
    init = check_init(init, n_clusters, X.shape[1])
    if not isinstance(init, str):
        return init
    rng = np.random.default_rng(seed)
    if init == "random":
        idx = rng.choice(X.shape[0], n_clusters, replace=False)
        rows = X[idx].compute() if is_lazy_array(X) else as_host_array(X)[idx]
        return np.asarray(rows, dtype=np.float64)
    if is_lazy_array(X):
        return kmeans_plusplus_lazy(X, n_clusters, rng)
    return kmeans_plusplus(as_host_array(X), n_clusters, rng)


def _sq_dist_to(X: np.ndarray, x_norms: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Squared distances from every row of X to each of ``points``: shape (len(points), n)."""
    d = x_norms[None, :] - 2.0 * (points @ X.T) + np.einsum("ij,ij->i", points, points)[:, None]
    return np.maximum(d, 0.0)


def kmeans_plusplus(X: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ (Arthur & Vassilvitskii; scikit-learn's variant), in float64."""
    n, d = X.shape
    X = np.asarray(X, dtype=np.float64)
    x_norms = np.einsum("ij,ij->i", X, X)
    n_trials = 2 + int(math.log(n_clusters))
    centers = np.empty((n_clusters, d))
    first = rng.integers(n)
    centers[0] = X[first]
    closest = _sq_dist_to(X, x_norms, X[first:first + 1])[0]
    potential = closest.sum()
    for c in range(1, n_clusters):
        # Candidates drawn with probability proportional to their distance; keep the one
        # that lowers the potential most.
        draws = rng.random(n_trials) * potential
        candidates = np.minimum(np.searchsorted(np.cumsum(closest), draws), n - 1)
        trial = np.minimum(closest, _sq_dist_to(X, x_norms, X[candidates]))
        best = int(np.argmin(trial.sum(axis=1)))
        closest, potential = trial[best], trial[best].sum()
        centers[c] = X[candidates[best]]
    return centers


def kmeans_plusplus_lazy(X, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """:func:`kmeans_plusplus` on a dask array, without gathering X where this runs.

    The same draws from ``rng`` in the same order; what comes back per step is small: the
    candidates' rows, one sum per candidate, one sum per row block and the one block of
    distances a draw lands in. The distances to the nearest centre (one float per row) are
    persisted where the scheduler keeps data. Cumulative sums run per block, so a draw can
    land on a neighbouring row where the eager version's rounding differs at a boundary.
    """
    import dask.array as da

    n, d = X.shape
    X = X.astype(np.float64)
    x_norms = (X * X).sum(axis=1).persist()
    n_trials = 2 + int(math.log(n_clusters))
    starts = np.concatenate([[0], np.cumsum(X.chunks[0])])

    def distances(points):  # (len(points), n), lazily
        pts = da.from_array(points, chunks=points.shape)
        sq = x_norms[None, :] - 2.0 * (pts @ X.T) + np.einsum("ij,ij->i", points, points)[:, None]
        return da.maximum(sq, 0.0)

    def block_sums(v):
        return v.map_blocks(lambda b: np.atleast_1d(b.sum()), chunks=((1,) * v.numblocks[0],)).compute()

    def pick(closest, sums, draws):
        edges = np.cumsum(sums)
        out = np.empty(len(draws), dtype=np.int64)
        for i, draw in enumerate(draws):
            b = min(int(np.searchsorted(edges, draw)), len(sums) - 1)
            local = (edges[b] - sums[b]) + np.cumsum(closest.blocks[b].compute())
            out[i] = starts[b] + min(int(np.searchsorted(local, draw)), len(local) - 1)
        return np.minimum(out, n - 1)

    centers = np.empty((n_clusters, d))
    first = int(rng.integers(n))
    centers[0] = np.asarray(X[first].compute())
    closest = distances(centers[:1])[0].persist()
    sums = block_sums(closest)
    potential = sums.sum()
    for c in range(1, n_clusters):
        draws = rng.random(n_trials) * potential
        candidates = pick(closest, sums, draws)
        order = np.argsort(candidates, kind="stable")
        rows = np.empty((n_trials, d))
        rows[order] = np.asarray(X[candidates[order]].compute())
        trial = da.minimum(closest[None, :], distances(rows))
        best = int(np.argmin(trial.sum(axis=1).compute()))
        closest = trial[best].persist()
        sums = block_sums(closest)
        potential = sums.sum()
        centers[c] = rows[best]
    return centers
