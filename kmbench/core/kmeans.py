"""The K-Means fit on a named backend: validate, seed, create, and time the cycle through the engine.

``backend="auto"`` is resolved by a ``choose`` callable handed in from above
(``kmbench.fit`` passes ``kmbench.advise.auto.choose``), so the core never reads
recorded benchmarks itself.
"""
from __future__ import annotations

import warnings

import numpy as np

from kmbench.core import registry
from kmbench.core.engine import session, time_run, timed_cycle
from kmbench.core.errors import BackendUnavailable, DtypeChanged
from kmbench.core.result import KMeansResult
from kmbench.core.seeding import as_host_array, initial_centers
from kmbench.core.threads import check_threads
from kmbench.core.validation import (check_data, check_int, check_n_clusters, check_seed, check_tol,
                                     check_values, is_lazy_array, is_torch_tensor)

__all__ = ["BackendUnavailable", "DtypeChanged", "backends", "backend_class", "create", "execute", "fit",
           "host_input", "resolve_dtype", "session", "time_run"]


def backends() -> list[dict]:
    """Every registered K-Means backend with its availability, found without importing heavy libraries."""
    return registry.backends("kmeans")


def backend_class(name: str):
    """The class for a registered name or a ``"module:Class"`` spec; ValueError lists the known names."""
    return registry.load(name, "kmeans")


def resolve_dtype(cls, data_dtype: str, requested) -> str:
    """The data's dtype where the backend supports it, else the backend's own (e.g. faiss: float32)."""
    if requested is not None or data_dtype in cls.dtypes:
        return data_dtype
    return cls.dtypes[0]


def create(name: str, *, n: int, k: int, d: int, dtype: str, device=None, threads=None, **options):
    """An instance of K-Means backend ``name`` ready for this case, or BackendUnavailable saying why not."""
    return registry.create(name, family="kmeans", device=device, threads=threads, options=options,
                           n=n, k=k, d=d, dtype=dtype)


def host_input(backend, X):
    """X as the backend (an instance or its class) takes it: torch tensors and dask arrays become NumPy unless it takes them natively.

    Converted once, before seeding, so a tensor is not copied to the host twice.
    """
    native = getattr(backend, "native_inputs", ())
    if (is_torch_tensor(X) and "torch" not in native) or (is_lazy_array(X) and "dask" not in native):
        return as_host_array(X)
    return X


def execute(backend, X, centers: np.ndarray, *, max_iter: int, tol: float) -> KMeansResult:
    """Run the timed cycle of a created backend and return the host result."""
    out, timings = timed_cycle(backend, (host_input(backend, X), centers), (max_iter, tol))
    timings["fit"] = timings.pop("run")
    timings["per_iter"] = timings["fit"] / max(out.n_iter, 1)
    info = dict(out.info)
    if backend.deviations:
        info["deviations"] = dict(backend.deviations)
    return KMeansResult(centers=np.asarray(out.centers), labels=np.asarray(out.labels, dtype=np.int32),
                        inertia=float(out.inertia), n_iter=int(out.n_iter), converged=bool(out.converged),
                        inertia_history=[float(v) for v in out.inertia_history], backend=backend.name,
                        device=str(backend.device), dtype=str(centers.dtype), threads=backend.threads,
                        timings=timings, info=info)


def fit(X, n_clusters, *, backend="auto", init="k-means++", max_iter=300, tol=1e-4, seed=0,
        device=None, dtype=None, threads=None, choose=None, **options) -> KMeansResult:
    """Cluster X with Lloyd's algorithm on the chosen backend (see ``kmbench.fit`` for the parameters).

    ``choose(n, k, d, dtype, device=...) -> (name, why)`` resolves ``backend="auto"``;
    without it, "auto" is refused.
    """
    X, data_dtype = check_data(X, dtype, scan=False)
    n, d = X.shape
    k = check_n_clusters(n_clusters, n)
    max_iter = check_int("max_iter", max_iter, 1)
    tol = check_tol(tol)
    seed = check_seed(seed)
    chosen_by = None
    if backend == "auto":
        if choose is None:
            raise ValueError("backend='auto' needs a chooser; use kmbench.fit, or name a backend")
        backend, chosen_by = choose(n, k, d, data_dtype, device=device)
    if not isinstance(backend, str):
        raise ValueError(f"backend must be a name from kmbench.backends(); got {backend!r}")
    cls = backend_class(backend)
    work_dtype = resolve_dtype(cls, data_dtype, dtype)
    if work_dtype != data_dtype:
        warnings.warn(f"backend {backend!r} supports only {work_dtype}: {data_dtype} data is computed in "
                      f"{work_dtype} (pass dtype={work_dtype!r} to say so)", DtypeChanged, stacklevel=3)
    X = host_input(cls, X)  # once, before the value scan and the seeding both read it
    check_values(X, work_dtype, threads=check_threads(threads))
    impl = create(backend, n=n, k=k, d=d, dtype=work_dtype, device=device, threads=threads, **options)
    centers = initial_centers(X, k, init, seed).astype(work_dtype)
    result = execute(impl, X, centers, max_iter=max_iter, tol=tol)
    if chosen_by is not None:
        result.info["auto"] = chosen_by
    return result
