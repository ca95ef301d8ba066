"""Hierarchical clustering on a named backend: validate, create, and time the cycle through the engine.

docs/contract.md, "Hierarchical (agglomerative) clustering", states the function. As for
K-Means, ``backend="auto"`` is resolved by a ``choose`` callable handed in from above
(``kmbench.linkage`` passes ``kmbench.advise.linkage.choose``), so the core never reads
recorded benchmarks itself.
"""
from __future__ import annotations

import numpy as np

from kmbench.core import registry
from kmbench.core.engine import timed_cycle
from kmbench.core.errors import BackendUnavailable
from kmbench.core.result import LinkageResult
from kmbench.core.seeding import as_host_array
from kmbench.core.validation import check_data, check_values, is_lazy_array, is_torch_tensor

__all__ = ["METHODS", "BackendUnavailable", "backends", "check_method", "create", "execute", "linkage", "load"]

METHODS = ("single", "complete", "average", "ward")
FAMILY = "linkage"


def check_method(method) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method={method!r} should be one of {', '.join(repr(m) for m in METHODS)}")
    return method


def load(name: str):
    """The linkage backend class registered under ``name`` or named by a ``"module:Class"`` spec."""
    return registry.load(name, FAMILY)


def backends() -> list[dict]:
    """Every registered linkage backend with its availability and the methods it serves."""
    rows = registry.backends(FAMILY)
    for row in rows:
        try:
            row["methods"] = list(load(row["name"]).methods)
        except ImportError:
            row["methods"] = []
    return rows


def create(name: str, *, n: int, d: int, dtype: str, method: str, device=None, threads=None, **options):
    """An instance of linkage backend ``name`` ready for this case, or BackendUnavailable saying why not."""
    return registry.create(name, family=FAMILY, device=device, threads=threads, options=options,
                           n=n, d=d, dtype=dtype, method=method)


def execute(backend, X: np.ndarray, method: str) -> LinkageResult:
    """The timed cycle of a created backend: prepare and warm-up untimed, run timed, result untimed."""
    out, timings = timed_cycle(backend, (X, method))
    timings["fit"] = timings.pop("run")
    info = dict(out.info)
    if backend.deviations:
        info["deviations"] = dict(backend.deviations)
    return LinkageResult(Z=np.asarray(out.Z, dtype=np.float64), method=method, backend=backend.name,
                         device=str(backend.device), dtype=str(X.dtype), threads=backend.threads,
                         timings=timings, info=info)


def linkage(X, method="ward", *, backend="auto", device=None, dtype=None, threads=None, choose=None,
            **options) -> LinkageResult:
    """Hierarchical clustering of X on the chosen backend (see ``kmbench.linkage`` for the parameters).

    ``choose(n, d, dtype, method, device=...) -> (name, why)`` resolves ``backend="auto"``;
    without it, "auto" is refused.
    """
    X, data_dtype = check_data(X, dtype, scan=False)
    method = check_method(method)
    n, d = X.shape
    if n < 2:
        raise ValueError(f"n_samples={n} should be >= 2: linkage merges at least two points")
    chosen_by = None
    if backend == "auto":
        if choose is None:
            raise ValueError("backend='auto' needs a chooser; use kmbench.linkage, or name a backend")
        backend, chosen_by = choose(n, d, data_dtype, method, device=device)
    if not isinstance(backend, str):
        raise ValueError(f"backend must be a name from kmbench.backends(family='linkage'); got {backend!r}")
    impl = create(backend, n=n, d=d, dtype=data_dtype, method=method, device=device, threads=threads, **options)
    if is_torch_tensor(X) or is_lazy_array(X):
        X = as_host_array(X)
    X = np.ascontiguousarray(X, dtype=data_dtype)
    check_values(X, data_dtype, threads=impl.threads)
    result = execute(impl, X, method)
    if chosen_by is not None:
        result.info["auto"] = chosen_by
    return result
