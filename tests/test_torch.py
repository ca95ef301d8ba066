"""torch-cpu and torch-cuda specifics: oracle agreement, the empty-cluster rule, ties,
zero-copy tensor input, chunking, explicit precision options, and torch-cuda's reasons.

The generic contract over every backend lives in test_contract.py; these tests exercise
what only the torch driver does. Without a GPU the CUDA class is checked for its reasons,
and its device-agnostic code runs on CPU.
"""
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import kmbench  # noqa: E402
from impls import torch_device, torch_lloyd  # noqa: E402
from impls.torch_lloyd import TorchCPUKMeans, TorchCUDAKMeans  # noqa: E402
import kmbench.check.data as data  # noqa: E402
import kmbench.check.oracle as oracle  # noqa: E402
from kmbench.check.crosscheck import compare  # noqa: E402
from kmbench.core.kmeans import BackendUnavailable, create, execute  # noqa: E402
from kmbench.core.seeding import initial_centers  # noqa: E402


def _fit(X, centers, max_iter, tol=-1.0, **options):
    # One thread: correctness does not depend on it, and on a busy 2-core machine torch's OpenMP
    # barriers make every small op wait for a descheduled sibling (test_threads.py covers the knob).
    dtype = str(X.dtype).replace("torch.", "")
    b = create("torch-cpu", n=X.shape[0], k=centers.shape[0], d=X.shape[1], dtype=dtype, threads=1, **options)
    return b, execute(b, X, np.asarray(centers).astype(dtype), max_iter=max_iter, tol=tol)


def _judge(X, centers, max_iter, tol=-1.0, **options):
    Xd = np.asarray(X)
    ref = oracle.lloyd(Xd, centers, max_iter, tol)
    _, res = _fit(X, centers, max_iter, tol, **options)
    verdict = compare(res, ref, Xd, str(Xd.dtype))
    assert verdict.ok, verdict.status
    return res, ref, verdict


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("chunk", [None, 37])
def test_agrees_with_oracle_on_blobs(dtype, chunk):
    X, _ = data.blobs(900, 6, 7, seed=11, dtype=dtype)
    C = initial_centers(X, 9, "k-means++", 11)
    res, ref, _ = _judge(X, C, 12, chunk=chunk)
    assert res.n_iter == 12 and not res.converged
    assert np.array_equal(res.labels, ref.labels)
    assert res.labels.dtype == np.int32 and res.centers.dtype == np.dtype(dtype)
    np.testing.assert_allclose(res.inertia_history, ref.inertia_history, rtol=1e-5 if dtype == "float32" else 1e-10)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_converges_on_the_same_iteration_as_the_oracle(dtype):
    X, _ = data.blobs(2000, 4, 5, seed=2, dtype=dtype)
    C = initial_centers(X, 5, "k-means++", 2)
    res, ref, _ = _judge(X, C, 300, tol=1e-4)
    assert res.converged and ref.converged and res.n_iter == ref.n_iter < 300


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_forced_empty_clusters_are_reseeded_like_the_oracle(dtype):
    X, C = data.with_empty_clusters(300, 3, 6, seed=4, dtype=dtype)
    res, ref, _ = _judge(X, C, 10, chunk=64)
    assert ref.relocated > 0
    assert res.info["relocated"] == ref.relocated
    assert np.bincount(res.labels, minlength=6).min() > 0


def test_empty_clusters_when_every_point_sits_on_its_centre_keep_their_centres():
    # Every distance is 0, so the rule moves nothing and the empty clusters keep their centres.
    X = np.tile(np.array([[1.0, 2.0], [5.0, 5.0]]), (10, 1))
    C = np.array([[1.0, 2.0], [5.0, 5.0], [50.0, 50.0], [90.0, 90.0]])
    res, ref, _ = _judge(X, C, 3)
    assert res.info["relocated"] == ref.relocated == 0
    np.testing.assert_array_equal(res.centers[2:], C[2:])


def test_farthest_point_ties_go_to_the_lower_index():
    # Six points at the same distance from their centre; two empty clusters must take points 0 and 1.
    X = np.array([[1.0, 0], [-1.0, 0], [0, 1.0], [0, -1.0], [1.0, 0], [-1.0, 0]])
    C = np.array([[0.0, 0.0], [100.0, 100.0], [200.0, 200.0]])
    res, ref, _ = _judge(X, C, 1)
    np.testing.assert_array_equal(ref.centers[1:], X[:2])
    np.testing.assert_array_equal(res.centers[1:], X[:2])


@pytest.mark.parametrize("k_half", [1, 3, 32, 599])
@pytest.mark.parametrize("chunk", [13, 4096])
def test_exact_ties_in_the_assignment_go_to_the_lowest_index(k_half, chunk):
    # Every centre appears twice, so each point's minimum is tied at j and j + k_half.
    rng = np.random.default_rng(k_half)
    X = rng.integers(-4, 5, size=(600, 3)).astype(np.float64)
    C = np.vstack([X[:k_half], X[:k_half]])
    b = TorchCPUKMeans(chunk=chunk)
    b.prepare(X, C)
    labels, dist = b.assign(b.init, b.buffers[0])
    assert int(labels.max()) < k_half
    D = oracle.squared_distances(X, C)
    np.testing.assert_array_equal(labels.numpy(), D.argmin(axis=1))
    np.testing.assert_allclose(dist.numpy(), D.min(axis=1), atol=1e-9)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_contiguous_tensor_input_is_not_copied(dtype):
    X, _ = data.blobs(800, 5, 4, seed=1, dtype=dtype)
    T = torch.from_numpy(X)
    C = initial_centers(X, 4, "random", 1)
    b, res = _fit(T, C, 5)
    assert b.X.data_ptr() == T.data_ptr()
    assert res.info["input_copied"] is False
    assert compare(res, oracle.lloyd(X, C, 5, -1.0), X, dtype).ok


def test_numpy_input_of_the_working_dtype_is_not_copied():
    X, _ = data.blobs(800, 5, 4, seed=1, dtype="float32")
    b, res = _fit(X, initial_centers(X, 4, "random", 1), 3)
    assert b.X.data_ptr() == X.ctypes.data and res.info["input_copied"] is False


def test_strided_or_grad_tensor_is_copied_once_and_gives_the_same_result():
    X, _ = data.blobs(600, 4, 3, seed=8)
    C = initial_centers(X, 3, "random", 8)
    strided = torch.from_numpy(np.asfortranarray(X))
    assert not strided.is_contiguous()
    b, res = _fit(strided, C, 4)
    assert res.info["input_copied"] is True and b.X.is_contiguous()
    _, plain = _fit(X, C, 4)
    np.testing.assert_array_equal(res.labels, plain.labels)
    _, graded = _fit(torch.from_numpy(X.copy()).requires_grad_(True), C, 4)
    np.testing.assert_array_equal(graded.labels, plain.labels)


def test_fit_accepts_a_tensor_through_the_public_entry_point():
    X, _ = data.blobs(500, 3, 4, seed=6, dtype="float32")
    res = kmbench.fit(torch.from_numpy(X), 4, backend="torch-cpu", seed=6, max_iter=5, tol=-1.0)
    ref = oracle.lloyd(X, initial_centers(X, 4, "k-means++", 6), 5, -1.0)
    assert res.backend == "torch-cpu" and res.dtype == "float32"
    assert compare(res, ref, X, "float32").ok


def test_chunk_bounds_the_distance_block():
    X, _ = data.blobs(1000, 4, 8, seed=3, dtype="float32")
    C = initial_centers(X, 16, "random", 3)
    b, res = _fit(X, C, 2, chunk=99)
    assert res.info["chunk"] == 99 and tuple(b.block.shape) == (99, 16)
    b, res = _fit(X, C, 2)
    assert 0 < res.info["chunk"] <= 1000 and tuple(b.block.shape) == (res.info["chunk"], 16)


def test_default_chunk_fits_the_budget_and_never_drops_below_the_minimum():
    chunk = torch_lloyd.default_chunk(10**7, 1024, 16, 4, "cpu")
    per_row = 1024 * 4 + 16 * 12
    cache = torch_lloyd.last_level_cache_bytes() or torch_lloyd.CPU_BLOCK_BYTES * 2
    assert chunk * per_row <= max(cache // 2, torch_lloyd.MIN_CHUNK * per_row)
    assert torch_lloyd.default_chunk(10, 10**9, 16, 8, "cpu") == torch_lloyd.MIN_CHUNK
    assert torch_lloyd.default_chunk(10**8, 1000, 10, 4, "cuda", free_bytes=8 << 30) * (4000 + 120) <= 1 << 30


def test_run_can_be_repeated_and_starts_from_the_prepared_centres():
    X, _ = data.blobs(700, 4, 5, seed=9, dtype="float32")
    C = initial_centers(X, 5, "random", 9).astype(np.float32)
    b = create("torch-cpu", n=700, k=5, d=4, dtype="float32", threads=1)
    b.prepare(X, C)
    b.run(6, -1.0)
    first = b.result()
    b.run(6, -1.0)
    second = b.result()
    np.testing.assert_array_equal(first.centers, second.centers)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.inertia_history == second.inertia_history
    np.testing.assert_array_equal(b.init.numpy(), C)


def test_precision_options_are_off_by_default_and_recorded():
    X, _ = data.blobs(400, 4, 3, seed=5, dtype="float32")
    C = initial_centers(X, 3, "random", 5)
    _, res = _fit(X, C, 3)
    assert res.info["allow_tf32"] is False and res.info["half"] is False
    assert res.info["tf32_in_effect"] is False
    _, res = _fit(X, C, 3, allow_tf32=True)
    # Recorded as asked; TF32 is a CUDA matmul mode, so on CPU it changes nothing.
    assert res.info["allow_tf32"] is True and res.info["tf32_in_effect"] is False
    assert compare(res, oracle.lloyd(X, C, 3, -1.0), X, "float32").ok


@pytest.mark.parametrize("half", [True, "bfloat16"])
def test_half_precision_is_explicit_recorded_and_still_clusters(half):
    X, _ = data.blobs(2000, 4, 4, seed=7, dtype="float32", box=5.0)
    C = initial_centers(X, 4, "k-means++", 7)
    _, res = _fit(X, C, 10, half=half)
    assert res.info["half"] == ("float16" if half is True else "bfloat16")
    ref = oracle.lloyd(X, C, 10, -1.0)
    # Approximate labels, but the exact float64 inertia of what it found stays close.
    assert abs(res.inertia - ref.inertia) / ref.inertia < 0.05
    assert np.mean(res.labels == ref.labels) > 0.9


def test_float16_overflow_is_refused_with_the_value():
    X = np.full((50, 4), 300.0, dtype=np.float32)
    X[1] = -300.0
    with pytest.raises(ValueError, match=r"half='float16' would overflow.*3\.6e\+05 > 65504"):
        _fit(X, X[:2], 2, half="float16")


@pytest.mark.parametrize("options, message", [
    ({"chunk": 0}, "chunk=0 must be >= 1"),
    ({"chunk": 2.5}, "chunk must be an integer"),
    ({"half": "fp8"}, "half must be False, True, 'float16' or 'bfloat16'; got 'fp8'"),
    ({"allow_tf32": "yes"}, "allow_tf32 must be True or False; got 'yes'"),
    ({"deterministic": 1}, "deterministic must be True or False; got 1"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        create("torch-cpu", n=10, k=2, d=2, dtype="float32", **options)


def test_torch_cpu_refuses_a_cuda_device():
    with pytest.raises(BackendUnavailable, match="does not run on device='cuda'"):
        create("torch-cpu", n=10, k=2, d=2, dtype="float32", device="cuda")


def test_torch_cuda_is_unavailable_here_with_no_cuda_device():
    if torch_device.nvidia_device_present():
        pytest.skip("an NVIDIA device node exists on this machine")
    assert TorchCUDAKMeans.unavailable() == "no CUDA device"
    row = {r["name"]: r for r in kmbench.backends()}["torch-cuda"]
    assert row["available"] is False and row["reason"] == "no CUDA device"


def test_torch_cuda_availability_check_does_not_import_torch():
    code = ("import sys; from impls.torch_lloyd import TorchCUDAKMeans, TorchCPUKMeans; "
            "TorchCUDAKMeans.unavailable(); TorchCPUKMeans.unavailable(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_torch_cuda_without_torch_gives_the_install_hint(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None)
    assert TorchCUDAKMeans.unavailable() == "torch not installed: pip install 'kmbench[torch]'"


def test_torch_cuda_skip_asks_torch_for_a_device():
    b = TorchCUDAKMeans()
    if torch.cuda.is_available():
        pytest.skip("torch sees a CUDA device here")
    assert b.skip(100, 4, 3, "float32") == "no CUDA device (torch reports none)"
    assert TorchCUDAKMeans(device="cuda:1").skip(100, 4, 3, "float32") == "no CUDA device (torch reports none)"
    assert "does not run on device='cpu'" in TorchCUDAKMeans(device="cpu").skip(100, 4, 3, "float32")


def test_torch_cuda_refuses_work_beyond_free_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10**9, 8 * 10**10))
    b = TorchCUDAKMeans()
    needed = torch_lloyd.device_bytes_needed(10**8, 1024, 16, 4)
    assert needed > 10**9
    assert b.skip(10**8, 1024, 16, "float32") == (
        f"needs about {needed:,} bytes of GPU memory for n=100000000, k=1024, d=16 float32; "
        f"1,000,000,000 free on cuda")
    assert b.skip(1000, 8, 4, "float32") is None
    assert TorchCUDAKMeans(device="cuda:3").skip(1000, 8, 4, "float32") == "no CUDA device 3: torch sees 1"


def test_the_device_agnostic_driver_runs_on_cpu_through_the_cuda_class():
    # Everything but the device string is shared; run the CUDA class's driver on the CPU.
    X, _ = data.blobs(600, 3, 4, seed=12, dtype="float32")
    C = initial_centers(X, 6, "k-means++", 12).astype(np.float32)
    b = TorchCUDAKMeans(chunk=50)
    b.device = "cpu"
    b.prepare(X, C)
    b.warm_up()
    b.run(8, -1.0)
    out = b.result()
    ref = oracle.lloyd(X, C, 8, -1.0)
    np.testing.assert_array_equal(out.labels, ref.labels)
    assert abs(out.inertia - ref.inertia) / ref.inertia < 1e-5


def _spread_rows(n=20_000, d=3, seed=0):
    """float64 rows whose sums round differently in every order: magnitudes over 12 decades."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * 10.0 ** rng.integers(-6, 6, size=(n, 1))


@pytest.mark.parametrize("method", ["sorted", "product"])
def test_ordered_sums_agree_with_index_add_on_cpu(monkeypatch, method):
    # The paths deterministic=True takes on CUDA, run on the CPU: the same sums as index_add_'s,
    # up to the order of the additions.
    X = _spread_rows()
    C = X[:5].copy()
    _, plain = _fit(X, C, 4, chunk=3000)
    assert plain.info["sums"] == "float64 (index_add_)" and plain.info["deterministic"] is True
    monkeypatch.setattr(torch_lloyd, "sum_method", lambda *args: method)
    _, ordered = _fit(X, C, 4, chunk=3000)
    assert ordered.info["sums"] == f"float64 ({method})"
    np.testing.assert_array_equal(ordered.labels, plain.labels)
    np.testing.assert_allclose(ordered.centers, plain.centers, rtol=1e-12, atol=1e-12 * np.abs(X).max())


def test_deterministic_sums_sort_while_clusters_are_small_then_multiply():
    assert torch_lloyd.sum_method(True, "cpu", 10**6, 8) == "index_add_"
    assert torch_lloyd.sum_method(False, "cpu", 10**6, 8) == "index_add_"
    rows = torch_lloyd.SORTED_SUMS_MAX_ROWS
    assert torch_lloyd.sum_method(True, "cuda:0", rows * 100, 100) == "sorted"
    assert torch_lloyd.sum_method(True, "cuda:0", rows * 100 + 1, 100) == "product"


def test_cuda_sums_multiply_for_few_clusters_else_add_atomically():
    few = torch_lloyd.PRODUCT_SUMS_MAX_K
    assert torch_lloyd.sum_method(False, "cuda", 10**6, few) == "product"
    assert torch_lloyd.sum_method(False, "cuda:0", 10**6, few + 1) == "index_add_"
    assert torch_lloyd.sum_method(False, "cuda", 100, 2) == "product"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("n, k", [(200_000, 8), (100_000, 512)])
def test_torch_cuda_deterministic_repeats_its_bits(n, k):
    X = _spread_rows(n, 4)
    C = X[:k].copy()
    fits = [kmbench.fit(X, k, backend="torch-cuda", init=C, max_iter=6, tol=-1.0, deterministic=True)
            for _ in range(3)]
    chunk = fits[0].info["chunk"]
    assert all(f.info["sums"] == f"float64 ({torch_lloyd.sum_method(True, 'cuda', chunk, k)})" for f in fits)
    for other in fits[1:]:
        np.testing.assert_array_equal(other.centers, fits[0].centers)
        np.testing.assert_array_equal(other.labels, fits[0].labels)
    assert compare(fits[0], oracle.lloyd(X, C, 6, -1.0), X, "float64").ok


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_cuda_says_whether_its_default_sums_are_ordered():
    X = _spread_rows(100_000, 4)
    few = torch_lloyd.PRODUCT_SUMS_MAX_K
    for k, ordered in ((few, True), (few + 1, False)):
        fits = [kmbench.fit(X, k, backend="torch-cuda", init=X[:k], max_iter=4, tol=-1.0) for _ in range(2)]
        assert fits[0].info["sums"] == ("float64 (product)" if ordered else "float64 (index_add_)")
        assert fits[0].info["deterministic"] is ordered
        if ordered:
            np.testing.assert_array_equal(fits[1].centers, fits[0].centers)


def test_kmbench_check_passes_for_torch_cpu(monkeypatch):
    from kmbench.cli import main

    monkeypatch.setenv("KMBENCH_THREADS", "1")
    assert main(["check", "--backend", "torch-cpu"]) == 0


def test_peak_memory_script_is_import_safe_and_measures_a_small_fit(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "peak_memory.py"
    spec = importlib.util.spec_from_file_location("peak_memory_under_test", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # as asv does while discovering: nothing may run
    asv_prefixes = ("time_", "timeraw_", "track_", "mem_", "peakmem_", "Time", "Track")
    assert not [name for name in vars(module) if name.startswith(asv_prefixes)]
    out = tmp_path / "peak.json"
    proc = subprocess.run([sys.executable, str(script), "--backends", "torch-cpu,torch-cuda", "--n", "3000",
                           "--k", "8", "--iterations", "2", "--threads", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {r["backend"]: r for r in json.loads(out.read_text())}
    cpu = rows["torch-cpu"]
    assert cpu["x_bytes"] == 3000 * 16 * 4 and cpu["n_iter"] == 2 and cpu["threads"] == 1
    # The import of torch is counted and is part of the peak (its size varies by machine, ~190-260 MB);
    # the fit's own share must stay within the bound.
    assert 0 < cpu["import_bytes"] <= cpu["peak_increase_bytes"]
    assert cpu["peak_increase_bytes"] - cpu["import_bytes"] < module.bound_bytes(cpu["x_bytes"])
    if not torch_device.nvidia_device_present():
        assert rows["torch-cuda"]["error"] == "no CUDA device"
    assert "torch-cpu" in proc.stdout and "within bound" in proc.stdout


def test_mean_variance_does_not_cancel_far_from_the_origin():
    # One-pass E[x^2] - E[x]^2 loses every digit here (x^2 ~ 1e16, variance ~ 1e-2).
    X = 1e8 + np.random.default_rng(3).standard_normal((5000, 3)) * 0.1
    expected = float(np.mean(np.var(X, axis=0)))
    got = torch_lloyd.mean_variance(torch.from_numpy(X), rows=777)
    assert got == pytest.approx(expected, rel=1e-6)


def test_tensor_for_a_numpy_backend_is_brought_to_the_host_once(monkeypatch):
    """k-means++ seeding and the backend see the same host copy: one ``.numpy()``, not one each."""
    X = torch.from_numpy(data.blobs(400, 3, 4, seed=2)[0])
    calls = []
    original = torch.Tensor.numpy

    def counted(self, *args, **kwargs):
        calls.append(tuple(self.shape))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "numpy", counted)
    result = kmbench.fit(X, 4, backend="identity", init="k-means++", max_iter=3, tol=-1.0)
    assert calls.count((400, 3)) == 1, calls
    assert result.labels.shape == (400,)
