"""The asv suites of the linkage family: every linkage backend over n, d and method.

Every benchmark has the parameters ``backend, n, d, method, dtype``; the profile's ``linkage``
table (``profiles.toml``) fixes their values. Rows of this module are the ``linkage`` family in
``kmbench.bench.records``. Cases a backend will not serve (a method it refuses, a distance
matrix over the memory budget) raise NotImplementedError in ``setup`` with the backend's reason:
asv shows "n/a", and ``kmbench bench`` keeps the reason.

- ``LinkageTime.track_linkage`` / ``LinkageTimeD.track_linkage``: median seconds of the
  backend's ``run()`` (the whole linkage, Z included) over the profile's runs, timed by the
  harness's stopwatch (``kmbench.core.engine``) after prepare and warm-up, as ``kmbench.linkage``
  times it.
- ``LinkageMemory.peakmem_linkage``: peak resident memory of the process over one whole fit: the
  n x n matrix of the peers and of numba's complete/average against the O(n*d) single and ward.
- ``LinkageQuality.track_height_error`` and ``track_min_ari``: the contract's comparison. The
  reference is the float64 oracle (kmbench/check/linkage_oracle.py) where its O(n^3) allows
  (n <= ORACLE_MAX_N), and SciPy's linkage beyond it (the tests check the oracle against SciPy);
  ``track_reference`` records which (1: oracle, 0: SciPy).
"""
from __future__ import annotations

import os
from contextlib import ExitStack

import numpy as np

from .common import P, cache_dir, record_skip

L = P["linkage"]
METHODS = ["single", "complete", "average", "ward"]
PARAM_NAMES = ["backend", "n", "d", "method", "dtype"]
#: the oracle is O(n^3) in Python loops: 300 points take seconds, 1000 would take minutes
ORACLE_MAX_N = 300
SEED = 0


def backend_names() -> list[str]:
    """The linkage registry; ``KMBENCH_LINKAGE_BACKENDS=a,b`` keeps only those."""
    from kmbench.core.registry import names

    wanted = [w.strip() for w in os.environ.get("KMBENCH_LINKAGE_BACKENDS", "").split(",") if w.strip()]
    known = names("linkage")
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ValueError(f"KMBENCH_LINKAGE_BACKENDS names {', '.join(map(repr, unknown))}; "
                         f"choose from {', '.join(known)}")
    return [name for name in known if not wanted or name in wanted]


BACKENDS = backend_names()


def dataset(n: int, d: int, dtype: str) -> np.ndarray:
    """Gaussian blobs (n, d) around 16 centres, generated once per shape and kept on disk."""
    path = cache_dir() / f"linkage-blobs-n{n}-d{d}-s{SEED}.npy"
    if path.exists():
        X = np.load(path)
    else:
        rng = np.random.default_rng(SEED)
        centers = rng.standard_normal((16, d)) * 4
        X = centers[rng.integers(0, 16, n)] + rng.standard_normal((n, d))
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, X)
        os.replace(tmp, path)
    return np.ascontiguousarray(X, dtype=dtype)


def reference(n: int, d: int, method: str) -> np.ndarray:
    """The reference Z of the quality track: the oracle up to ORACLE_MAX_N points, SciPy beyond."""
    path = cache_dir() / f"linkage-ref-{method}-n{n}-d{d}-s{SEED}.npy"
    if path.exists():
        return np.load(path)
    X = dataset(n, d, "float64")
    if n <= ORACLE_MAX_N:
        from kmbench.check.linkage_oracle import linkage
    else:
        from scipy.cluster.hierarchy import linkage
    Z = linkage(X, method)
    np.save(path, Z)
    return Z


def _asv_attributes(cls):
    for key, value in L["asv"].items():
        if key not in cls.__dict__:
            setattr(cls, key, tuple(value) if isinstance(value, list) else value)
    return cls


class _LinkageCase:
    param_names = PARAM_NAMES
    warm = True

    def setup(self, backend, n, d, method, dtype):
        from kmbench.core.engine import session
        from kmbench.core.errors import BackendUnavailable
        from kmbench.core.linkage import create

        self.backend, self._stack = None, ExitStack()
        try:
            self.backend = create(backend, n=n, d=d, dtype=dtype, method=method)
        except BackendUnavailable as exc:
            record_skip(f"linkage_suites.{type(self).__name__}", (backend, n, d, method, dtype), str(exc))
            raise NotImplementedError(str(exc)) from None
        self.X = dataset(n, d, dtype)
        if self.warm:
            self._stack.enter_context(session(self.backend, (self.X, method)))

    def teardown(self, *params):
        self._stack.close()
        self.backend = None


class _Timed(_LinkageCase):
    def track_linkage(self, backend, n, d, method, dtype):
        from kmbench.core.engine import time_runs

        return float(np.median(time_runs(self.backend, runs=L["runs"], seconds=L["run_seconds"])))

    track_linkage.unit = "seconds"


@_asv_attributes
class LinkageTime(_Timed):
    """Seconds per linkage: n swept at the base d, every method."""

    params = [BACKENDS, L["sweep_n"], [L["base"][1]], METHODS, L["dtypes"]]


@_asv_attributes
class LinkageTimeD(_Timed):
    """Seconds per linkage: d swept at the base n, every method, float64."""

    params = [BACKENDS, [L["base"][0]], L["sweep_d"], METHODS, ["float64"]]


@_asv_attributes
class LinkageMemory(_LinkageCase):
    """Peak resident memory of one whole fit (prepare to result); data and libraries count too."""

    params = [BACKENDS, L["memory_n"], [L["base"][1]], METHODS, ["float64"]]
    warm = False

    def peakmem_linkage(self, backend, n, d, method, dtype):
        from kmbench.core.linkage import execute

        execute(self.backend, self.X, method)


@_asv_attributes
class LinkageQuality(_LinkageCase):
    """The contract's comparison with the oracle (small n) or SciPy (large n)."""

    params = [BACKENDS, L["quality"][0], L["quality"][1], METHODS, ["float64"]]
    warm = False

    def _agreement(self, n, d, method):
        from kmbench.check.linkage_oracle import agreement
        from kmbench.core.linkage import execute

        return agreement(execute(self.backend, self.X, method).Z, reference(n, d, method))

    def track_height_error(self, backend, n, d, method, dtype):
        return self._agreement(n, d, method)["height_error"]

    track_height_error.unit = "relative"

    def track_min_ari(self, backend, n, d, method, dtype):
        return self._agreement(n, d, method)["min_ari"]

    track_min_ari.unit = "ARI"

    def track_reference(self, backend, n, d, method, dtype):
        return 1.0 if n <= ORACLE_MAX_N else 0.0

    track_reference.unit = "1 = oracle, 0 = SciPy"
