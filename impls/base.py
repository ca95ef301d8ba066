"""The interface every K-Means backend implements.

A backend declares what it can do as literal class attributes (the family-neutral
ones live on ``kmbench.core.backend.Backend``: name, requires, devices, dtypes,
deviations, parameters, color, marker, fallback_rank, compiles, distributed), says
*why* it cannot serve a case through ``unavailable()`` (environment) and ``skip()``
(size, dtype, device), and runs one fit as four calls that the harness times:

    prepare(X, centers)  untimed: casts, copies, host-to-device transfers
    warm_up()            untimed: JIT compilation, CUDA context, first-call costs
    run(max_iter, tol)   timed: the Lloyd iterations; returns after device work is done
    result()             untimed: device-to-host, as a :class:`Fitted`
    close()              untimed: release clusters or device memory

Backends never time themselves and never pick their own thread count: the
harness does both (``kmbench.core.engine``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from kmbench.core.backend import Backend as CoreBackend, Interval
from kmbench.core.measures import distances_to_own, exact_inertia, mean_variance

__all__ = ["Backend", "KMeansBackend", "Fitted", "Interval", "distances_to_own", "exact_inertia", "limit_option",
           "mean_variance"]


@dataclass
class Fitted:
    """What a backend hands back; the harness adds timings and provenance.

    Attributes
    ----------
    centers : ndarray of shape (n_clusters, n_features), working dtype
    labels : ndarray of shape (n_samples,), int32, assigned against ``centers``
    inertia : float, sum of squared distances to ``centers``, float64
    n_iter : int, Lloyd iterations run
    converged : bool
    inertia_history : list of float, inertia of each iteration's assignment
    info : dict, backend-specific facts worth recording (chunk size, TF32, ...)
    """

    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    converged: bool
    inertia_history: list = field(default_factory=list)
    info: dict = field(default_factory=dict)


class Backend(CoreBackend):
    """Base of the K-Means backends: the core base's facts plus the Lloyd cycle."""

    #: True where the backend stops at label stability even when ``tol < 0``
    stops_early: bool = False
    #: False where two identical calls may differ in the last bits of the centres (sums added
    #: by atomics in a varying order, as on a GPU); labels and the oracle check still agree
    repeatable: bool = True
    #: input containers taken as they are ("torch", "dask"); others arrive as NumPy arrays
    native_inputs: tuple = ()

    def skip(self, n: int, k: int, d: int, dtype: str) -> str | None:
        """Why this backend will not run this case (size, dtype, device), or None."""
        return CoreBackend.skip(self, n=n, k=k, d=d, dtype=dtype)

    # -- the timed cycle --------------------------------------------------------------
    def prepare(self, X, centers: np.ndarray) -> None:
        raise NotImplementedError

    def run(self, max_iter: int, tol: float) -> None:
        """Run Lloyd iterations from the prepared centres; may be called again (asv repeats it).

        ``tol`` is relative, as in the contract: the backend scales it by ``mean(var(X))``
        (``kmbench.core.measures``, computed in ``prepare``); ``tol < 0`` means exactly
        ``max_iter`` iterations.
        """
        raise NotImplementedError

    def result(self) -> Fitted:
        raise NotImplementedError


#: the K-Means base under its descriptive name
KMeansBackend = Backend


def limit_option(options: dict, key: str, env: str, default: float) -> float:
    """A positive size limit from ``options[key]``, else environment variable ``env``, else ``default``."""
    if key in options:
        value, source = options[key], key
    elif env in os.environ:
        value, source = os.environ[env], env
    else:
        return float(default)
    try:
        limit = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}={value!r} should be a positive number") from None
    if not limit > 0:
        raise ValueError(f"{source}={value!r} should be a positive number")
    return limit
