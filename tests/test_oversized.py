"""Work that cannot fit is refused before anything is allocated, naming the size and the limit.

Each refusal is checked for its words *and* for what it did not do: the process's
peak memory must not have grown by the size of the work it refused.
"""
from __future__ import annotations

import resource
import time

import numpy as np
import pytest

import kmbench
from impls.broadcast import default_budget
from kmbench.core.kmeans import BackendUnavailable, create


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def broadcast_bytes(n, k, d, itemsize=8) -> int:
    """What ``broadcast`` needs: the (n, k, d) difference tensor and the (n, k) distances."""
    return n * k * d * itemsize + n * k * itemsize


@pytest.fixture(scope="module")
def X():
    # 16 MB of data whose (n, k=200, d) broadcast temporary would be 3.2 GB.
    return np.random.default_rng(0).standard_normal((20000, 100))


def test_broadcast_over_budget_is_refused_at_once_without_allocating(X):
    budget = 1_000_000_000
    need = broadcast_bytes(20000, 200, 100)
    peak = peak_rss_bytes()
    start = time.perf_counter()
    with pytest.raises(BackendUnavailable) as err:
        kmbench.fit(X, 200, backend="broadcast", init="random", max_iter=1, tol=-1.0, memory_budget=budget)
    elapsed = time.perf_counter() - start
    message = str(err.value)
    assert f"needs {need:,} bytes" in message and f"memory budget {budget:,} bytes" in message
    assert "memory_budget=" in message and "KMBENCH_MEMORY_BUDGET" in message  # how to change it
    # A refusal costs a validation pass over X, not a 3.2 GB temporary.
    assert elapsed < 3, f"refusal took {elapsed:.1f} s"
    assert peak_rss_bytes() - peak < need // 10


def test_broadcast_budget_from_the_environment(monkeypatch):
    monkeypatch.setenv("KMBENCH_MEMORY_BUDGET", "799")
    need = broadcast_bytes(50, 1, 1)
    assert need == 800
    with pytest.raises(BackendUnavailable, match=r"needs 800 bytes .* > memory budget 799 bytes"):
        create("broadcast", n=50, k=1, d=1, dtype="float64")
    monkeypatch.setenv("KMBENCH_MEMORY_BUDGET", "800")
    assert create("broadcast", n=50, k=1, d=1, dtype="float64").name == "broadcast"


def test_broadcast_default_budget_refuses_a_terabyte_temporary():
    n, k, d = 20000, 20000, 1000
    with pytest.raises(BackendUnavailable) as err:
        create("broadcast", n=n, k=k, d=d, dtype="float64")
    message = str(err.value)
    assert f"{broadcast_bytes(n, k, d):,} bytes" in message
    assert f"memory budget {default_budget():,} bytes" in message
    assert default_budget() < broadcast_bytes(n, k, d)


def test_broadcast_within_budget_runs(X):
    result = kmbench.fit(X[:300], 4, backend="broadcast", init="random", max_iter=2, tol=-1.0,
                         memory_budget=broadcast_bytes(300, 4, 100))
    assert result.backend == "broadcast" and result.n_iter == 2


def test_loop_beyond_its_work_limit_is_refused_with_n_k_d_and_the_limit(X):
    n, k, d = 20000, 200, 100
    start = time.perf_counter()
    with pytest.raises(BackendUnavailable) as err:
        kmbench.fit(X, k, backend="loop", init="random", max_iter=1, tol=-1.0)
    assert time.perf_counter() - start < 3
    message = str(err.value)
    assert "4e8 > 1e7" in message and "n*k*d" in message
    assert "work_limit=" in message and "KMBENCH_LOOP_LIMIT" in message


def test_loop_limit_can_be_raised_by_option_or_environment(monkeypatch):
    with pytest.raises(BackendUnavailable, match=r"2e7 > 1e7"):
        create("loop", n=2000, k=100, d=100, dtype="float64")
    assert create("loop", n=2000, k=100, d=100, dtype="float64", work_limit=3e7).name == "loop"
    monkeypatch.setenv("KMBENCH_LOOP_LIMIT", "3e7")
    assert create("loop", n=2000, k=100, d=100, dtype="float64").name == "loop"
    monkeypatch.setenv("KMBENCH_LOOP_LIMIT", "1e3")
    with pytest.raises(BackendUnavailable, match=r"2e7 > 1e3"):
        create("loop", n=2000, k=100, d=100, dtype="float64")


def _cuda_present() -> bool:
    from impls.torch_device import nvidia_device_present

    return nvidia_device_present()


def test_torch_cuda_is_refused_here_with_no_cuda_device(X):
    row = {r["name"]: r for r in kmbench.backends()}["torch-cuda"]
    reason = row["reason"] or ""
    if "could not load" in reason or "not installed" in reason:
        pytest.skip(f"torch-cuda: {reason}")
    if _cuda_present():
        pytest.skip("this machine has a CUDA device")
    assert row["available"] is False and "no CUDA device" in row["reason"]
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        kmbench.fit(X[:100], 4, backend="torch-cuda")
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        kmbench.fit(X[:100], 4, device="cuda")  # auto picks torch-cuda for a CUDA device


def test_unreadable_memory_budget_names_the_variable(monkeypatch):
    monkeypatch.setenv("KMBENCH_MEMORY_BUDGET", "lots")
    with pytest.raises(ValueError, match="KMBENCH_MEMORY_BUDGET"):
        create("broadcast", n=10, k=2, d=2, dtype="float64")
