"""Every backend of every algorithm family, as data: ``family -> name -> "module:Class"``.

Listing imports nothing heavy: a backend's module is imported only when it is loaded,
and asking a class whether it can run (``unavailable()``) checks for its libraries
without importing them. To add a backend: write one file under ``impls/`` (a subclass
of the family's base) and add a line here.
"""
from __future__ import annotations

import importlib

from kmbench.core.errors import BackendUnavailable, UnknownBackend

REGISTRY: dict[str, dict[str, str]] = {
    "kmeans": {
        "loop": "impls.loop:LoopKMeans",
        "broadcast": "impls.broadcast:BroadcastKMeans",
        "identity": "impls.identity:IdentityKMeans",
        "float32": "impls.float32:Float32KMeans",
        "numba": "impls.numba_fused:NumbaKMeans",
        "torch-cpu": "impls.torch_lloyd:TorchCPUKMeans",
        "torch-cuda": "impls.torch_lloyd:TorchCUDAKMeans",
        "sklearn": "impls.sklearn_lloyd:SklearnKMeans",
        "faiss": "impls.faiss_lloyd:FaissKMeans",
        "sklearnex": "impls.sklearnex_lloyd:SklearnexKMeans",
        "dask": "impls.dask_lloyd:DaskKMeans",
        "dask-ml": "impls.dask_ml_lloyd:DaskMLKMeans",
    },
    "linkage": {
        "scipy": "impls.linkage.scipy_linkage:ScipyLinkage",
        "fastcluster": "impls.linkage.fastcluster_linkage:FastclusterLinkage",
        "sklearn": "impls.linkage.sklearn_linkage:SklearnLinkage",
        "numba": "impls.linkage.numba_linkage:NumbaLinkage",
        "torch-cpu": "impls.linkage.torch_linkage:TorchCPULinkage",
        "torch-cuda": "impls.linkage.torch_linkage:TorchCUDALinkage",
    },
}


def families() -> list[str]:
    return list(REGISTRY)


def names(family: str = "kmeans") -> list[str]:
    """Registered names of ``family``, in registry order (the order legends and listings use)."""
    return list(_family(family))


def _family(family: str) -> dict[str, str]:
    try:
        return REGISTRY[family]
    except KeyError:
        raise ValueError(f"family={family!r} is not one of {', '.join(map(repr, REGISTRY))}") from None


def load(name: str, family: str = "kmeans"):
    """The backend class registered under ``name``, or named by a ``"module:Class"`` spec.

    A spec lets a backend be timed and checked before it is registered.

    Raises
    ------
    UnknownBackend
        (a ValueError and a KeyError) listing the known names.
    ImportError
        the backend's module does not import.
    """
    known = _family(family)
    target = known.get(name) if isinstance(name, str) else None
    if target is None and isinstance(name, str) and ":" in name:
        target = name
    if target is None:
        what = "backend" if family == "kmeans" else f"{family} backend"
        raise UnknownBackend(f"unknown {what} {name!r}; known: {', '.join(known)} "
                             "(or a 'module:Class' string)")
    module, _, cls = target.partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except AttributeError:
        raise UnknownBackend(f"backend {name!r}: module {module!r} has no class {cls!r}") from None


def backends(family: str = "kmeans") -> list[dict]:
    """Every registered backend of ``family`` with its availability and declared facts."""
    rows = []
    for name in _family(family):
        try:
            cls = load(name, family)
        except ImportError as exc:  # a broken backend module must not hide the others
            rows.append({"name": name, "available": False, "reason": f"could not load: {exc}",
                         "devices": [], "dtypes": [], "deviations": {}})
            continue
        reason = cls.unavailable()
        rows.append({"name": name, "available": reason is None, "reason": reason,
                     "devices": list(cls.devices), "dtypes": list(cls.dtypes),
                     "deviations": dict(cls.deviations)})
    return rows


def classes(family: str = "kmeans") -> dict:
    """``{name: class}`` for every registered backend whose module imports (heavy modules stay unimported)."""
    out = {}
    for name in _family(family):
        try:
            out[name] = load(name, family)
        except ImportError:
            continue
    return out


def create(name: str, *, family: str = "kmeans", device=None, threads=None, options=None, **case):
    """An instance of backend ``name`` ready for this case, or BackendUnavailable saying why not.

    ``case`` goes to the backend's ``skip(**case)`` (K-Means: ``n, k, d, dtype``);
    ``options`` to its constructor, where the base checks them against the class's
    declared ``parameters``.
    """
    from kmbench.core.threads import check_threads

    cls = load(name, family)
    reason = cls.unavailable()
    if reason is None:
        backend = cls(threads=check_threads(threads), device=device, **(options or {}))
        reason = backend.skip(**case)
        if reason is None:
            return backend
    raise BackendUnavailable(f"backend {name!r} cannot run this case: {reason}")


def candidates(names=None, *, family: str = "kmeans", device=None, **case) -> tuple[list[str], dict]:
    """Backends that can run this case here, and ``{name: reason}`` for those that cannot.

    A backend qualifies when it is available, supports ``case["dtype"]`` natively (a
    choice never changes the data's precision behind the caller's back), runs on
    ``device`` and its ``skip(**case)`` accepts the case.
    """
    ok, refused = [], {}
    for name in names or _family(family):
        try:
            cls = load(name, family)
        except (ImportError, ValueError) as exc:
            refused[name] = f"could not load: {exc}"
            continue
        reason = cls.unavailable()
        dtype = case.get("dtype")
        if reason is None and dtype is not None and dtype not in cls.dtypes:
            reason = f"computes in {', '.join(cls.dtypes)}, not {dtype}"
        if reason is None and device is not None and device not in cls.devices:
            reason = f"does not run on device={device!r}"
        if reason is None:
            reason = cls(threads=1, device=device).skip(**case)
        if reason is None:
            ok.append(name)
        else:
            refused[name] = reason
    return ok, refused


def fallback_order(family: str = "kmeans") -> list[str]:
    """Backends with a ``fallback_rank``, lowest first: what ``auto`` tries when nothing was measured."""
    ranked = [(cls.fallback_rank, name) for name, cls in classes(family).items() if cls.fallback_rank is not None]
    return [name for _, name in sorted(ranked)]
