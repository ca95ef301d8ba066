"""K-Means backends, one small file each, behind one interface (``impls.base.Backend``).

Which names exist lives in ``kmbench.core.registry`` (as data, for every family);
``REGISTRY`` and ``load`` here are the K-Means part of it, kept for old callers.
Backends import only ``kmbench.core`` and their own base.
"""
from __future__ import annotations

from kmbench.core.registry import REGISTRY as _ALL, load as _load

REGISTRY: dict[str, str] = _ALL["kmeans"]


def load(name: str):
    """The K-Means backend class registered under ``name``, or named by a ``"module:Class"`` spec."""
    return _load(name, "kmeans")
