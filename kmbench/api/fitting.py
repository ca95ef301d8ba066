"""``kmbench.fit``: the K-Means fit of the core, with ``backend="auto"`` answered from recorded results."""
from __future__ import annotations

from kmbench.core import kmeans
from kmbench.core.result import KMeansResult


def fit(X, n_clusters, *, backend="auto", init="k-means++", max_iter=300, tol=1e-4, seed=0,
        device=None, dtype=None, threads=None, **options) -> KMeansResult:
    """Cluster X with Lloyd's algorithm on the chosen backend.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        NumPy array, array-like, torch tensor or dask array; float32/float64 kept,
        other real types become float64.
    n_clusters : int, 1 <= n_clusters <= n_samples
    backend : str, default "auto"
        A name from ``kmbench.backends()``, a ``"module:Class"`` spec, or "auto" to pick
        the fastest recorded for this shape (``kmbench.advise.auto``).
    init : {"k-means++", "random"} or array of shape (n_clusters, n_features)
    max_iter : int >= 1
    tol : float
        ``>= 0``: stop when labels repeat or the squared centre shift is within
        ``tol * mean(var(X))``; ``< 0``: run exactly ``max_iter`` iterations.
    seed : int or None
    device : str, optional
        e.g. "cpu" or "cuda"; the backend's own default when None.
    dtype : {"float32", "float64"}, optional
    threads : int, optional
        Threads for every pool (BLAS, OpenMP, Numba, torch); ``KMBENCH_THREADS`` or all cores.
    **options
        Backend-specific options (chunk sizes, memory budgets, ...), checked against the
        backend's declared ``parameters``.

    Returns
    -------
    KMeansResult
    """
    from kmbench.advise.auto import choose

    return kmeans.fit(X, n_clusters, backend=backend, init=init, max_iter=max_iter, tol=tol, seed=seed,
                      device=device, dtype=dtype, threads=threads, choose=choose, **options)
