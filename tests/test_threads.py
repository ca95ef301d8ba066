"""One thread knob: inside a fit, every pool (BLAS, OpenMP, Numba, torch) runs at most the knob.

A probe backend records what the libraries report from inside the timed call; the
harness (``kmbench.core.kmeans.execute``) must have set them, and must put the previous
settings back afterwards, also when the fit fails.
"""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

import impls
import kmbench
from impls.identity import IdentityKMeans
import kmbench.check.data as data
from kmbench.core.kmeans import execute
from kmbench.core.threads import available_cores, check_threads, default_threads

#: heavy libraries with their own pools, where installed; the probe declares them so the harness loads them first
LIBRARIES = tuple(m for m in ("numba", "torch", "faiss", "sklearn") if importlib.util.find_spec(m))


def settings() -> dict:
    """Every thread setting a library reports right now."""
    from threadpoolctl import threadpool_info

    seen = {}
    if "torch" in sys.modules:
        seen["torch"] = sys.modules["torch"].get_num_threads()
    if "numba" in sys.modules:
        # Asking first: Numba loads its threading layer (an OpenMP runtime here) on first use.
        seen["numba"] = sys.modules["numba"].get_num_threads()
    seen["pools"] = {(p["internal_api"], p["filepath"]): p["num_threads"] for p in threadpool_info()}
    return seen


class Probe(IdentityKMeans):
    name = "thread-probe"
    requires = LIBRARIES
    parameters = {**IdentityKMeans.parameters, "fail": [bool]}  # a declared option, checked by the base

    def run(self, max_iter, tol):
        self.seen = settings()
        if self.options.get("fail"):
            raise RuntimeError("probe failed on purpose")
        super().run(max_iter, tol)

    def result(self):
        out = super().result()
        out.info["seen"] = self.seen
        return out


@pytest.fixture(scope="module")
def problem():
    X, _ = data.blobs(200, 3, 4, seed=1)
    return X, X[:4].copy()


def assert_capped(seen: dict, knob: int) -> None:
    assert seen["pools"], "threadpoolctl found no pool: nothing was checked"
    for (api, path), n in seen["pools"].items():
        assert n <= knob, f"{api} pool {path} runs {n} threads > knob {knob}"
    if "torch" in LIBRARIES:
        assert seen["torch"] == knob
    if "numba" in LIBRARIES:
        assert seen["numba"] == knob


def test_knob_caps_every_pool_inside_the_fit_and_is_restored(problem):
    X, centers = problem
    for lib in LIBRARIES:
        __import__(lib)  # so "before" covers the pools the fit will touch
    before = settings()
    result = execute(Probe(threads=1), X, centers, max_iter=2, tol=-1.0)
    assert_capped(result.info["seen"], 1)
    assert result.threads == 1
    assert settings() == before


@pytest.mark.skipif(available_cores() < 2, reason="needs 2 cores to raise the knob above 1")
def test_knob_above_the_current_setting_is_applied_and_undone(problem):
    from threadpoolctl import threadpool_limits

    X, centers = problem
    torch = sys.modules.get("torch") or (__import__("torch") if "torch" in LIBRARIES else None)
    numba = sys.modules.get("numba") or (__import__("numba") if "numba" in LIBRARIES else None)
    old = (torch and torch.get_num_threads(), numba and numba.get_num_threads())
    try:
        if torch:
            torch.set_num_threads(1)
        if numba:
            numba.set_num_threads(1)
        with threadpool_limits(limits=1):
            result = execute(Probe(threads=2), X, centers, max_iter=2, tol=-1.0)
            assert all(n == 1 for n in settings()["pools"].values())
        seen = result.info["seen"]
        assert_capped(seen, 2)
        if torch:
            assert torch.get_num_threads() == 1
        if numba:
            assert numba.get_num_threads() == 1
    finally:
        if torch:
            torch.set_num_threads(old[0])
        if numba:
            numba.set_num_threads(old[1])


def test_settings_restored_when_the_fit_raises(problem):
    X, centers = problem
    for lib in LIBRARIES:
        __import__(lib)
    before = settings()
    with pytest.raises(RuntimeError, match="on purpose"):
        execute(Probe(threads=1, fail=True), X, centers, max_iter=2, tol=-1.0)
    assert settings() == before


def test_environment_knob_reaches_a_fit_and_is_recorded(problem, monkeypatch):
    X, _ = problem
    monkeypatch.setitem(impls.REGISTRY, "thread-probe", f"{__name__}:Probe")
    monkeypatch.setenv("KMBENCH_THREADS", "1")
    result = kmbench.fit(X, 4, backend="thread-probe", init="random", max_iter=2, tol=-1.0)
    assert result.threads == 1
    assert_capped(result.info["seen"], 1)


def test_threads_argument_wins_over_the_environment(monkeypatch):
    cores = available_cores()
    monkeypatch.setenv("KMBENCH_THREADS", str(cores))
    assert default_threads() == cores
    assert check_threads(None) == cores
    assert check_threads(1) == 1


def test_more_threads_than_cores_is_refused(monkeypatch):
    cores = available_cores()
    with pytest.raises(ValueError, match=f"threads={cores + 1} exceeds the {cores} cores"):
        check_threads(cores + 1)
    monkeypatch.setenv("KMBENCH_THREADS", str(cores + 1))
    with pytest.raises(ValueError, match=f"KMBENCH_THREADS={cores + 1} exceeds"):
        default_threads()


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_threads_argument_names_the_value(bad):
    with pytest.raises(ValueError, match=f"threads must be an integer >= 1; got {bad!r}"):
        check_threads(bad)


def test_bad_environment_knob_names_the_variable(monkeypatch):
    monkeypatch.setenv("KMBENCH_THREADS", "0")
    with pytest.raises(ValueError, match="KMBENCH_THREADS=0 must be >= 1"):
        default_threads()


def test_non_integer_environment_knob_names_the_variable(monkeypatch):
    monkeypatch.setenv("KMBENCH_THREADS", "four")
    with pytest.raises(ValueError, match="KMBENCH_THREADS"):
        default_threads()


def test_results_at_different_knobs_agree(problem):
    """Threads change speed, never the answer (the reductions are per-cluster float64 sums)."""
    X, centers = problem
    one = execute(Probe(threads=1), X, centers, max_iter=3, tol=-1.0)
    two = execute(Probe(threads=2), X, centers, max_iter=3, tol=-1.0)
    np.testing.assert_array_equal(one.labels, two.labels)
    assert one.inertia == pytest.approx(two.inertia, rel=1e-12)
    assert (one.threads, two.threads) == (1, 2)


def test_pools_are_rescanned_only_after_an_import():
    import types

    import kmbench.core.threads as threads

    first = threads._threadpools()
    assert threads._threadpools() is first
    sys.modules["kmbench_test_new_module"] = types.ModuleType("kmbench_test_new_module")
    try:
        assert threads._threadpools() is not first
    finally:
        del sys.modules["kmbench_test_new_module"]
