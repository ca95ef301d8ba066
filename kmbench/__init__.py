"""kmbench: clustering backends behind one interface, cross-checked against one oracle and benchmarked.

    >>> import kmbench
    >>> result = kmbench.fit(X, 8, backend="identity")
    >>> result.labels, result.centers, result.timings["per_iter"]

The package is layered; each folder imports only those before it:
``core`` (registry, backend base, engine, validation, seeding, threads, result types),
``check`` (oracle, cross-check, data), ``bench`` (sweep, worker, machine probes, record
store, profiles), ``advise`` (auto, ranking, trials), ``report`` (tables, figures, pages),
``api`` (``fit``, ``KMeans``) and ``cli`` (one module per command).
"""
from kmbench.core.errors import BackendUnavailable, DtypeChanged
from kmbench.core.result import KMeansResult

__all__ = ["fit", "backends", "KMeans", "KMeansResult", "BackendUnavailable", "DtypeChanged"]
__version__ = "0.1.0"


def backends() -> list[dict]:
    """Every registered K-Means backend with its availability, found without importing heavy libraries."""
    from kmbench.core.registry import backends as listing

    return listing("kmeans")


def __getattr__(name):
    # fit reaches the advise layer and KMeans pulls in scikit-learn: import them only when asked for.
    if name == "fit":
        from kmbench.api.fitting import fit

        return fit
    if name == "KMeans":
        from kmbench.api.estimator import KMeans

        return KMeans
    raise AttributeError(f"module 'kmbench' has no attribute {name!r}")
