"""docs/contract.md, line by line, for every registered backend and every dtype it declares.

Agreement is judged by ``kmbench.check.crosscheck.compare`` alone. The strict agreement
cases are chosen (and checked, as a precondition) to be clear of near-ties at every
assignment step, because a tie broken the other way early legitimately cascades; data
with ties (digits) is judged with the contract's allowance for them (``replay=``).
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import (THREADS, available_backends, backend_class, nearest_violations, prepare_case, reference,
                      run_backend, smallest_gap)

import kmbench
from impls.base import exact_inertia
import kmbench.check.data as data
from kmbench.check.crosscheck import TOLERANCES, compare
from kmbench.core.kmeans import BackendUnavailable, create
from kmbench.core.threads import limited_threads

BACKENDS = available_backends()

#: strict cases: (X, k, init, seed, max_iter, tol); each is checked to be free of near-ties
STRICT = {
    "blobs-kmeans++": (lambda: data.blobs(600, 4, 5, seed=3)[0], 5, "k-means++", 0, 10, -1.0),
    "blobs-random-k10": (lambda: data.blobs(500, 6, 10, seed=4)[0], 10, "random", 0, 8, -1.0),
    "iris": (lambda: data.iris()[0], 3, "k-means++", 1, 10, -1.0),
}


def judge(name, result, ref, Xd, dtype, **kwargs):
    cls = backend_class(name)
    return compare(result, ref, Xd, dtype, deviations=cls.deviations, stops_early=cls.stops_early, **kwargs)


def assert_clear_of_ties(Xd, centers, dtype, *, max_iter, tol):
    gap = smallest_gap(Xd, centers, max_iter=max_iter, tol=tol)
    width = TOLERANCES[dtype]["tie"]
    assert gap > 10 * width, f"test data has a near-tie (gap {gap:.1e}); pick another seed"


@pytest.mark.parametrize("case", list(STRICT))
@pytest.mark.parametrize("name, dtype", BACKENDS)
def test_agrees_with_oracle(name, dtype, case):
    make, k, init, seed, max_iter, tol = STRICT[case]
    Xd, centers = prepare_case(make(), k, init, seed, dtype)
    ref = reference(Xd, centers, max_iter=max_iter, tol=tol)
    assert ref.relocated == 0 and ref.degenerate == 0, "strict cases must not need the empty-cluster rule"
    assert_clear_of_ties(Xd, centers, dtype, max_iter=max_iter, tol=tol)
    result = run_backend(name, Xd, centers, max_iter=max_iter, tol=tol, dtype=dtype)
    c = judge(name, result, ref, Xd, dtype)
    assert c.status == "ok", c
    assert c.label_mismatches == 0, c


@pytest.mark.parametrize("name, dtype", BACKENDS)
def test_digits_float64_from_jittered_centres(name, dtype, digits_data):
    """Real data, strictly: k-means++ rows nudged off the integer grid, so no step has a tie."""
    if dtype != "float64":
        pytest.skip("digits' near-ties (relative gaps ~3e-5) are inside float32's tie width; "
                    "see test_digits_agrees_up_to_ties")
    Xd, centers = prepare_case(digits_data, 10, "k-means++", 0, dtype)
    centers = centers + np.random.default_rng(0).uniform(0.05, 0.45, centers.shape)
    ref = reference(Xd, centers, max_iter=6, tol=-1.0)
    assert_clear_of_ties(Xd, centers, dtype, max_iter=6, tol=-1.0)
    result = run_backend(name, Xd, centers, max_iter=6, tol=-1.0, dtype=dtype)
    c = judge(name, result, ref, Xd, dtype)
    assert c.status == "ok" and c.label_mismatches == 0, c


@pytest.mark.parametrize("name, dtype", BACKENDS)
def test_digits_agrees_up_to_ties(name, dtype, digits_data):
    """digits is integer-valued: k-means++ rows give exact ties at the first assignment.

    The contract lets a backend break them either way, and the runs may then part; compare()
    accepts that only when the replay traces the parting to a near-tie.
    """
    Xd, centers = prepare_case(digits_data, 10, "k-means++", 0, dtype)
    max_iter = 5
    ref = reference(Xd, centers, max_iter=max_iter, tol=-1.0)
    result = run_backend(name, Xd, centers, max_iter=max_iter, tol=-1.0, dtype=dtype)

    def replay(t):
        return run_backend(name, Xd, centers, max_iter=t, tol=-1.0, dtype=dtype)

    c = judge(name, result, ref, Xd, dtype, replay=(replay, centers))
    assert c.ok and not c.status.startswith("deviation"), c
    assert nearest_violations(result, Xd, dtype) == 0


@pytest.mark.parametrize("name, dtype", BACKENDS)
def test_forced_empty_clusters(name, dtype, empty_case):
    X, C = empty_case
    Xd, centers = np.ascontiguousarray(X, dtype=dtype), C.astype(dtype)
    ref = reference(Xd, centers, max_iter=10, tol=-1.0)
    assert ref.relocated >= 3, "the case must exercise the empty-cluster rule"
    result = run_backend(name, Xd, centers, max_iter=10, tol=-1.0, dtype=dtype)
    deviations = backend_class(name).deviations
    c = judge(name, result, ref, Xd, dtype)
    assert c.ok, c
    if "empty-clusters" in deviations:
        # Different, but said so: the judgement names the declared deviation, and so does the result.
        assert c.status == "ok" or c.status.startswith("deviation (declared): empty-clusters"), c
        assert "empty-clusters" in result.info["deviations"]
    else:
        assert c.status == "ok", c
    assert np.isfinite(result.centers).all()
    assert ((result.labels >= 0) & (result.labels < 6)).all()


def convergence_case(dtype):
    """Blobs where labels settle after 13 steps and a tol of 1e-2 stops after 5, clear of ties."""
    X, _ = data.blobs(400, 2, 5, seed=8, spread=1.5)
    Xd, centers = prepare_case(X, 5, "random", 5, dtype)
    assert_clear_of_ties(Xd, centers, dtype, max_iter=20, tol=-1.0)
    return Xd, centers


@pytest.mark.parametrize("name, dtype", BACKENDS)
def test_converges_when_labels_repeat(name, dtype):
    Xd, centers = convergence_case(dtype)
    ref = reference(Xd, centers, max_iter=100, tol=0.0)
    assert ref.converged and ref.n_iter >= 3
    result = run_backend(name, Xd, centers, max_iter=100, tol=0.0, dtype=dtype)
    assert result.converged
    cls = backend_class(name)
    if "convergence" in cls.deviations:
        # Declared: its own stopping rule; it must still reach the same fixed point, and say why it differs.
        assert "convergence" in result.info["deviations"]
        assert ref.n_iter <= result.n_iter <= 100
        c = judge(name, result, ref, Xd, dtype)
        assert c.label_mismatches == 0 and c.center_error <= TOLERANCES[dtype]["centers"], c
        return
    assert result.n_iter == ref.n_iter
    assert judge(name, result, ref, Xd, dtype).status == "ok"


@pytest.mark.parametrize("name, dtype", BACKENDS)
def test_converges_on_small_centre_shift(name, dtype):
    Xd, centers = convergence_case(dtype)
    ref = reference(Xd, centers, max_iter=100, tol=1e-2)
    by_labels = reference(Xd, centers, max_iter=100, tol=0.0)
    assert ref.converged and ref.n_iter < by_labels.n_iter, "the shift rule must be what stops this run"
    result = run_backend(name, Xd, centers, max_iter=100, tol=1e-2, dtype=dtype)
    cls = backend_class(name)
    assert result.converged
    if "convergence" in cls.deviations:
        # Declared (its own test module checks the details): the result must carry the declaration.
        assert "convergence" in result.info["deviations"]
        return
    assert result.n_iter == ref.n_iter
    assert judge(name, result, ref, Xd, dtype).status == "ok"


@pytest.mark.parametrize("name, dtype", BACKENDS)
def test_negative_tol_runs_exactly_max_iter(name, dtype):
    Xd, centers = convergence_case(dtype)
    settles = reference(Xd, centers, max_iter=100, tol=0.0).n_iter
    max_iter = settles + 4
    result = run_backend(name, Xd, centers, max_iter=max_iter, tol=-1.0, dtype=dtype)
    if backend_class(name).stops_early:
        # It cannot do fixed work; it must say how much it really did.
        assert result.n_iter == settles < max_iter
    else:
        assert result.n_iter == max_iter and not result.converged
    assert len(result.inertia_history) in (0, result.n_iter)
    ref = reference(Xd, centers, max_iter=max_iter, tol=-1.0)
    assert judge(name, result, ref, Xd, dtype).status == "ok"


@pytest.mark.parametrize("name, dtype", BACKENDS)
def test_result_types_and_provenance(name, dtype, blobs_small):
    X, k = blobs_small
    Xd, centers = prepare_case(X, k, "k-means++", 4, dtype)
    result = run_backend(name, Xd, centers, max_iter=7, tol=-1.0, dtype=dtype)
    n, d = Xd.shape
    assert isinstance(result.labels, np.ndarray) and result.labels.dtype == np.int32
    assert result.labels.shape == (n,)
    assert ((result.labels >= 0) & (result.labels < k)).all()
    assert isinstance(result.centers, np.ndarray) and result.centers.shape == (k, d)
    assert result.centers.dtype == np.dtype(dtype)
    assert type(result.inertia) is float and result.inertia >= 0
    assert type(result.n_iter) is int and type(result.converged) is bool
    assert result.backend == name and result.dtype == dtype and result.threads == THREADS
    assert result.device in backend_class(name).devices
    assert set(result.timings) >= {"prepare", "warmup", "fit", "per_iter"}
    assert all(isinstance(v, float) and v >= 0 for v in result.timings.values())
    assert result.timings["per_iter"] == pytest.approx(result.timings["fit"] / result.n_iter)
    recomputed = exact_inertia(Xd, result.centers, result.labels)
    assert result.inertia == pytest.approx(recomputed, rel=TOLERANCES[dtype]["inertia"])
    assert nearest_violations(result, Xd, dtype) == 0, "final labels must be the nearest of the final centres"
    history = result.inertia_history
    assert all(type(v) is float for v in history)
    if history:
        # Lloyd never raises the objective; float32 rounding may nudge it by a hair.
        slack = 1 + 10 * TOLERANCES[dtype]["inertia"]
        assert all(b <= a * slack for a, b in zip(history, history[1:])), history
        assert result.inertia <= history[-1] * slack


def assert_same_fit(name, a, b, X):
    """Identical bits; or, where the backend declares ``repeatable = False``, identical labels and
    centres and inertia a few units of rounding apart."""
    np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
    ca, cb = np.asarray(a.centers), np.asarray(b.centers)
    if backend_class(name).repeatable:
        np.testing.assert_array_equal(ca, cb)
        assert a.inertia == b.inertia
    else:
        eps = np.finfo(ca.dtype).eps
        np.testing.assert_allclose(ca, cb, rtol=0, atol=16 * eps * np.abs(X).max())
        assert a.inertia == pytest.approx(b.inertia, rel=16 * eps)


@pytest.mark.parametrize("name, dtype", BACKENDS)
def test_run_is_repeatable_from_prepared_centres(name, dtype, blobs_small):
    """asv calls run() again on a prepared backend: each run restarts from the prepared centres."""
    X, k = blobs_small
    Xd, centers = prepare_case(X, k, "random", 6, dtype)
    two, four = reference(Xd, centers, max_iter=2, tol=-1.0), reference(Xd, centers, max_iter=4, tol=-1.0)
    assert not np.allclose(two.centers, four.centers), "2 and 4 iterations must differ for this test to bite"
    results = []
    for runs in (1, 2):
        try:
            backend = create(name, n=Xd.shape[0], k=k, d=Xd.shape[1], dtype=dtype, threads=THREADS)
        except BackendUnavailable as exc:
            pytest.skip(str(exc))
        for module in backend.requires:
            __import__(module)
        with limited_threads(THREADS):
            backend.prepare(Xd, centers)
            backend.warm_up()
            for _ in range(runs):
                backend.run(2, -1.0)
            results.append(backend.result())
    once, twice = results
    assert_same_fit(name, once, twice, Xd)
    assert once.n_iter == twice.n_iter == 2
    error = np.max(np.abs(np.asarray(twice.centers, dtype=np.float64) - two.centers)) / np.abs(Xd).max()
    assert error <= TOLERANCES[dtype]["centers"], "the second run() continued from the first one's centres"


@pytest.mark.parametrize("name, dtype", BACKENDS)
def test_same_call_same_result(name, dtype, blobs_small):
    X, k = blobs_small
    Xd = X.astype(dtype)
    try:
        a = kmbench.fit(Xd, k, backend=name, seed=3, max_iter=5, tol=-1.0, threads=THREADS)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    b = kmbench.fit(Xd, k, backend=name, seed=3, max_iter=5, tol=-1.0, threads=THREADS)
    assert_same_fit(name, a, b, Xd)


@pytest.mark.slow
def test_kmbench_check_exits_0(capsys):
    from kmbench.cli import main

    status = main(["check"])
    out = capsys.readouterr().out
    assert status == 0, "\n".join(line for line in out.splitlines() if "FAIL" in line)
    assert "beyond tolerance" in out
