"""The float64 oracle: Lloyd's algorithm as docs/contract.md states it, written to be read.

Every backend is cross-checked against this one function, in the tests and in the
benchmarks' quality tracks. It favours clarity over speed: exact squared
differences (no GEMM identity), a full distance matrix per block of rows, and
the empty-cluster rule spelled out step by step. It shares no code with the
backends, so a bug in their common driver cannot hide here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class OracleResult:
    """centers (k, d) float64; labels (n,) int32; distances (n, k) to the final centres, float64."""

    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    converged: bool
    inertia_history: list = field(default_factory=list)
    #: empty clusters re-seeded, over all iterations
    relocated: int = 0
    #: iterations where the rule could not fill every cluster (a cluster kept its old centre)
    degenerate: int = 0
    distances: np.ndarray | None = None


def squared_distances(X: np.ndarray, centers: np.ndarray, block: int = 2048) -> np.ndarray:
    """``D[i, j] = ||X[i] - centers[j]||^2`` by exact differences, shape (n, k), float64."""
    D = np.empty((X.shape[0], centers.shape[0]))
    for start in range(0, X.shape[0], block):
        diff = X[start:start + block, None, :] - centers[None, :, :]
        D[start:start + block] = (diff * diff).sum(axis=2)
    return D


def update(X: np.ndarray, centers: np.ndarray, labels: np.ndarray, dist_to_own: np.ndarray):
    """Steps 2 and 3 of one Lloyd iteration: means of the labelled points, empty clusters re-seeded.

    ``dist_to_own`` (n,) holds each point's squared distance to its assigned (old) centre.
    Returns the new centres (k, d), the number of clusters re-seeded, and 1 if a cluster was
    left with no points (it keeps its old centre), else 0.
    """
    k = centers.shape[0]
    # 2. Sum and count the points of each cluster.
    sums = np.zeros_like(centers)
    np.add.at(sums, labels, X)
    counts = np.bincount(labels, minlength=k)

    # 3. Re-seed empty clusters at the points farthest from their own centre.
    empty = [j for j in range(k) if counts[j] == 0]
    relocated = 0
    if empty and dist_to_own.max() > 0:
        farthest_first = sorted(range(X.shape[0]), key=lambda i: (-dist_to_own[i], i))
        for j, i in zip(empty, farthest_first):
            sums[labels[i]] -= X[i]
            counts[labels[i]] -= 1
            sums[j] = X[i]
            counts[j] = 1
        relocated = len(empty)
    degenerate = int(bool(empty) and (counts == 0).any())

    new_centers = centers.copy()
    for j in range(k):
        if counts[j] > 0:
            new_centers[j] = sums[j] / counts[j]
    return new_centers, relocated, degenerate


def lloyd(X, centers, max_iter: int = 300, tol: float = 1e-4) -> OracleResult:
    """Run the contract's Lloyd iteration in float64 from ``centers`` (k, d) on X (n, d)."""
    X = np.asarray(X, dtype=np.float64)
    centers = np.array(centers, dtype=np.float64)
    n = X.shape[0]
    threshold = tol * np.mean(np.var(X, axis=0))
    history, previous_labels = [], None
    relocated = degenerate = 0
    converged = False

    for n_iter in range(1, max_iter + 1):
        # 1. Assign each point to its nearest centre; argmin breaks ties to the lowest index.
        D = squared_distances(X, centers)
        labels = D.argmin(axis=1)
        dist_to_own = D[np.arange(n), labels]
        history.append(float(dist_to_own.sum()))

        new_centers, moved, stuck = update(X, centers, labels, dist_to_own)
        relocated += moved
        degenerate += stuck

        # 4. Converged when labels repeat, or the centres barely moved.
        shift = float(((new_centers - centers) ** 2).sum())
        centers = new_centers
        labels_repeat = previous_labels is not None and np.array_equal(labels, previous_labels)
        if tol >= 0 and (labels_repeat or shift <= threshold):
            converged = True
            break
        previous_labels = labels

    D = squared_distances(X, centers)
    labels = D.argmin(axis=1)
    inertia = float(D[np.arange(n), labels].sum())
    return OracleResult(centers=centers, labels=labels.astype(np.int32), inertia=inertia, n_iter=n_iter,
                        converged=converged, inertia_history=history, relocated=relocated,
                        degenerate=degenerate, distances=D)
