"""What the asv suites share: the profile (``profiles.toml``), backends, cached data, and a prepared backend.

Importing this module must stay cheap (asv imports it to discover benchmarks and
again in every benchmark process), so it imports NumPy and kmbench's light modules
only; a backend's heavy library is imported when that backend is prepared.

Profiles are chosen by ``KMBENCH_PROFILE`` (``fast``, ``default``, ``full``) when the
module is imported, so one profile fixes every parameter list of one asv run.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from kmbench.core import registry

#: Lloyd iterations of every fixed-work measurement (``tol < 0``).
ITERATIONS = 10
#: seed of the data and of ``init="random"``: every backend starts from the same centres
SEED = 0
#: the main dtype; ``suites.Dtype`` adds float64
DTYPE = "float32"

def backend_names() -> list[str]:
    """Registry names minus the distributed backends (``Backend.distributed``: measured for scaling by
    ``benchmarks/dask_scaling.py``); ``KMBENCH_BACKENDS=a,b`` keeps only those (in registry order)."""
    names = [name for name, cls in registry.classes("kmeans").items() if not cls.distributed]
    wanted = [w.strip() for w in os.environ.get("KMBENCH_BACKENDS", "").split(",") if w.strip()]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise ValueError(f"KMBENCH_BACKENDS names {', '.join(map(repr, unknown))}, which the suites do not "
                         f"run; choose from {', '.join(names)}")
    return [name for name in names if name in wanted] if wanted else names


BACKENDS = backend_names()

def load_profiles(path: Path = Path(__file__).with_name("profiles.toml")) -> dict:
    """The profiles, as data (``profiles.toml``): asv's repeat settings become the tuples asv expects."""
    import tomllib

    with open(path, "rb") as fh:
        profiles = tomllib.load(fh)
    for spec in profiles.values():
        spec.setdefault("loop_limit", None)
        spec["base"] = tuple(spec["base"])
        for key in ("convergence", "warmup", "memory", "quality"):
            spec[key] = tuple(spec[key])
        if isinstance(spec["warmup_repeat"], list):
            spec["warmup_repeat"] = tuple(spec["warmup_repeat"])
        spec["asv"]["repeat"] = tuple(spec["asv"]["repeat"])
    return profiles


PROFILES = load_profiles()


def profile_name() -> str:
    name = os.environ.get("KMBENCH_PROFILE", "default")
    if name not in PROFILES:
        raise ValueError(f"KMBENCH_PROFILE={name!r} should be one of {', '.join(PROFILES)}")
    return name


PROFILE = profile_name()
P = PROFILES[PROFILE]


def _in_asv_forkserver() -> bool:
    """Whether this process is asv's fork server (``benchmark.py run_server ...``), not discovery."""
    return len(sys.argv) > 1 and sys.argv[1] == "run_server"


def _preload_wanted() -> bool:
    # kmbench bench turns it off for peak-memory benchmarks: a forked child's peak RSS
    # would otherwise include every backend's libraries.
    return os.environ.get("KMBENCH_PRELOAD", "1") != "0"


def preload() -> list[str]:
    """Import the heavy libraries of every available backend, once, in asv's fork server.

    Each benchmark is a child forked from the server, so without this every one of them
    would pay torch's or scikit-learn's import (seconds) in its setup. Importing starts no
    compute threads (their pools are created on first use, in the child), so forking after
    it is safe. Returns the modules imported.
    """
    done = []
    for name in BACKENDS:
        try:
            cls = registry.load(name)
            if cls.unavailable() is not None:
                continue
            for module in cls.requires:
                importlib.import_module(module)
                done.append(module)
        except Exception:  # a broken backend is reported by its own setup, not here
            continue
    return done


def cache_dir() -> Path:
    """``KMBENCH_CACHE`` or ``.kmbench-cache`` beside asv.conf.json (git-ignored)."""
    root = os.environ.get("KMBENCH_CACHE") or os.path.join(os.environ.get("ASV_CONF_DIR", os.getcwd()),
                                                          ".kmbench-cache")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


_MEMO: dict = {}


def _cached(key: str, make):
    """``make()`` -> dict of arrays, memoised in-process and as ``.npz`` on disk under ``key``."""
    if key in _MEMO:
        return _MEMO[key]
    path = cache_dir() / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path) as f:
                value = {name: f[name] for name in f.files}
        except (OSError, ValueError, EOFError):  # a run killed mid-write leaves a torn file
            value = None
        if value is not None:
            _MEMO[key] = value
            return value
    value = make()
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **value)
    os.replace(tmp, path)
    _MEMO[key] = value
    return value


def dataset(n: int, k: int, d: int, dtype: str = DTYPE) -> tuple[np.ndarray, np.ndarray]:
    """Blobs X of shape (n, d) with k true clusters, and ``init="random"`` centres (k, d), both ``dtype``.

    Generated once per shape (in float64, then cast) and kept on disk, so every
    backend, repeat and profile sees the same points and the same starting centres.
    """
    from kmbench.check.data import blobs
    from kmbench.core.seeding import initial_centers

    def make():
        X, _ = blobs(n, d, k, seed=SEED)
        return {"X": X, "C": initial_centers(X, k, "random", SEED)}

    base = _cached(f"blobs-n{n}-k{k}-d{d}-s{SEED}", make)
    key = ("cast", n, k, d, dtype)
    if key not in _MEMO:
        _MEMO[key] = (np.ascontiguousarray(base["X"], dtype=dtype), base["C"].astype(dtype))
    return _MEMO[key]


def oracle_result(n: int, k: int, d: int, dtype: str, max_iter: int = ITERATIONS, tol: float = -1.0):
    """The float64 oracle (``kmbench.check.oracle.lloyd``) on ``dataset(n, k, d, dtype)``, cached on disk."""
    import kmbench.check.oracle as oracle

    X, C = dataset(n, k, d, dtype)

    def make():
        r = oracle.lloyd(X, C, max_iter, tol)
        return {"centers": r.centers, "labels": r.labels, "distances": r.distances,
                "scalars": np.array([r.inertia, r.n_iter, r.converged, r.relocated, r.degenerate], dtype=float)}

    v = _cached(f"oracle-n{n}-k{k}-d{d}-{dtype}-i{max_iter}-t{tol:g}-s{SEED}", make)
    inertia, n_iter, converged, relocated, degenerate = v["scalars"]
    return oracle.OracleResult(centers=v["centers"], labels=v["labels"], inertia=float(inertia),
                               n_iter=int(n_iter), converged=bool(converged), relocated=int(relocated),
                               degenerate=int(degenerate), distances=v["distances"])


def options(name: str) -> dict:
    """Backend options a profile sets: the loop's work limit (its own rule, with a profile's number)."""
    if name == "loop" and P["loop_limit"] is not None:
        return {"work_limit": P["loop_limit"]}
    return {}


def cap_for(profile: str, name: str) -> float:
    """Largest n*k*d per iteration that ``profile`` times for backend ``name``."""
    spec = PROFILES[profile]
    return spec.get("backend_caps", {}).get(name, spec["work_cap"])


def skip_reason(name: str, n: int, k: int, d: int, dtype: str) -> str | None:
    """Why ``name`` will not be measured at this case, in the backend's own words, or None.

    The profile's work cap comes last, so a backend that could never serve a case says
    so instead of pointing at the profile.
    """
    from kmbench.core.kmeans import BackendUnavailable, create

    try:
        create(name, n=n, k=k, d=d, dtype=dtype, **options(name))
    except BackendUnavailable as exc:
        return str(exc)
    except ImportError as exc:  # a backend module that does not import is reported, not fatal
        return f"backend {name!r} could not be loaded: {exc}"
    work = n * k * d
    cap = cap_for(PROFILE, name)
    if work > cap:
        bigger = [p for p in PROFILES if p != PROFILE and cap_for(p, name) >= work]
        hint = f"KMBENCH_PROFILE={bigger[0]} runs it" if bigger else "no profile runs it"
        whose = f"the {PROFILE!r} profile's cap" + (f" for {name}" if name in P.get("backend_caps", {}) else "")
        return f"n*k*d={work:.3g} is above {whose} of {cap:.3g} per iteration ({hint})"
    return None


def record_skip(benchmark: str, case: tuple, reason: str) -> None:
    """Append a skip reason where ``kmbench bench`` asked (``KMBENCH_SKIP_LOG``): asv keeps only "n/a"."""
    path = os.environ.get("KMBENCH_SKIP_LOG")
    if not path:
        return
    line = json.dumps({"benchmark": benchmark, "params": [str(v) for v in case], "reason": reason})
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def skip_if_unserved(benchmark: str, name: str, n: int, k: int, d: int, dtype: str) -> None:
    """Raise NotImplementedError (asv's "n/a") with the reason when the case will not be measured."""
    reason = skip_reason(name, n, k, d, dtype)
    if reason is not None:
        record_skip(benchmark, (name, n, k, d, dtype), reason)
        raise NotImplementedError(reason)


class Prepared:
    """A created backend and its case's data; with ``warm``, also prepared and warmed up inside its
    thread limits (``kmbench.core.engine.session``). asv's ``teardown`` calls ``close()``.
    """

    def __init__(self, name: str, n: int, k: int, d: int, dtype: str, *, warm: bool = True):
        from kmbench.core.engine import session
        from kmbench.core.kmeans import create

        self.X, self.C = dataset(n, k, d, dtype)
        self.backend = create(name, n=n, k=k, d=d, dtype=dtype, **options(name))
        self._stack = ExitStack()
        if warm:
            self._stack.enter_context(session(self.backend, (self.X, self.C)))

    def close(self):
        self._stack.close()

    def measure(self, max_iter: int = ITERATIONS, tol: float = -1.0) -> tuple[float, int]:
        """Median seconds of ``run()`` and the iterations it ran, over the profile's runs.

        ``run()`` restarts from the prepared centres each time. At most ``P["runs"]``
        runs, fewer once ``P["run_seconds"]`` have passed; never fewer than one.
        """
        from kmbench.core.engine import time_runs

        times = time_runs(self.backend, (max_iter, tol), runs=P["runs"], seconds=P["run_seconds"])
        n_iter = int(self.backend.result().n_iter)
        return float(np.median(times)), n_iter


if _in_asv_forkserver() and _preload_wanted():
    preload()
