"""The dask and dask-ml backends on a two-process LocalCluster: the contract, inputs, clients, failures."""
from __future__ import annotations

import logging
import os
import signal
import threading
import time

import numpy as np
import pytest

import kmbench
import kmbench.check.data as data
import kmbench.check.oracle as oracle
from kmbench.check.crosscheck import compare
from kmbench.core.seeding import initial_centers

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
from kmbench.core.dask_input import open_array  # noqa: E402  (after the skip: needs dask)


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, as the brief's CI machine can afford."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
    client = distributed.Client(cluster, set_as_default=False)
    yield cluster, client
    client.close()
    cluster.close()


@pytest.fixture
def client(cluster):
    """The module's client, made the caller's active client for the test."""
    cluster, client = cluster
    client.wait_for_workers(2, timeout=60)
    with client.as_current():
        yield client


def fit_and_judge(X, centers, *, max_iter, tol, dtype, backend="dask", **options):
    Xd = np.asarray(X, dtype=dtype)
    reference = oracle.lloyd(Xd, centers.astype(dtype), max_iter, tol)
    result = kmbench.fit(X, centers.shape[0], backend=backend, init=centers, max_iter=max_iter, tol=tol,
                         dtype=dtype, **options)
    cls = kmbench.core.kmeans.backend_class(backend)
    return result, reference, compare(result, reference, Xd, dtype, deviations=cls.deviations)


def descendants() -> set:
    """Worker processes under this one (not multiprocessing's resource tracker, which lives on)."""
    import psutil

    found = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(p.cmdline()):
                found.add(p.pid)
        except psutil.Error:
            pass
    return found


def wait_until_gone(pids, seconds=30.0) -> set:
    import psutil

    deadline = time.monotonic() + seconds
    alive = {p for p in pids if psutil.pid_exists(p)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
    return alive


# -- its own cluster: runs before the module cluster exists ---------------------------------------------
def test_starts_and_closes_its_own_cluster_even_when_the_fit_fails():
    if distributed.client._get_global_client() is not None:
        pytest.skip("an active dask client exists, so the backend would use it")
    X, _ = data.blobs(600, 3, 3, seed=1)
    before = descendants()
    result = kmbench.fit(X, 3, backend="dask", init="random", max_iter=3, tol=-1.0, threads=1)
    assert result.info["where"].startswith("LocalCluster(1 x 1")
    assert result.threads == 1
    assert not wait_until_gone(descendants() - before), "worker processes outlived the fit"

    bad = X.copy()
    bad[437, 1] = np.inf
    with pytest.raises(ValueError, match=r"infinity \(first at row 437; 1 bad rows"):
        kmbench.fit(da.from_array(bad, chunks=(100, 3)), 3, backend="dask", init=X[:3], threads=1)
    assert not wait_until_gone(descendants() - before), "a failed fit left its cluster running"


# -- the contract -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_agrees_with_the_oracle(client, dtype):
    X, _ = data.blobs(3000, 5, 6, seed=2)
    centers = initial_centers(X, 6, "k-means++", 0)
    result, reference, c = fit_and_judge(X, centers, max_iter=8, tol=-1.0, dtype=dtype, chunk_rows=400)
    assert c.status == "ok", c
    assert result.n_iter == 8 and result.info["blocks"] == 8 and result.info["where"] == "active client"
    np.testing.assert_allclose(result.inertia_history, reference.inertia_history, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_empty_clusters_follow_the_contract_rule(client, dtype):
    X, centers = data.with_empty_clusters(300, 3, 6, seed=0)
    # Blocks of 64 rows: the farthest points come from several blocks and must be merged in order.
    result, reference, c = fit_and_judge(X, centers, max_iter=6, tol=-1.0, dtype=dtype, chunk_rows=64)
    assert reference.relocated > 0 and result.info["relocated"] == reference.relocated
    assert c.status == "ok", c


@pytest.mark.parametrize("tol", [0.0, 1e-2])
def test_both_stopping_rules(client, tol):
    X, _ = data.blobs(400, 2, 5, seed=8, spread=1.5)
    centers = initial_centers(X, 5, "random", 5)
    result, reference, c = fit_and_judge(X, centers, max_iter=100, tol=tol, dtype="float64", chunk_rows=100)
    assert reference.converged and result.converged and result.n_iter == reference.n_iter
    assert c.status == "ok", c


# -- inputs -------------------------------------------------------------------------------------------
def test_npy_memmap_is_read_by_the_workers(client, tmp_path):
    X, _ = data.blobs(2000, 4, 5, seed=4, dtype="float32")
    path = tmp_path / "x.npy"
    np.save(path, X)
    centers = initial_centers(X, 5, "random", 1)
    Xm = np.load(path, mmap_mode="r")
    result, _, c = fit_and_judge(Xm, centers, max_iter=5, tol=-1.0, dtype="float32", chunk_rows=500,
                                 persist=False)
    assert result.info["input"] == f"file {path}" and not result.info["persisted"]
    assert c.status == "ok", c


def test_dask_array_inputs(client, tmp_path):
    X, _ = data.blobs(2000, 4, 5, seed=5)
    centers = initial_centers(X, 5, "random", 2)
    np.save(tmp_path / "x.npy", X)
    da.to_zarr(da.from_array(X, chunks=(700, 4)), str(tmp_path / "x.zarr"))
    inputs = {"npy": open_array(tmp_path / "x.npy", chunk_rows=300),
              "zarr": open_array(tmp_path / "x.zarr", chunk_rows=300),
              "split columns": da.from_array(X, chunks=(500, 2))}
    for label, lazy in inputs.items():
        assert lazy.chunks[1] == (4,) or label == "split columns"
        result, _, c = fit_and_judge(lazy, centers, max_iter=4, tol=-1.0, dtype="float64")
        assert result.info["input"] == "dask array", label
        assert c.status == "ok", (label, c)


def test_nan_in_lazy_input_names_the_first_bad_row(client):
    X, _ = data.blobs(1000, 3, 3, seed=6)
    X[[812, 955], 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN \(first at row 812; 2 bad rows in all\)"):
        kmbench.fit(da.from_array(X, chunks=(250, 3)), 3, backend="dask", init=X[:3])


def test_open_array_rejects_what_it_cannot_read(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        open_array(tmp_path / "missing.npy")
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(ValueError, match=r"1-D array of shape \(5,\)"):
        open_array(tmp_path / "flat.npy")


# -- where it runs ------------------------------------------------------------------------------------
def test_scheduler_address_option(cluster):
    cluster, own = cluster
    X, _ = data.blobs(500, 3, 3, seed=7)
    result = kmbench.fit(X, 3, backend="dask", init="random", max_iter=2, tol=-1.0,
                         scheduler=cluster.scheduler_address)
    assert result.info["where"] == f"scheduler {cluster.scheduler_address}" and result.threads == 2
    assert own.status == "running", "closing the backend's own client must leave the cluster up"
    with pytest.raises(ValueError, match="scheduler must be an address"):
        kmbench.fit(X, 3, backend="dask", scheduler=8786)


@pytest.mark.filterwarnings("ignore:Port .* is already in use")
def test_worker_killed_mid_fit_finishes_or_fails_clearly(client, monkeypatch):
    from impls.dask_lloyd import DaskKMeans

    original = DaskKMeans._iteration
    calls = []

    def kill_on_third_pass(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            pid = next(iter(client.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DaskKMeans, "_iteration", kill_on_third_pass)
    X, _ = data.blobs(4000, 4, 4, seed=9)
    centers = initial_centers(X, 4, "random", 3)
    outcome = {}

    def fit():
        try:
            with client.as_current():  # a context variable: threads do not inherit it
                outcome["result"] = fit_and_judge(X, centers, max_iter=6, tol=-1.0, dtype="float64",
                                                  chunk_rows=500, timeout=60)
        except BaseException as exc:  # noqa: BLE001 - judged below
            outcome["error"] = exc

    worker = threading.Thread(target=fit, daemon=True)
    worker.start()
    worker.join(timeout=150)
    assert not worker.is_alive(), "the fit hung after a worker was killed"
    assert len(calls) >= 3, "the worker was never killed"
    if "error" in outcome:
        assert isinstance(outcome["error"], RuntimeError) and "lost" in str(outcome["error"]), outcome["error"]
    else:
        result, _, c = outcome["result"]
        assert result.n_iter == 6 and result.info["where"] == "active client" and c.status == "ok", c


# -- dask-ml ------------------------------------------------------------------------------------------
# On dask's threaded scheduler: worker processes would each compile dask-ml's Numba kernel (slow on
# CI); the core suite runs dask-ml on its session client.
def test_dask_ml_agrees_without_empty_clusters():
    X, _ = data.blobs(2000, 4, 4, seed=10)
    centers = initial_centers(X, 4, "k-means++", 0)
    result, _, c = fit_and_judge(X, centers, max_iter=4, tol=-1.0, dtype="float64", backend="dask-ml")
    assert c.status == "ok", c
    assert result.n_iter == 4 and result.info["where"].startswith("threaded scheduler")


def test_dask_ml_declares_its_empty_cluster_rule():
    X, centers = data.with_empty_clusters(300, 3, 6, seed=0)
    result, _, c = fit_and_judge(X, centers, max_iter=3, tol=-1.0, dtype="float64", backend="dask-ml")
    assert c.ok and c.status.startswith("deviation (declared): empty-clusters"), c
    # What was declared is what happened: some centre sits at the origin.
    assert (np.abs(result.centers).sum(axis=1) == 0).any()
