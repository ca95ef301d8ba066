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
