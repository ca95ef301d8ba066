"""The hierarchical-clustering family: ``kmbench.linkage``, its validation and its backend list.

As for K-Means, the harness validates, picks a backend, sets threads and alone times the
cycle ``prepare -> warm_up -> run -> result``; backends (``impls/linkage/``) never time
themselves. docs/contract.md, "Hierarchical (agglomerative) clustering", states the function.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field

import numpy as np

METHODS = ("single", "complete", "average", "ward")

#: the linkage family's registry: name -> "module:Class", imported only when used
LINKAGE_REGISTRY: dict[str, str] = {
    "scipy": "impls.linkage.scipy_linkage:ScipyLinkage",
    "fastcluster": "impls.linkage.fastcluster_linkage:FastclusterLinkage",
    "sklearn": "impls.linkage.sklearn_linkage:SklearnLinkage",
    "numba": "impls.linkage.numba_linkage:NumbaLinkage",
    "torch-cpu": "impls.linkage.torch_linkage:TorchCPULinkage",
    "torch-cuda": "impls.linkage.torch_linkage:TorchCUDALinkage",
}

#: ``auto`` with nothing recorded: the first of these that runs the case (fastest first on
#: typical CPUs: numba's O(n*d) kernels, fastcluster, then the peers that hold the matrix)
FALLBACK = ("numba", "fastcluster", "scipy", "sklearn", "torch-cuda", "torch-cpu")


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


def check_method(method) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method={method!r} should be one of {', '.join(repr(m) for m in METHODS)}")
    return method


def load(name: str):
    """The linkage backend class registered under ``name`` or named by a ``"module:Class"`` spec."""
    target = LINKAGE_REGISTRY.get(name) or (name if isinstance(name, str) and ":" in name else None)
    if target is None:
        raise ValueError(f"unknown linkage backend {name!r}; known: {', '.join(LINKAGE_REGISTRY)}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def backends() -> list[dict]:
    """Every registered linkage backend with its availability, found without importing heavy libraries."""
    rows = []
    for name in LINKAGE_REGISTRY:
        try:
            cls = load(name)
        except ImportError as exc:  # a broken backend module must not hide the others
            rows.append({"name": name, "available": False, "reason": f"could not load: {exc}", "devices": [],
                         "dtypes": [], "methods": [], "deviations": {}})
            continue
        reason = cls.unavailable()
        rows.append({"name": name, "available": reason is None, "reason": reason, "devices": list(cls.devices),
                     "dtypes": list(cls.dtypes), "methods": list(cls.methods), "deviations": dict(cls.deviations)})
    return rows


def create(name: str, *, n: int, d: int, dtype: str, method: str, device=None, threads=None, **options):
    """An instance of linkage backend ``name`` ready for this case, or BackendUnavailable saying why not."""
    from kmbench.runner import BackendUnavailable
    from kmbench.threads import check_threads

    cls = load(name)
    reason = cls.unavailable()
    if reason is None:
        backend = cls(threads=check_threads(threads), device=device, **options)
        reason = backend.skip(n, d, dtype, method)
        if reason is None:
            return backend
    raise BackendUnavailable(f"linkage backend {name!r} cannot run this case: {reason}")


def candidates(n: int, d: int, dtype: str, method: str, names=None, device=None) -> tuple[list, dict]:
    """The backends among ``names`` (default: all) that run this case, and why the others do not."""
    ok, why = [], {}
    for name in names or LINKAGE_REGISTRY:
        try:
            create(name, n=n, d=d, dtype=dtype, method=method, device=device, threads=1).close()
        except Exception as exc:  # noqa: BLE001 - the reason is what is reported
            why[name] = str(exc).split(": ", 1)[-1]
        else:
            ok.append(name)
    return ok, why


def choose(n: int, d: int, dtype: str, method: str, *, device=None) -> tuple[str, str]:
    """``backend="auto"``: the fastest recorded backend for this case, else the first of FALLBACK that runs it."""
    from kmbench.runner import BackendUnavailable

    ranking, problem = [], ""
    try:
        from kmbench.recommend_linkage import rank_recorded

        ranking = rank_recorded(n, d, dtype, method, device)
    except ImportError:
        pass
    except Exception as exc:  # unreadable results must not stop a fit; say so in the reason
        problem = f" (recorded results unreadable: {exc})"
    eligible = [r for r in ranking if r["eligible"]]
    if eligible:
        return eligible[0]["backend"], "ranked by recorded results: " + eligible[0]["reason"]
    refused = {}
    for name in FALLBACK:
        ok, why = candidates(n, d, dtype, method, [name], device)
        if ok:
            return name, (f"no recorded linkage results for this machine{problem}; first backend of the fallback "
                          f"order ({', '.join(FALLBACK)}) that runs {method} linkage of n={n}, d={d}, {dtype}")
        refused.update(why)
    raise BackendUnavailable(f"backend 'auto' found none for {method} linkage of n={n}, d={d}, {dtype}: "
                             + "; ".join(f"{name}: {reason}" for name, reason in refused.items()))


def execute(backend, X: np.ndarray, method: str) -> LinkageResult:
    """The timed cycle of a created backend: prepare and warm-up untimed, run timed, result untimed."""
    from kmbench.threads import limited_threads

    for module in backend.requires:
        importlib.import_module(module)  # so thread pools exist before they are capped
    with limited_threads(backend.threads):
        try:
            t0 = time.perf_counter()
            backend.prepare(X, method)
            t1 = time.perf_counter()
            backend.warm_up()
            t2 = time.perf_counter()
            backend.run()
            t3 = time.perf_counter()
            out = backend.result()
        finally:
            backend.close()
    info = dict(out.info)
    if backend.deviations:
        info["deviations"] = dict(backend.deviations)
    return LinkageResult(Z=np.asarray(out.Z, dtype=np.float64), method=method, backend=backend.name,
                         device=str(backend.device), dtype=str(X.dtype), threads=backend.threads,
                         timings={"prepare": t1 - t0, "warmup": t2 - t1, "fit": t3 - t2}, info=info)


def linkage(X, method="ward", *, backend="auto", dtype=None, threads=None, **options) -> LinkageResult:
    """Hierarchical (agglomerative) clustering of X: SciPy's linkage matrix, on the chosen backend.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), n_samples >= 2
        NumPy array, array-like or torch tensor; float32/float64 kept, other real types become float64.
    method : {"single", "complete", "average", "ward"}, default "ward"
        Linkage on Euclidean distances, as ``scipy.cluster.hierarchy.linkage(X, method)``.
    backend : str, default "auto"
        A name from ``kmbench.backends(family="linkage")``, or "auto".
    dtype : {"float32", "float64"}, optional
    threads : int, optional
        Threads for every pool (BLAS, OpenMP, Numba, torch); ``KMBENCH_THREADS`` or all cores.
    **options
        Backend-specific options; ``max_bytes`` caps the distance matrices a backend may hold
        (default: half the memory available).

    Returns
    -------
    LinkageResult
        ``result.Z`` has shape (n_samples - 1, 4).
    """
    from kmbench.seeding import as_host_array
    from kmbench.validation import check_data, check_values, is_lazy_array, is_torch_tensor

    X, data_dtype = check_data(X, dtype, scan=False)
    method = check_method(method)
    n, d = X.shape
    if n < 2:
        raise ValueError(f"n_samples={n} should be >= 2: linkage merges at least two points")
    chosen_by = None
    if backend == "auto":
        backend, chosen_by = choose(n, d, data_dtype, method)
    if not isinstance(backend, str):
        raise ValueError(f"backend must be a name from kmbench.backends(family='linkage'); got {backend!r}")
    impl = create(backend, n=n, d=d, dtype=data_dtype, method=method, threads=threads, **options)
    if is_torch_tensor(X) or is_lazy_array(X):
        X = as_host_array(X)
    X = np.asarray(X, dtype=data_dtype)
    check_values(X, data_dtype)
    result = execute(impl, X, method)
    if chosen_by is not None:
        result.info["auto"] = chosen_by
    return result
