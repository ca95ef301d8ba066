"""The result every entry point returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class KMeansResult:
    """One fit, on the host, with what actually ran.

    Attributes
    ----------
    centers : ndarray of shape (n_clusters, n_features), working dtype
    labels : ndarray of shape (n_samples,), int32
    inertia : float
        ``sum_i ||x_i - c_label(i)||^2`` accumulated in float64.
    n_iter : int
    converged : bool
    inertia_history : list of float
        Inertia of each iteration's assignment step (empty where the backend hides it).
    backend, device, dtype : str
    threads : int
    timings : dict
        Seconds: ``prepare``, ``warmup``, ``fit`` (the iterations), ``per_iter``.
    info : dict
        Backend facts (chunk size, declared deviations, why ``auto`` chose it, ...).
    """

    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    converged: bool
    inertia_history: list
    backend: str
    device: str
    dtype: str
    threads: int
    timings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LinkageResult:
    """One hierarchical clustering, on the host, with what actually ran.

    Attributes
    ----------
    Z : ndarray of shape (n_samples - 1, 4), float64
        SciPy's linkage matrix: row i merges clusters ``Z[i, 0] < Z[i, 1]`` at height ``Z[i, 2]``
        into a cluster of ``Z[i, 3]`` points (numbered n + i). Cut it with
        ``scipy.cluster.hierarchy.fcluster(result.Z, ...)``.
    method, backend, device, dtype : str
    threads : int
    timings : dict
        Seconds: ``prepare``, ``warmup``, ``fit`` (the whole linkage).
    info : dict
        Backend facts (algorithm, memory model, declared deviations, why ``auto`` chose it).
    """

    Z: np.ndarray
    method: str
    backend: str
    device: str
    dtype: str
    threads: int
    timings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
