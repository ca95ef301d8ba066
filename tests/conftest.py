"""Shared fixtures and helpers for the core test suite.

Backends are parametrised straight from ``impls.REGISTRY``, so a backend is tested
the moment it is registered; one that cannot run here is skipped with the reason
``kmbench.backends()`` gives for it (missing extra, no CUDA device, ...), never
silently dropped.

Helpers are plain functions so test modules can ``from conftest import ...``.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import impls
import kmbench
import kmbench.check.data as data
import kmbench.check.oracle as oracle
from kmbench.core.kmeans import BackendUnavailable
from kmbench.core.registry import classes
from kmbench.core.seeding import initial_centers

# asv drops PYTHONPATH in the environments it runs benchmarks in; a source checkout put first on
# PYTHONPATH (a worktree beside an installed copy) is handed to it the way asv asks.
if os.environ.get("PYTHONPATH") and "ASV_PYTHONPATH" not in os.environ:
    os.environ["ASV_PYTHONPATH"] = os.environ["PYTHONPATH"]

#: backends whose tests need a running cluster fixture; their own test module covers them
NEEDS_CLUSTER: dict[str, str] = {}

#: distributed backends (``Backend.distributed``): a scheduler round trip per iteration, so property
#: tests draw fewer examples
DASK_BACKENDS = tuple(name for name, cls in classes("kmeans").items() if cls.distributed)

#: backends that otherwise start a LocalCluster per fit (seconds each): they run on one for the session
CLUSTER_BACKENDS = ("dask",)

#: backends whose every fit costs seconds even on tiny data: their generic cases are marked slow
SLOW_BACKENDS = {"dask-ml": "dask-ml's scheduling overhead makes each tiny fit take 1-4 s"}

#: threads for every backend under test: the CI machine has 2 cores and runs other jobs
THREADS = 1


def backend_rows() -> dict[str, dict]:
    """``kmbench.backends()`` keyed by name; cheap, imports no heavy library."""
    return {row["name"]: row for row in kmbench.backends()}


def _declared_dtypes(name: str, row: dict) -> list[str]:
    if row.get("dtypes"):
        return list(row["dtypes"])
    return ["float64"]  # the class could not be loaded: one skipped case carries the reason


def available_backends(*, with_dtypes: bool = True, cpu_only: bool = False, exclude=()):
    """``pytest.param`` for every registered backend (and each dtype it declares).

    Unavailable backends stay in the list, marked skip with their own reason, so the
    test report says what is missing and why.
    """
    rows = backend_rows()
    params = []
    for name in impls.REGISTRY:
        row = rows[name]
        marks = []
        if name in exclude:
            continue
        if not row["available"]:
            marks.append(pytest.mark.skip(reason=f"{name}: {row['reason']}"))
        elif name in NEEDS_CLUSTER:
            marks.append(pytest.mark.skip(reason=f"{name}: {NEEDS_CLUSTER[name]}"))
        elif cpu_only and "cpu" not in row["devices"]:
            marks.append(pytest.mark.skip(reason=f"{name}: not a CPU backend (devices: {row['devices']})"))
        if name in SLOW_BACKENDS:
            marks.append(pytest.mark.slow)
        if with_dtypes:
            for dtype in _declared_dtypes(name, row):
                params.append(pytest.param(name, dtype, id=f"{name}-{dtype}", marks=marks))
        else:
            params.append(pytest.param(name, id=name, marks=marks))
    return params


def backend_class(name: str):
    return impls.load(name)


def run_backend(name, X, centers, *, max_iter, tol, dtype, **kwargs):
    """``kmbench.fit`` from explicit centres; skips with the backend's reason if it declines the case."""
    try:
        return kmbench.fit(X, centers.shape[0], backend=name, init=centers, max_iter=max_iter, tol=tol,
                           dtype=dtype, threads=THREADS, **kwargs)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


def prepare_case(X, k, init, seed, dtype):
    """(X in the working dtype, starting centres in the working dtype), as every backend sees them."""
    Xd = np.ascontiguousarray(X, dtype=dtype)
    centers = initial_centers(Xd, k, init, seed).astype(dtype)
    return Xd, centers


def reference(Xd, centers, *, max_iter, tol):
    """The float64 oracle run on exactly the values the backend received."""
    return oracle.lloyd(Xd, centers, max_iter, tol)


def relative_gaps(D: np.ndarray) -> np.ndarray:
    """Per row of a distance matrix (n, k): (second best - best) / second best; inf when k == 1."""
    if D.shape[1] < 2:
        return np.full(D.shape[0], np.inf)
    two = np.partition(D, 1, axis=1)[:, :2]
    return (two[:, 1] - two[:, 0]) / np.maximum(two[:, 1], 1e-300)


def smallest_gap(Xd, centers, *, max_iter, tol) -> float:
    """The narrowest best-vs-second-best margin over every assignment step of the oracle's run.

    A flipped near-tie in an early iteration changes the centres and cascades, so strict
    agreement is only promised where every step, not just the last, is clear of ties.
    """
    X64 = np.asarray(Xd, dtype=np.float64)
    C64 = np.asarray(centers, dtype=np.float64)
    full = oracle.lloyd(X64, C64, max_iter, tol)
    gaps = [relative_gaps(oracle.squared_distances(X64, C64)).min()]
    for m in range(1, full.n_iter + 1):
        D = full.distances if m == full.n_iter else oracle.lloyd(X64, C64, m, -1.0).distances
        gaps.append(relative_gaps(D).min())
    return float(min(gaps))


def nearest_violations(result, Xd, dtype: str) -> int:
    """Labels that are not the nearest of the result's own centres, beyond the dtype's tie width."""
    from kmbench.check.crosscheck import TOLERANCES

    D = oracle.squared_distances(np.asarray(Xd, dtype=np.float64), np.asarray(result.centers, dtype=np.float64))
    labels = np.asarray(result.labels)
    mine = D[np.arange(D.shape[0]), labels]
    best = D.min(axis=1)
    width = TOLERANCES[dtype]["tie"]
    return int(np.sum(mine - best > width * np.maximum(mine, 1e-300)))


# -- data sets ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def blobs_small():
    """Continuous, well separated blobs: (X (600, 4) float64, k=5)."""
    X, _ = data.blobs(600, 4, 5, seed=3)
    return X, 5


@pytest.fixture(scope="session")
def iris_data():
    X, _ = data.iris()
    return X


@pytest.fixture(scope="session")
def digits_data():
    X, _ = data.digits()
    return X


@pytest.fixture(scope="session")
def empty_case():
    """(X (300, 3), centres (6, 3)) whose first assignment leaves three clusters empty."""
    return data.with_empty_clusters(300, 3, 6, seed=0)


# -- a shared dask cluster ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def dask_client():
    """One in-process cluster for the session; made current only inside the tests that ask for it.

    Not the default client, so tests of the "start my own LocalCluster" path see none.
    """
    distributed = pytest.importorskip("distributed")
    import logging

    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=THREADS, processes=False,
                                       dashboard_address=":0", silence_logs=logging.ERROR)
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(autouse=True)
def _current_dask_client(request):
    """Tests parametrised with a cluster backend (argument ``name``) run on the session cluster."""
    callspec = getattr(request.node, "callspec", None)
    name = callspec.params.get("name") if callspec is not None else None
    if name in CLUSTER_BACKENDS and backend_rows()[name]["available"]:
        client = request.getfixturevalue("dask_client")
        with client.as_current():
            yield
    else:
        yield
