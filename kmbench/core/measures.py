"""The numbers the contract defines once: the convergence scale ``mean(var(X))`` and the inertia.

Every backend computes the scale through these (host arrays: :func:`mean_variance`;
blocks on workers: :func:`moments`, :func:`combine_moments`), so it cannot drift
between them. Always two-pass or per-block centred: the one-pass ``E[x^2] - E[x]^2``
cancels catastrophically far from the origin (at an offset of 1e8 it returns 1.0
for a true mean variance of 0.01).
"""
from __future__ import annotations

import numpy as np


def mean_variance(X, chunk: int = 8192) -> float:
    """``mean(var(X, axis=0))`` in float64, two-pass (as ``np.var``) and chunked, so X is never copied whole.

    Chunks of a few MiB of float64 stay in cache between the cast and the reduction.
    """
    n = X.shape[0]
    mean = np.zeros(X.shape[1])
    for start in range(0, n, chunk):
        mean += np.asarray(X[start:start + chunk], dtype=np.float64).sum(axis=0)
    mean /= n
    sq = np.zeros(X.shape[1])
    for start in range(0, n, chunk):
        block = np.asarray(X[start:start + chunk], dtype=np.float64) - mean
        sq += np.einsum("ij,ij->j", block, block)
    return float(np.mean(sq / n))


def moments(block) -> tuple[int, np.ndarray, np.ndarray]:
    """``(rows, mean, m2)`` of one block, float64, centred on the block's own mean (m2: sum of squared deviations)."""
    rows = block.shape[0]
    if rows == 0:
        return 0, np.zeros(block.shape[1]), np.zeros(block.shape[1])
    wide = np.asarray(block, dtype=np.float64)
    mean = wide.mean(axis=0)
    centred = wide - mean
    return rows, mean, np.einsum("ij,ij->j", centred, centred)


def combine_moments(parts) -> tuple[int, np.ndarray, np.ndarray]:
    """Merge per-block ``(rows, mean, m2)`` exactly (Chan, Golub and LeVeque's pairwise update)."""
    parts = [p for p in parts if p[0]]
    rows, mean, m2 = parts[0][0], parts[0][1].copy(), parts[0][2].copy()
    for n_b, mean_b, m2_b in parts[1:]:
        total = rows + n_b
        delta = mean_b - mean
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + delta * delta * (rows * n_b / total)
        rows = total
    return rows, mean, m2


def scale_of(rows: int, mean: np.ndarray, m2: np.ndarray) -> float:
    """``mean(var(X))`` from combined moments."""
    return float(np.mean(m2 / rows))


def blockwise_mean_variance(parts) -> float:
    """``mean(var(X))`` from the :func:`moments` of X's row blocks (a task to run where they live)."""
    return scale_of(*combine_moments(parts))


def _differences(X: np.ndarray, centers: np.ndarray, labels: np.ndarray, chunk: int):
    """(start, float64 ``X[rows] - centers[labels[rows]]``) per block of ``chunk`` rows: no float64
    copy of X is made, and each block stays in cache (8192 rows: 2.6x faster than 65536 at 1M x 16)."""
    for start in range(0, X.shape[0], chunk):
        diff = X[start:start + chunk].astype(np.float64)
        diff -= centers[labels[start:start + chunk]]
        yield start, diff


def exact_inertia(X: np.ndarray, centers: np.ndarray, labels: np.ndarray, chunk: int = 8192) -> float:
    """``sum_i ||x_i - c_label(i)||^2`` by direct differences, accumulated in float64.

    Direct differences rather than the GEMM identity, whose cancellation would make the
    reported inertia depend on the backend.
    """
    return sum(float(np.einsum("ij,ij->", diff, diff)) for _, diff in _differences(X, centers, labels, chunk))


def distances_to_own(X: np.ndarray, centers: np.ndarray, labels: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Each row's squared distance to its assigned centre (float64, shape (n,)), by the same
    direct differences as :func:`exact_inertia`: what the empty-cluster rule orders rows by."""
    dist = np.empty(X.shape[0])
    centers = np.asarray(centers, dtype=np.float64)
    for start, diff in _differences(X, centers, labels, chunk):
        dist[start:start + diff.shape[0]] = np.einsum("ij,ij->i", diff, diff)
    return dist
