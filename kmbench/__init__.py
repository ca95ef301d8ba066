"""kmbench: clustering backends behind one interface, cross-checked against one oracle and benchmarked.

    >>> import kmbench
    >>> result = kmbench.fit(X, 8, backend="identity")
    >>> result.labels, result.centers, result.timings["per_iter"]
    >>> tree = kmbench.linkage(X, "ward")          # hierarchical clustering: SciPy's Z
    >>> tree.Z, tree.backend, tree.timings["fit"]

The package is layered; each folder imports only those before it:
``core`` (registry, backend base, engine, validation, seeding, threads, result types),
``check`` (oracle, cross-check, data), ``bench`` (sweep, worker, machine probes, record
store, profiles), ``advise`` (auto, ranking, trials), ``report`` (tables, figures, pages),
``api`` (``fit``, ``KMeans``) and ``cli`` (one module per command).
"""
from kmbench.core.errors import BackendUnavailable, DtypeChanged
from kmbench.core.result import KMeansResult, LinkageResult

__all__ = ["fit", "linkage", "backends", "KMeans", "KMeansResult", "LinkageResult", "BackendUnavailable",
           "DtypeChanged"]
__version__ = "0.1.0"


def backends(family: str = "kmeans") -> list[dict]:
    """Every registered backend of ``family`` ("kmeans" or "linkage") with its availability, found
    without importing heavy libraries; linkage rows also list the methods each serves."""
    if family == "linkage":
        from kmbench.core.linkage import backends as linkage_listing

        return linkage_listing()
    from kmbench.core.registry import backends as listing

    return listing(family)


def __getattr__(name):
    # fit reaches the advise layer and KMeans pulls in scikit-learn: import them only when asked for.
    if name == "fit":
        from kmbench.api.fitting import fit

        return fit
    if name == "linkage":
        from kmbench.api.linking import linkage

        return linkage
    if name == "KMeans":
        from kmbench.api.estimator import KMeans

        return KMeans
    raise AttributeError(f"module 'kmbench' has no attribute {name!r}")
