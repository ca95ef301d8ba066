"""Property tests: small awkward inputs on every available CPU backend.

Two properties. Robustness: duplicate points, k = n, k = 1, constant columns and
magnitudes from 1e-30 to 1e30 give a valid result (finite centres, labels in [0, k),
finite non-negative inertia) or a clear, expected error, never a crash deep in NumPy.
Agreement: on well-conditioned data clear of near-ties, every backend matches the
oracle by ``kmbench.check.crosscheck.compare``.

Examples are derandomised, so CI sees the same cases on every run; few enough for a
2-core machine.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import (DASK_BACKENDS, THREADS, available_backends, backend_class, prepare_case, reference,
                      smallest_gap)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import kmbench
from kmbench.check.crosscheck import TOLERANCES, compare

BACKENDS = available_backends(cpu_only=True)

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.function_scoped_fixture])


def examples(name, n):
    """Fewer examples where one fit costs a scheduler round trip per iteration."""
    return max(3, n // 6) if name in DASK_BACKENDS else n


@st.composite
def awkward(draw):
    """(X float64 (n, d), k, init, seed, max_iter, tol): duplicates, constant columns, extreme scales."""
    n = draw(st.integers(1, 10))
    d = draw(st.integers(1, 4))
    # explicit modes: left to itself, hypothesis mostly draws the simplest (k = 1, one distinct row)
    k = {"one": 1, "all": n, "some": max(1, n // 2)}[draw(st.sampled_from(["some", "all", "one"]))]
    pool = {"distinct": n, "pairs": max(1, (n + 1) // 2), "one": 1}[draw(st.sampled_from(["distinct", "pairs", "one"]))]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = rng.uniform(-1.0, 1.0, size=(pool, d))
    if draw(st.booleans()):
        base = np.round(base * 4) / 4  # a coarse grid: exact ties in distances
    X = base[rng.integers(pool, size=n)] if pool < n else base
    if draw(st.booleans()):
        X[:, draw(st.integers(0, d - 1))] = rng.uniform(-1.0, 1.0)  # a constant column
    # drawn by the seeded rng, not by hypothesis, which leans hard on its first choice
    X = X * 10.0 ** rng.choice([0, 0, 0, -30, 30, -15, 15, -5, 5, 19, 20])
    init = draw(st.sampled_from(["k-means++", "random"]))
    return X, k, init, draw(st.integers(0, 2**16)), draw(st.integers(1, 5)), draw(st.sampled_from([-1.0, 0.0, 1e-4]))


def expected_refusal(X, dtype) -> str | None:
    """Why validation must refuse X: its squared distances would overflow, or be subnormal, in ``dtype``."""
    biggest, info = float(np.abs(X).max()), np.finfo(dtype)
    if biggest > np.sqrt(info.max / (4.0 * X.shape[1])):
        return "overflow"
    if 0 < biggest < np.sqrt(info.tiny / info.eps):
        return "subnormal"
    return None


def robustness(name, dtype, case):
    X, k, init, seed, max_iter, tol = case
    Xd = X.astype(dtype)
    try:
        result = kmbench.fit(Xd, k, backend=name, init=init, seed=seed, max_iter=max_iter, tol=tol,
                             threads=THREADS)
    except kmbench.BackendUnavailable as exc:
        assert str(exc), "an unavailable backend must say why"
        return
    except ValueError as exc:
        why = expected_refusal(Xd, dtype)
        assert why is not None, f"unexpected rejection: {exc}"
        assert why in str(exc) and dtype in str(exc), exc
        return
    assert expected_refusal(Xd, dtype) is None, "data out of the dtype's safe range must be refused"
    assert result.centers.shape == (k, X.shape[1]) and result.centers.dtype == np.dtype(dtype)
    assert np.isfinite(result.centers).all(), result.centers
    assert result.labels.dtype == np.int32 and result.labels.shape == (X.shape[0],)
    assert ((result.labels >= 0) & (result.labels < k)).all(), result.labels
    assert np.isfinite(result.inertia) and result.inertia >= 0
    assert 1 <= result.n_iter <= max_iter
    if k == 1:
        # one cluster: its centre is the mean (up to rounding of the working dtype)
        scale = max(float(np.abs(Xd).max()), np.finfo(dtype).tiny)
        mean = Xd.astype(np.float64).mean(axis=0)
        assert np.max(np.abs(result.centers.astype(np.float64) - mean)) <= 1e-5 * scale
        assert (result.labels == 0).all()


@pytest.mark.parametrize("name, dtype", BACKENDS)
def test_awkward_inputs_give_valid_results_or_clear_errors(name, dtype):
    @settings(max_examples=examples(name, 24), **SETTINGS)
    @given(case=awkward())
    def check(case):
        robustness(name, dtype, case)

    check()


@st.composite
def well_conditioned(draw):
    """Continuous random data at moderate scales (ties are filtered out by the test)."""
    n = draw(st.integers(5, 40))
    d = draw(st.integers(1, 4))
    k = draw(st.integers(1, min(n, 6)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    groups = rng.uniform(-10, 10, size=(max(k, 1), d))
    X = groups[rng.integers(len(groups), size=n)] + rng.standard_normal((n, d))
    X = X * 10.0 ** draw(st.integers(-3, 3)) + draw(st.sampled_from([0.0, 100.0]))
    return X, k, draw(st.sampled_from(["k-means++", "random"])), draw(st.integers(0, 2**16)), draw(st.integers(1, 6))


@pytest.mark.parametrize("name, dtype", BACKENDS)
def test_agrees_with_oracle_on_well_conditioned_data(name, dtype):
    cls = backend_class(name)

    @settings(max_examples=examples(name, 12), **SETTINGS)
    @given(case=well_conditioned())
    def check(case):
        X, k, init, seed, max_iter = case
        Xd, centers = prepare_case(X, k, init, seed, dtype)
        assume(smallest_gap(Xd, centers, max_iter=max_iter, tol=-1.0) > 10 * TOLERANCES[dtype]["tie"])
        ref = reference(Xd, centers, max_iter=max_iter, tol=-1.0)
        try:
            result = kmbench.fit(Xd, k, backend=name, init=centers, max_iter=max_iter, tol=-1.0, dtype=dtype,
                                 threads=THREADS)
        except kmbench.BackendUnavailable as exc:
            assert str(exc)
            return
        c = compare(result, ref, Xd, dtype, deviations=cls.deviations, stops_early=cls.stops_early)
        assert c.ok, c
        if c.status != "ok":
            assert c.status.startswith("deviation (declared)") and (ref.relocated or ref.degenerate), c

    check()


def test_float32_at_subnormal_scale_is_refused_or_agrees():
    """At ~1e-21 float32 squared distances are subnormal: float32 backends silently disagreed with the
    oracle until validation learned to refuse such data (5210304); either outcome is honest."""
    import kmbench.check.data as data

    X = (data.blobs(200, 2, 3, seed=0)[0] * 1e-22).astype(np.float32)
    centers = X[[0, 1, 2]]
    ref = reference(X, centers, max_iter=5, tol=-1.0)
    wrong = []
    for param in BACKENDS:
        name, dtype = param.values
        if dtype != "float32" or param.marks or name in DASK_BACKENDS:
            continue  # dask runs the identity kernel; here it would start a cluster per fit
        cls = backend_class(name)
        try:
            result = kmbench.fit(X, 3, backend=name, init=centers, max_iter=5, tol=-1.0, threads=THREADS)
        except ValueError as exc:
            assert "float32" in str(exc), exc
            continue
        except kmbench.BackendUnavailable:
            continue
        c = compare(result, ref, X, "float32", deviations=cls.deviations, stops_early=cls.stops_early)
        if not c.ok:
            wrong.append(f"{name}: {c.status}")
    assert not wrong, "\n".join(wrong)


@settings(max_examples=60, **SETTINGS)
@given(values=st.lists(st.integers(0, 5), min_size=1, max_size=40), m=st.integers(0, 45))
def test_farthest_first_is_the_head_of_a_stable_descending_sort(values, m):
    """The empty-cluster rule's order (largest distance first, ties to the lower index),
    found without sorting every row: few distinct values make ties at the cut."""
    from impls.lloyd import farthest_first

    dist = np.array(values, dtype=np.float64)
    expected = np.argsort(-dist, kind="stable")[:m]
    assert farthest_first(dist, m).tolist() == expected.tolist()
