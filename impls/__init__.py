"""K-Means backends behind one interface (``impls.base.Backend``).

The registry maps each name to a ``"module:Class"`` string, so listing backends
imports nothing heavy; a backend's module is imported only when it is used.
To add a backend: write ``impls/<what_it_is>.py`` with one ``Backend`` subclass
and add a line here.
"""
from __future__ import annotations

import importlib

REGISTRY: dict[str, str] = {
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
}


def load(name: str):
    """The backend class registered under ``name``, or named by a ``"module:Class"`` spec.

    A spec lets a backend be timed and checked before it is registered. KeyError lists the
    known names.
    """
    target = REGISTRY.get(name) or (name if ":" in name else None)
    if target is None:
        raise KeyError(f"unknown backend {name!r}; known: {', '.join(REGISTRY)}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)
