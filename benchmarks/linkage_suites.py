"""The asv suites of the linkage family: every linkage backend over n, d and method.

Every benchmark has the parameters ``backend, n, d, method, dtype``. Cases a backend will not
serve (a method it refuses, a distance matrix over the memory budget, a profile's cap) raise
NotImplementedError in ``setup`` with the backend's reason: asv shows "n/a".

- ``LinkageTime.time_linkage``: the backend's ``run()`` (the whole linkage, Z included), prepared
  and warmed up in setup, as ``kmbench.linkage`` times it.
- ``LinkageMemory.peakmem_linkage``: peak resident memory of the process over one whole fit: the
  n x n matrix of the peers and numba's complete/average against the O(n*d) single and ward.
- ``LinkageQuality.track_height_error`` and ``track_min_ari``: the contract's comparison. The
  reference is the float64 oracle (kmbench/check/linkage_oracle.py) where its O(n^3) allows
  (n <= ORACLE_MAX_N), and SciPy's linkage beyond, which the oracle is itself checked against
  in the tests; ``track_reference`` records which (1: oracle, 0: SciPy).
"""
from __future__ import annotations

import os

import numpy as np

from .common import P, PROFILE, cache_dir

METHODS = ["single", "complete", "average", "ward"]
PARAM_NAMES = ["backend", "n", "d", "method", "dtype"]
#: the oracle is O(n^3) in Python loops: 300 points take seconds, 1000 would take minutes
ORACLE_MAX_N = 300
SEED = 0

LINKAGE_PROFILES = {
    "fast": {"sweep_n": [1_000, 5_000], "sweep_d": [4, 64], "base": (5_000, 16),
             "memory_n": [5_000], "quality": ([200, 2_000], [8]), "dtypes": ["float64"],
             "asv": {"rounds": 1, "repeat": (1, 2, 1.0), "warmup_time": 0.0, "timeout": 300}},
    "default": {"sweep_n": [1_000, 5_000, 20_000], "sweep_d": [4, 16, 64], "base": (10_000, 16),
                "memory_n": [5_000, 20_000], "quality": ([200, 5_000], [16]), "dtypes": ["float64", "float32"],
                "asv": {"rounds": 1, "repeat": (1, 3, 30.0), "warmup_time": 0.0, "timeout": 900}},
    "full": {"sweep_n": [1_000, 5_000, 20_000, 50_000], "sweep_d": [2, 16, 128], "base": (20_000, 16),
             "memory_n": [5_000, 20_000, 50_000], "quality": ([300, 20_000], [16]),
             "dtypes": ["float64", "float32"],
             "asv": {"rounds": 2, "repeat": (2, 5, 60.0), "warmup_time": 0.0, "timeout": 3600}},
}
LP = LINKAGE_PROFILES[PROFILE if PROFILE in LINKAGE_PROFILES else "default"]


def backend_names() -> list[str]:
    from kmbench.core.linkage import LINKAGE_REGISTRY

    wanted = [w.strip() for w in os.environ.get("KMBENCH_LINKAGE_BACKENDS", "").split(",") if w.strip()]
    return [name for name in LINKAGE_REGISTRY if not wanted or name in wanted]


BACKENDS = backend_names()


def dataset(n: int, d: int, dtype: str) -> np.ndarray:
    """Gaussian blobs (n, d), 16 centres, generated once per shape and kept on disk."""
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


def reference(n: int, d: int, method: str) -> tuple[np.ndarray, str]:
    """The reference Z for the quality track, and which one it is ("oracle" or "scipy")."""
    X = dataset(n, d, "float64")
    path = cache_dir() / f"linkage-ref-{method}-n{n}-d{d}-s{SEED}.npy"
    which = "oracle" if n <= ORACLE_MAX_N else "scipy"
    if path.exists():
        return np.load(path), which
    if which == "oracle":
        from kmbench.check.linkage_oracle import linkage

        Z = linkage(X, method)
    else:
        from scipy.cluster.hierarchy import linkage

        Z = linkage(X, method)
    np.save(path, Z)
    return Z, which


def _asv_attributes(cls):
    for key, value in LP["asv"].items():
        if key not in cls.__dict__:
            setattr(cls, key, value)
    return cls


class _LinkageCase:
    param_names = PARAM_NAMES
    warm = True

    def setup(self, backend, n, d, method, dtype):
        from kmbench.core.linkage import create
        from kmbench.runner import BackendUnavailable

        self.backend = None
        try:
            self.backend = create(backend, n=n, d=d, dtype=dtype, method=method, threads=None)
        except BackendUnavailable as exc:
            raise NotImplementedError(str(exc)) from None
        self.X = dataset(n, d, dtype)
        if self.warm:
            self.backend.prepare(self.X, method)
            self.backend.warm_up()

    def teardown(self, *params):
        if self.backend is not None:
            self.backend.close()
            self.backend = None


@_asv_attributes
class LinkageTime(_LinkageCase):
    """Seconds per linkage: n swept at the base d, every method."""

    params = [BACKENDS, LP["sweep_n"], [LP["base"][1]], METHODS, LP["dtypes"]]

    def time_linkage(self, backend, n, d, method, dtype):
        self.backend.run()


@_asv_attributes
class LinkageTimeD(_LinkageCase):
    """Seconds per linkage: d swept at the base n, every method, float64."""

    params = [BACKENDS, [LP["base"][0]], LP["sweep_d"], METHODS, ["float64"]]

    def time_linkage(self, backend, n, d, method, dtype):
        self.backend.run()


@_asv_attributes
class LinkageMemory(_LinkageCase):
    """Peak resident memory of one whole fit (prepare to result); data and libraries count too."""

    params = [BACKENDS, LP["memory_n"], [16], METHODS, ["float64"]]
    warm = False

    def peakmem_linkage(self, backend, n, d, method, dtype):
        from kmbench.core.linkage import execute

        execute(self.backend, self.X, method)


@_asv_attributes
class LinkageQuality(_LinkageCase):
    """The contract's comparison with the oracle (small n) or SciPy (large n)."""

    params = [BACKENDS, LP["quality"][0], LP["quality"][1], METHODS, ["float64"]]
    warm = False

    def _check(self, n, d, method):
        from kmbench.check.linkage_oracle import agreement
        from kmbench.core.linkage import execute

        Z_ref, which = reference(n, d, method)
        return agreement(execute(self.backend, self.X, method).Z, Z_ref), which

    def track_height_error(self, backend, n, d, method, dtype):
        return self._check(n, d, method)[0]["height_error"]

    track_height_error.unit = "relative"

    def track_min_ari(self, backend, n, d, method, dtype):
        return self._check(n, d, method)[0]["min_ari"]

    track_min_ari.unit = "ARI"

    def track_reference(self, backend, n, d, method, dtype):
        return 1.0 if n <= ORACLE_MAX_N else 0.0

    track_reference.unit = "1 = oracle, 0 = SciPy"
