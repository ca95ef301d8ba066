"""Data sets: synthetic with known truth, and real data that ships inside an installed package.

Nothing is downloaded at run time.
"""
from __future__ import annotations

import numpy as np


def blobs(n: int, d: int, centers: int, *, seed: int = 0, spread: float = 1.0, box: float = 10.0,
          dtype="float64") -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: X (n, d) and the true labels (n,) int32.

    Centres are uniform in ``[-box, box]^d``; each blob has standard deviation ``spread``.
    """
    rng = np.random.default_rng(seed)
    truth = rng.integers(centers, size=n).astype(np.int32)
    means = rng.uniform(-box, box, size=(centers, d))
    X = means[truth] + spread * rng.standard_normal((n, d))
    return X.astype(dtype), truth


def uniform(n: int, d: int, *, seed: int = 0, dtype="float64") -> np.ndarray:
    """Uniform noise in [0, 1)^d, shape (n, d): no cluster structure, many near-ties."""
    return np.random.default_rng(seed).random((n, d)).astype(dtype)


def digits(dtype="float64") -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 handwritten digits (1797, 64), pixel values 0-16, and the digit labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data.astype(dtype), data.target.astype(np.int32)


def iris(dtype="float64") -> tuple[np.ndarray, np.ndarray]:
    """Fisher's iris measurements (150, 4) and species labels."""
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data.astype(dtype), data.target.astype(np.int32)


def with_empty_clusters(n: int = 300, d: int = 3, k: int = 6, *, seed: int = 0,
                        dtype="float64") -> tuple[np.ndarray, np.ndarray]:
    """Data and initial centres (k, d) such that the first assignment leaves clusters empty.

    Half of the centres sit far outside the data, so no point is nearest to them and the
    empty-cluster rule must re-seed them.
    """
    X, _ = blobs(n, d, max(1, k // 2), seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    near = X[rng.choice(n, k - k // 2, replace=False)].astype(np.float64)
    far = 1000.0 + 100.0 * np.arange(k // 2)[:, None] * np.ones((1, d))
    return X, np.vstack([near, far])


CATALOGUE = {
    "blobs": "Gaussian blobs with known truth (synthetic)",
    "uniform": "uniform noise, no structure (synthetic)",
    "digits": "8x8 digits, 1797 x 64 (scikit-learn)",
    "iris": "iris, 150 x 4 (scikit-learn)",
}
