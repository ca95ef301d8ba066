"""docs/contract.md's input table, row by row, through ``kmbench.fit`` (and the CLI where it takes data).

Every rejection must name the problem and the offending value, so each test checks
the exception type and the message.
"""
from __future__ import annotations

import importlib.util
import re
import tracemalloc

import numpy as np
import pytest

import kmbench
import kmbench.check.data as data

#: NumPy-only, both dtypes, always available: isolates validation from any backend's quirks
BACKEND = "broadcast"


@pytest.fixture(scope="module")
def X():
    return data.blobs(40, 3, 2, seed=0)[0]


def fit(X, k=2, **kwargs):
    kwargs.setdefault("backend", BACKEND)
    kwargs.setdefault("threads", 1)
    kwargs.setdefault("max_iter", 5)
    return kmbench.fit(X, k, **kwargs)


# -- X ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, what", [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_non_finite_names_first_bad_row(X, bad, what, dtype):
    Xb = X.astype(dtype)
    Xb[17, 1] = bad
    Xb[30, 0] = bad
    with pytest.raises(ValueError, match=rf"X contains {what} \(first at row 17; 2 bad rows in all\)"):
        fit(Xb)


def test_nan_in_a_list_of_lists():
    with pytest.raises(ValueError, match=r"NaN \(first at row 1"):
        fit([[0.0, 1.0], [float("nan"), 2.0], [3.0, 4.0]], 1)


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4), (), (1, 1, 1, 1)])
def test_wrong_ndim_names_the_shape(shape):
    with pytest.raises(ValueError, match="must be 2-D") as err:
        fit(np.zeros(shape), 1)
    assert f"{len(shape)}-D with shape {shape}" in str(err.value)


def test_zero_rows():
    with pytest.raises(ValueError, match=re.escape("at least 1 sample; got shape (0, 3)")):
        fit(np.zeros((0, 3)), 1)


def test_zero_columns():
    with pytest.raises(ValueError, match=re.escape("at least 1 feature; got shape (5, 0)")):
        fit(np.zeros((5, 0)), 1)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_is_type_error(dtype):
    with pytest.raises(TypeError, match=f"complex data is not supported: X has dtype {np.dtype(dtype)}"):
        fit(np.zeros((4, 2), dtype=dtype), 1)


def test_object_is_type_error():
    with pytest.raises(TypeError, match="X must be numeric; got dtype object"):
        fit(np.array([[1, None], [2, 3]], dtype=object), 1)


@pytest.mark.parametrize("value, shown", [
    (np.array([["a", "b"], ["c", "d"]]), "<U1"),
    ([["1.0", "2.0"], ["3.0", "4.0"]], "<U3"),
    (np.array([[b"a"], [b"b"]]), "|S1"),
])
def test_strings_are_type_error(value, shown):
    with pytest.raises(TypeError, match=re.escape(f"X must be numeric; got dtype {shown}")):
        fit(value, 1)


def test_a_bare_string_is_type_error():
    with pytest.raises(TypeError, match="X must be numeric; got str"):
        fit("1 2 3", 1)


@pytest.mark.parametrize("dtype", ["datetime64[s]", "timedelta64[s]"])
def test_times_are_type_error(dtype):
    with pytest.raises(TypeError, match=re.escape(dtype)):
        fit(np.zeros((3, 2), dtype=dtype), 1)


def test_ragged_rows_are_value_error():
    with pytest.raises(ValueError, match="could not be read as a 2-D array"):
        fit([[1.0, 2.0], [3.0]], 1)


def test_values_whose_squares_overflow_are_refused():
    with pytest.raises(ValueError, match=r"values up to 1e\+30.*overflow float32.*use dtype='float64'"):
        fit(np.full((4, 2), 1e30, dtype=np.float32), 1)
    assert np.isfinite(fit(np.full((4, 2), 1e30), 1).centers).all()


@pytest.mark.parametrize("row", [0, 2499, 4999])
def test_a_scan_split_across_threads_finds_a_bad_value_in_any_part(monkeypatch, row):
    """Each thread's part counts: a NaN in the first, a middle or the last part is refused."""
    import kmbench.core.validation as validation

    monkeypatch.setattr(validation, "PARALLEL_SCAN_BYTES", 1024)  # so 5000 x 7 float64 goes in 3 parts
    X = np.random.default_rng(0).standard_normal((5000, 7))
    validation.check_values(X, "float64", threads=3)
    X[row, 6] = np.nan
    with pytest.raises(ValueError, match=f"NaN \\(first at row {row};"):
        validation.check_values(X, "float64", threads=3)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_bad_value_among_many_is_found_in_either_layout(order, dtype):
    """The quick sum-of-squares proof must never pass what the exact min/max pass refuses."""
    from kmbench.core.validation import check_values

    base = np.asarray(np.random.default_rng(0).standard_normal((5000, 7)), dtype=dtype, order=order)
    check_values(base, dtype)  # plain data passes
    huge = np.finfo(dtype).max ** 0.5  # its square overflows: beyond the limit for any d
    for bad, message in [(np.nan, "NaN"), (-np.inf, "infinity"), (huge, "overflow")]:
        X = base.copy(order=order)
        X[4321, 5] = bad
        with pytest.raises(ValueError, match=message):
            check_values(X, dtype)
    tiny = np.full((5000, 7), np.finfo(dtype).tiny, dtype=dtype, order=order)
    with pytest.raises(ValueError, match="subnormal"):
        check_values(tiny, dtype)


# -- dtype --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["int64", "int8", "uint16", "bool", "float16", "float64"])
def test_other_real_types_become_float64(source):
    Xs = (np.arange(24).reshape(12, 2) % 5).astype(source)
    result = fit(Xs, 2)
    assert result.dtype == "float64" and result.centers.dtype == np.float64


def test_float32_is_kept(X):
    result = fit(X.astype(np.float32), 2)
    assert result.dtype == "float32" and result.centers.dtype == np.float32


@pytest.mark.parametrize("requested", [
    "float32", np.dtype("float32"), "f4", np.float32,
])
def test_dtype_forces_float32(X, requested):
    result = fit(X, 2, dtype=requested)
    assert result.dtype == "float32" and result.centers.dtype == np.float32


def test_dtype_forces_float64(X):
    assert fit(X.astype(np.float32), 2, dtype="float64").centers.dtype == np.float64


@pytest.mark.parametrize("requested", ["float16", "int32", "double precision", 123, int, np.float16])
def test_invalid_dtype(X, requested):
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'") as err:
        fit(X, 2, dtype=requested)
    assert repr(requested) in str(err.value)


# -- n_clusters -------------------------------------------------------------------------------------------
def test_n_clusters_zero(X):
    with pytest.raises(ValueError, match="n_clusters=0 must be >= 1"):
        fit(X, 0)


def test_n_clusters_negative(X):
    with pytest.raises(ValueError, match="n_clusters=-3 must be >= 1"):
        fit(X, -3)


def test_n_clusters_above_n_samples():
    with pytest.raises(ValueError, match="n_clusters=10 must be <= n_samples=5"):
        fit(np.random.default_rng(0).random((5, 2)), 10)


@pytest.mark.parametrize("k", [2.0, 2.5, "2", None, [2]])
def test_n_clusters_not_an_integer(X, k):
    with pytest.raises(ValueError, match="n_clusters must be an integer >= 1") as err:
        fit(X, k)
    assert repr(k) in str(err.value)


@pytest.mark.parametrize("k", [True, False])
def test_n_clusters_bool_rejected(X, k):
    with pytest.raises(ValueError, match=f"n_clusters must be an integer >= 1; got {k}"):
        fit(X, k)


def test_n_clusters_numpy_integer_accepted(X):
    assert fit(X, np.int64(3)).centers.shape == (3, 3)


def test_n_clusters_equal_n_samples_accepted():
    Xs = np.random.default_rng(1).random((6, 2))
    result = fit(Xs, 6)
    assert sorted(result.labels) == list(range(6)) and result.inertia == 0.0


# -- init ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("init", ["kmeans++", "k-means", "RANDOM", ""])
def test_init_unknown_name(X, init):
    with pytest.raises(ValueError, match="init must be one of") as err:
        fit(X, 2, init=init)
    assert repr(init) in str(err.value)


@pytest.mark.parametrize("shape", [(3, 3), (2, 2), (6,), (2, 3, 1)])
def test_init_wrong_shape_gives_the_expected_one(X, shape):
    with pytest.raises(ValueError, match=re.escape("expected (n_clusters, n_features) = (2, 3)")) as err:
        fit(X, 2, init=np.zeros(shape))
    assert f"init has shape {shape}" in str(err.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_init_non_finite(X, bad):
    init = X[:2].copy()
    init[1, 2] = bad
    with pytest.raises(ValueError, match="init contains NaN or infinity"):
        fit(X, 2, init=init)


def test_init_array_is_used_as_given(X):
    init = X[[0, 39]]
    result = fit(X, 2, init=init, max_iter=1, tol=-1.0)
    import kmbench.check.oracle as oracle

    np.testing.assert_allclose(result.centers, oracle.lloyd(X, init, 1, -1.0).centers, rtol=1e-12)


@pytest.mark.parametrize("init", [None, np.array([["a", "b", "c"]] * 2), np.array([[object()] * 3] * 2)])
def test_init_non_numeric_is_named_init(X, init):
    with pytest.raises(TypeError, match="init"):
        fit(X, 2, init=init)


# -- max_iter, tol, seed ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_iter, message", [
    (0, "max_iter=0 must be >= 1"),
    (-5, "max_iter=-5 must be >= 1"),
    (2.0, "max_iter must be an integer >= 1; got 2.0"),
    ("10", "max_iter must be an integer >= 1; got '10'"),
    (None, "max_iter must be an integer >= 1; got None"),
    (True, "max_iter must be an integer >= 1; got True"),
])
def test_max_iter_invalid(X, max_iter, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        fit(X, 2, max_iter=max_iter)


@pytest.mark.parametrize("tol", [float("nan"), np.float32("nan"), "1e-4", None, True])
def test_tol_invalid(X, tol):
    with pytest.raises(ValueError, match="tol must be a real number") as err:
        fit(X, 2, tol=tol)
    assert repr(tol) in str(err.value)


@pytest.mark.parametrize("tol", [0, 1e-4, np.float32(1e-3), -1, -np.inf])
def test_tol_valid(X, tol):
    result = fit(X, 2, tol=tol, max_iter=4)
    assert result.n_iter == 4 if tol < 0 else 1 <= result.n_iter <= 4


@pytest.mark.parametrize("seed", [1.5, "0", True, np.random.default_rng(0), [0]])
def test_seed_invalid(X, seed):
    with pytest.raises(ValueError, match="seed must be an int or None") as err:
        fit(X, 2, seed=seed)
    assert repr(seed)[:20] in str(err.value)


def test_negative_seed_is_named(X):
    with pytest.raises(ValueError, match="seed.*-1"):
        fit(X, 2, seed=-1)


@pytest.mark.parametrize("seed", [None, 0, np.int64(7), 2**70])
def test_seed_valid(X, seed):
    assert fit(X, 2, seed=seed).centers.shape == (2, 3)


# -- backend, device ---------------------------------------------------------------------------------------------
def test_unknown_backend_lists_known_ones(X):
    import impls

    with pytest.raises(ValueError, match="unknown backend 'nosuch'; known: ") as err:
        fit(X, 2, backend="nosuch")
    assert all(name in str(err.value) for name in impls.REGISTRY)


@pytest.mark.parametrize("backend", [None, 3, ["loop"]])
def test_backend_not_a_name(X, backend):
    with pytest.raises(ValueError, match="backend must be a name") as err:
        fit(X, 2, backend=backend)
    assert repr(backend) in str(err.value)


def test_unsupported_device_is_unavailable_with_reason(X):
    with pytest.raises(kmbench.BackendUnavailable, match=r"does not run on device='tpu'; devices: cpu"):
        fit(X, 2, device="tpu")


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2"])
def test_threads_invalid(X, threads):
    with pytest.raises(ValueError, match="threads must be an integer >= 1") as err:
        fit(X, 2, threads=threads)
    assert repr(threads) in str(err.value)


# -- containers --------------------------------------------------------------------------------------------------
def test_array_likes_accepted():
    pd = pytest.importorskip("pandas")
    rows = [[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]]
    a = fit(rows, 2, seed=1)
    b = fit(pd.DataFrame(rows, columns=["x", "y"]), 2, seed=1)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_torch_tensor_accepted():
    torch = pytest.importorskip("torch")
    X = torch.from_numpy(data.blobs(60, 3, 3, seed=1)[0])
    result = fit(X.float(), 3)
    assert result.dtype == "float32" and result.labels.shape == (60,)
    result = fit(X, 3)
    assert result.dtype == "float64"
    np.testing.assert_array_equal(result.labels, fit(X.numpy(), 3).labels)
    assert fit(torch.arange(12).reshape(6, 2), 2).dtype == "float64"


def test_torch_tensor_rejections():
    torch = pytest.importorskip("torch")
    bad = torch.zeros(8, 2)
    bad[5, 0] = float("nan")
    with pytest.raises(ValueError, match=r"NaN \(first at row 5"):
        fit(bad, 2)
    with pytest.raises(ValueError, match=re.escape("got 1-D with shape (5,)")):
        fit(torch.zeros(5), 1)
    with pytest.raises(TypeError, match="complex data is not supported: X has dtype torch.complex64"):
        fit(torch.zeros(4, 2, dtype=torch.complex64), 1)


# -- fail fast ---------------------------------------------------------------------------------------------------
def _peak_while_failing(call) -> int:
    """Bytes allocated at peak (beyond what was live before) during a call expected to raise."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        with pytest.raises((ValueError, TypeError)):
            call()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_huge_k_with_tiny_n_fails_at_once():
    peak = _peak_while_failing(lambda: fit(np.zeros((3, 2)), 10**12))
    assert peak < 1 << 20


def test_nan_rejected_with_a_boolean_mask_at_most():
    Xb = np.zeros((200_000, 8))
    Xb[3, 2] = np.nan
    peak = _peak_while_failing(lambda: fit(Xb, 2))
    assert peak < Xb.nbytes / 4, f"{peak / Xb.nbytes:.2f} x X's size allocated to find a NaN"


@pytest.mark.parametrize("bad", [{"k": 0}, {"k": 2, "max_iter": 0}, {"k": 2, "tol": float("nan")}])
def test_bad_parameters_rejected_before_scanning_x(bad):
    Xb = np.zeros((200_000, 8))
    k = bad.pop("k")
    peak = _peak_while_failing(lambda: fit(Xb, k, **bad))
    assert peak < Xb.nbytes / 4, f"{peak / Xb.nbytes:.2f} x X's size allocated before a parameter check"


# -- the CLI, where it takes data ------------------------------------------------------------------------------
needs_cli_fit = pytest.mark.skipif(importlib.util.find_spec("kmbench.cli.fitfile") is None,
                                   reason="`kmbench fit` is not written yet")


def cli_fit(path, *args, capsys):
    from kmbench.cli import main

    rc = main(["fit", str(path), "--backend", BACKEND, "--threads", "1", "--quiet", *map(str, args)])
    return rc, capsys.readouterr().err


@needs_cli_fit
def test_cli_nan_names_row(tmp_path, X, capsys):
    Xb = X.copy()
    Xb[7, 0] = np.nan
    np.save(tmp_path / "x.npy", Xb)
    rc, err = cli_fit(tmp_path / "x.npy", "--k", 2, capsys=capsys)
    assert rc == 2 and "X contains NaN (first at row 7" in err


@needs_cli_fit
def test_cli_too_many_clusters(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((5, 2)))
    rc, err = cli_fit(tmp_path / "x.npy", "--k", 10, capsys=capsys)
    assert rc == 2 and "n_clusters=10 must be <= n_samples=5" in err


@needs_cli_fit
def test_cli_wrong_ndim(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros(5))
    rc, err = cli_fit(tmp_path / "x.npy", "--k", 1, capsys=capsys)
    assert rc == 2 and "1-D with shape (5,)" in err


@needs_cli_fit
def test_cli_complex(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((4, 2), dtype=complex))
    rc, err = cli_fit(tmp_path / "x.npy", "--k", 1, capsys=capsys)
    assert rc == 2 and "complex data is not supported" in err


@needs_cli_fit
def test_cli_init_wrong_shape(tmp_path, X, capsys):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "c.npy", np.zeros((3, 3)))
    rc, err = cli_fit(tmp_path / "x.npy", "--k", 2, "--init", tmp_path / "c.npy", capsys=capsys)
    assert rc == 2 and "expected (n_clusters, n_features) = (2, 3)" in err


def test_masked_array_is_refused_not_silently_unmasked():
    X = np.ma.masked_array([[0.0, 1e6], [1.0, 1.0], [2.0, 2.0]], mask=[[0, 1], [0, 0], [0, 0]])
    with pytest.raises(TypeError, match="masked arrays are not supported"):
        fit(X, 1)


def test_sparse_input_is_named():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match=r"sparse input is not supported \(csr_matrix, shape \(3, 2\)\).*toarray"):
        fit(sparse.csr_matrix(np.eye(3, 2)), 1)
