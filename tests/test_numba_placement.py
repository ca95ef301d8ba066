"""Pinning Numba's threads while a fit's regions run (``impls.numba_placement``): where they go,
that everything is put back, when it is left alone, and that a pinned fit computes the same."""
from __future__ import annotations

import os

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import kmbench  # noqa: E402
import kmbench.check.data as data  # noqa: E402
from impls import numba_placement  # noqa: E402


def two_threads_pinnable():
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2 or numba.get_num_threads() < 2:
        pytest.skip("needs two CPUs and two Numba threads")
    reason = numba_placement.why_not_pinned()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def four_cpus_two_cores(monkeypatch):
    """CPUs 0 and 2 share a core, 1 and 3 the other (Linux's numbering on many Intel machines)."""
    cores = {0: {0, 2}, 2: {0, 2}, 1: {1, 3}, 3: {1, 3}}
    monkeypatch.setattr(numba_placement, "_siblings", lambda cpu: frozenset(cores[cpu]))


def test_workers_go_to_other_cores_before_siblings(four_cpus_two_cores):
    assert numba_placement.worker_cpus(0, {0, 1, 2, 3}, 1) == [1]
    assert numba_placement.worker_cpus(0, {0, 1, 2, 3}, 3) == [1, 2, 3]
    assert numba_placement.worker_cpus(1, {0, 1, 2, 3}, 3) == [2, 3, 0]
    # the caller's core is the only one allowed besides its own sibling: the sibling it is
    assert numba_placement.worker_cpus(2, {0, 2}, 1) == [0]


def test_sibling_lists_are_read_as_ranges(tmp_path, monkeypatch):
    import builtins

    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if str(path).endswith("cpu5/topology/thread_siblings_list"):
            target = tmp_path / "siblings"
            target.write_text("1,4-5\n")
            return real_open(target, *args, **kwargs)
        return real_open(path, *args, **kwargs)

    numba_placement._siblings.cache_clear()
    monkeypatch.setattr(builtins, "open", fake_open)
    try:
        assert numba_placement._siblings(5) == {1, 4, 5}
    finally:
        numba_placement._siblings.cache_clear()


def test_pinned_threads_run_on_cpus_of_their_own_and_get_theirs_back():
    two_threads_pinnable()
    before = os.sched_getaffinity(0)
    with numba_placement.pinned(2) as placed:
        assert placed
        (worker,) = numba_placement._worker_ids(os.getpid(), 2)
        own, theirs = os.sched_getaffinity(0), os.sched_getaffinity(worker)
        assert len(own) == 1 and len(theirs) == 1 and own != theirs
        assert own <= before and theirs <= before
    assert os.sched_getaffinity(0) == before
    assert os.sched_getaffinity(worker) == before


def test_a_failing_block_still_gets_its_cpus_back():
    two_threads_pinnable()
    before = os.sched_getaffinity(0)
    with pytest.raises(RuntimeError, match="inside"):
        with numba_placement.pinned(2):
            raise RuntimeError("inside")
    assert os.sched_getaffinity(0) == before


@pytest.mark.parametrize("variable, value", [("OMP_PROC_BIND", "spread"), ("GOMP_CPU_AFFINITY", "0-1")])
def test_a_users_openmp_binding_is_left_alone(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    assert variable in numba_placement.why_not_pinned()
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    with numba_placement.pinned(2) as placed:
        assert not placed
        if before is not None:
            assert os.sched_getaffinity(0) == before


def test_threads_whose_ids_cannot_be_found_are_left_alone(monkeypatch):
    def no_gettid(out):
        raise RuntimeError("symbol gettid not found")

    monkeypatch.setattr(numba_placement, "_thread_ids", no_gettid)
    numba_placement._worker_ids.cache_clear()
    try:
        before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        with numba_placement.pinned(2) as placed:
            assert not placed
            if before is not None:
                assert os.sched_getaffinity(0) == before
    finally:
        numba_placement._worker_ids.cache_clear()


def test_one_thread_or_pinning_off_pins_nothing():
    with numba_placement.pinned(1) as one, numba_placement.pinned(2, enabled=False) as off:
        assert not one and not off


def test_a_fit_says_whether_it_pinned_and_computes_the_same_either_way():
    two_threads_pinnable()
    X, _ = data.blobs(4000, 9, 7, seed=4)
    runs = {pin: kmbench.fit(X, 7, backend="numba", init="random", max_iter=6, tol=-1.0, threads=2,
                             pin_threads=pin) for pin in (True, False)}
    assert runs[False].info["threads_pinned"] is False
    assert runs[True].info["threads_pinned"] is (runs[True].info["threads_used"] == 2)
    np.testing.assert_array_equal(runs[True].labels, runs[False].labels)
    np.testing.assert_allclose(runs[True].centers, runs[False].centers, rtol=1e-12, atol=1e-12)
