"""The linkage family's contract (docs/contract.md, "Hierarchical (agglomerative) clustering"),
checked for every backend in the family's registry: a backend is tested the moment it is registered.

Each case compares with the float64 oracle (kmbench/check/linkage_oracle.py): sorted heights and
flat clusters at the cuts no near-tie decides, and, tie-robust, a replay of the backend's own merges.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kmbench
from kmbench.check import linkage_oracle as oracle
from kmbench.core import linkage as family
from kmbench.core.errors import BackendUnavailable
from kmbench.core.registry import names

NAMES = names("linkage")
RTOL = {"float64": 1e-9, "float32": 1e-4}


def blobs(n=90, d=5, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((4, d)) * 5
    return centers[rng.integers(0, 4, n)] + rng.standard_normal((n, d))


def iris_sample():
    from sklearn.datasets import load_iris

    return load_iris().data[::2]  # 75 flowers, with duplicate rows: ties the contract allows


DATA = {"blobs": blobs, "iris": iris_sample}


def runnable(name, n, d, dtype, method):
    """The skip reason of backend ``name`` for this case (None: it runs), or pytest.skip when unavailable."""
    cls = family.load(name)
    reason = cls.unavailable()
    if reason is not None:
        pytest.skip(f"{name} unavailable: {reason}")
    return cls(threads=1).skip(n, d, dtype, method)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", oracle.METHODS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("data", list(DATA))
def test_backend_agrees_with_oracle(name, method, dtype, data):
    X = DATA[data]().astype(dtype)
    reason = runnable(name, *X.shape, dtype, method)
    if reason is not None:
        with pytest.raises(BackendUnavailable, match="cannot run this case"):
            kmbench.linkage(X, method, backend=name)
        assert method not in family.load(name).methods, f"{name} skipped a method it declares: {reason}"
        return
    result = kmbench.linkage(X, method, backend=name, threads=1)
    n = X.shape[0]
    assert result.Z.shape == (n - 1, 4) and result.Z.dtype == np.float64
    assert (result.backend, result.method, result.dtype) == (name, method, dtype)
    assert set(result.timings) == {"prepare", "warmup", "fit"}
    X64 = X.astype(np.float64)
    check = oracle.agreement(result.Z, oracle.linkage(X64, method), rtol=RTOL[dtype])
    assert check["valid"], "Z is not a valid, monotone linkage matrix"
    assert oracle.replay(X64, result.Z, method, rtol=RTOL[dtype]) is None
    if data == "blobs":  # no ties: the whole tree is determined
        assert check["ok"], check
        assert len(check["cuts"]) >= 5


@pytest.mark.parametrize("method", oracle.METHODS)
def test_oracle_agrees_with_scipy(method):
    from scipy.cluster.hierarchy import linkage

    for seed in range(3):
        X = blobs(80, 3, seed)
        check = oracle.agreement(oracle.linkage(X, method), linkage(X, method))
        assert check["ok"], check
        assert oracle.replay(X, linkage(X, method), method) is None


def test_replay_catches_a_wrong_tree():
    X = blobs(30, 2)
    Z = oracle.linkage(X, "average")
    bad = Z.copy()
    bad[[0, 1]] = bad[[1, 0]]
    bad[0, 2], bad[1, 2] = Z[0, 2], Z[1, 2]  # heights kept in order, merges swapped
    assert oracle.replay(X, Z, "average") is None
    assert oracle.replay(X, oracle.linkage(X, "single"), "complete") is not None


def test_torch_cuda_without_gpu_says_why():
    from impls.torch_device import nvidia_device_present

    if nvidia_device_present():
        pytest.skip("a GPU is present")
    row = {r["name"]: r for r in kmbench.backends(family="linkage")}["torch-cuda"]
    assert row["available"] is False and "no CUDA device" in row["reason"]
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        kmbench.linkage(blobs(10, 2), "single", backend="torch-cuda")


def test_listing_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, kmbench; kmbench.backends(family='linkage'); "
            "print(sorted(m for m in ('torch', 'numba', 'fastcluster') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_auto_records_its_choice():
    result = kmbench.linkage(blobs(40, 3), "ward")
    assert result.backend in NAMES and result.info["auto"]


def test_backends_lists_both_families():
    assert [r["name"] for r in kmbench.backends()] == names("kmeans")
    rows = kmbench.backends(family="linkage")
    assert [r["name"] for r in rows] == NAMES and all(r["methods"] for r in rows)


# -- one test per bad input ----------------------------------------------------------------


def test_unknown_method_lists_the_four():
    with pytest.raises(ValueError, match="method='median' should be one of 'single', 'complete', 'average', 'ward'"):
        kmbench.linkage(blobs(10, 2), "median", backend="scipy")


def test_one_point_is_refused():
    with pytest.raises(ValueError, match="n_samples=1 should be >= 2"):
        kmbench.linkage(np.zeros((1, 3)), "single", backend="scipy")


def test_nan_is_named_with_its_row():
    X = blobs(10, 2)
    X[7, 1] = np.nan
    with pytest.raises(ValueError, match="NaN .*row 7"):
        kmbench.linkage(X, "single", backend="scipy")


def test_one_dimensional_input_is_refused():
    with pytest.raises(ValueError, match="must be 2-D"):
        kmbench.linkage(np.arange(5.0), "single", backend="scipy")


def test_complex_input_is_refused():
    with pytest.raises(TypeError, match="complex"):
        kmbench.linkage(np.ones((4, 2), dtype=complex), "single", backend="scipy")


def test_unknown_backend_lists_the_known():
    with pytest.raises(ValueError, match="unknown linkage backend 'nope'; known: scipy"):
        kmbench.linkage(blobs(10, 2), "single", backend="nope")


def test_bad_threads_is_refused():
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        kmbench.linkage(blobs(10, 2), "single", backend="scipy", threads=0)


@pytest.mark.parametrize("name", ["scipy", "fastcluster", "numba", "sklearn"])
def test_matrix_beyond_the_budget_is_refused_before_allocating(name):
    n = 200_000  # 160 GB of condensed distances: refused by arithmetic, never allocated
    cls = family.load(name)
    if cls.unavailable():
        pytest.skip(cls.unavailable())
    backend = cls(threads=1, max_bytes=10**9)
    needed = backend.bytes_needed(n, 4, "average")
    assert needed >= 8 * n * (n - 1) // 2  # at least one condensed float64 matrix
    reason = backend.skip(n, 4, "float64", "average")
    assert reason is not None and f"{needed:,} bytes" in reason and "1,000,000,000" in reason


def test_matrix_free_methods_take_any_budget():
    assert family.load("numba")(threads=1, max_bytes=1000).skip(10**6, 16, "float64", "ward") is None


def test_bad_budget_is_named():
    with pytest.raises(ValueError, match="the 'max_bytes' option of backend 'scipy' must be .*; got -5"):
        kmbench.linkage(blobs(10, 2), "average", backend="scipy", max_bytes=-5)


def test_bad_budget_variable_is_named(monkeypatch):
    monkeypatch.setenv("KMBENCH_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="KMBENCH_MAX_BYTES='lots' should be a positive number of bytes"):
        kmbench.linkage(blobs(10, 2), "average", backend="scipy")


# -- hypothesis: duplicates, n = 2, constant columns, ties -----------------------------------


@st.composite
def tricky(draw):
    n = draw(st.integers(2, 14))
    d = draw(st.integers(1, 3))
    # Small integers: many equal distances, duplicate points and constant columns.
    values = draw(st.lists(st.integers(-2, 2), min_size=n * d, max_size=n * d))
    X = np.array(values, dtype=np.float64).reshape(n, d)
    if draw(st.booleans()):
        X[:, 0] = 3.0
    return X


@pytest.mark.parametrize("method", oracle.METHODS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(X=tricky())
def test_ties_and_duplicates(X, method):
    for name in NAMES:
        cls = family.load(name)
        if cls.unavailable() or cls(threads=1).skip(*X.shape, "float64", method):
            continue
        Z = kmbench.linkage(X, method, backend=name, threads=1).Z
        assert oracle.replay(X, Z, method) is None, name
        if method == "single":  # the MST's weights: no tie changes them
            assert oracle.agreement(Z, oracle.linkage(X, method))["height_error"] <= 1e-9, name
