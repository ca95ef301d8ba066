"""``kmbench.linkage``: hierarchical clustering of the core, with ``backend="auto"`` answered from recorded results."""
from __future__ import annotations

from kmbench.core import linkage as family
from kmbench.core.result import LinkageResult


def linkage(X, method="ward", *, backend="auto", dtype=None, threads=None, **options) -> LinkageResult:
    """Hierarchical (agglomerative) clustering of X: SciPy's linkage matrix, on the chosen backend.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), n_samples >= 2
        NumPy array, array-like or torch tensor; float32/float64 kept, other real types become float64.
    method : {"single", "complete", "average", "ward"}, default "ward"
        Linkage on Euclidean distances, as ``scipy.cluster.hierarchy.linkage(X, method)``.
    backend : str, default "auto"
        A name from ``kmbench.backends(family="linkage")``, a ``"module:Class"`` spec, or "auto"
        to pick the fastest recorded for this case (``kmbench.advise.linkage``).
    dtype : {"float32", "float64"}, optional
    threads : int, optional
        Threads for every pool (BLAS, OpenMP, Numba, torch); ``KMBENCH_THREADS`` or all cores.
    **options
        Backend-specific options, checked against the backend's declared ``parameters``;
        ``max_bytes`` caps the distance matrices a backend may hold (default: half the memory
        available), ``device`` picks one where a backend has several.

    Returns
    -------
    LinkageResult
        ``result.Z`` of shape (n_samples - 1, 4); cut it with ``scipy.cluster.hierarchy.fcluster``.
    """
    from kmbench.advise.linkage import choose

    return family.linkage(X, method, backend=backend, dtype=dtype, threads=threads, choose=choose, **options)
