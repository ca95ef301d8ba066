"""One thread knob for BLAS, OpenMP, Numba and torch, so every backend runs on equal cores."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

#: environment variables that native libraries read at start-up, for subprocesses (asv, sweeps)
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_threads() -> int:
    """``KMBENCH_THREADS`` if set, else every core this process may use."""
    value = os.environ.get("KMBENCH_THREADS")
    if value is None:
        return available_cores()
    try:
        threads = int(value)
    except ValueError:
        raise ValueError(f"KMBENCH_THREADS={value!r} should be an integer >= 1") from None
    if threads < 1:
        raise ValueError(f"KMBENCH_THREADS={value} must be >= 1")
    return check_threads(threads, source="KMBENCH_THREADS")


def check_threads(threads, *, source: str = "threads") -> int:
    """A thread count between 1 and the cores this process may use.

    More threads than cores would oversubscribe them and distort every timing, and Numba
    cannot start more threads than it was launched with (one per core).
    """
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"{source} must be an integer >= 1; got {threads!r}")
    cores = available_cores()
    if threads > cores:
        raise ValueError(f"{source}={threads} exceeds the {cores} cores available to this process")
    return threads


def thread_env(threads: int) -> dict:
    return {name: str(threads) for name in THREAD_ENV}


def threading_layer() -> str | None:
    """The threading layer Numba launched ("tbb", "omp" or "workqueue"), or None before its first
    parallel call: part of a result's environment, since the layers wait differently for a late
    worker (an OpenMP region's caller spins at its end until every worker has come)."""
    import numba

    try:
        return numba.threading_layer()
    except ValueError:
        return None


_controller = {"modules": -1, "controller": None}


def _threadpools():
    """threadpoolctl's view of the loaded BLAS/OpenMP libraries, rescanned only after imports.

    A scan costs about 3 ms (it resolves every loaded library's path), a tenth of a small
    fit. Native pools arrive with the extension modules that load them, so an unchanged
    ``sys.modules`` means an unchanged set of pools.
    """
    from threadpoolctl import ThreadpoolController

    if _controller["modules"] != len(sys.modules):
        _controller["controller"] = ThreadpoolController()
        _controller["modules"] = len(sys.modules)
    return _controller["controller"]


@contextmanager
def limited_threads(threads: int):
    """Cap BLAS/OpenMP pools (threadpoolctl) and the Numba and torch pools of loaded modules.

    Backends import their libraries before this is entered (see ``runner``), so the
    libraries' pools exist and can be capped.
    """
    restore = []
    numba = sys.modules.get("numba")
    if numba is not None:
        old = numba.get_num_threads()
        numba.set_num_threads(threads)
        restore.append(lambda: numba.set_num_threads(old))
    torch = sys.modules.get("torch")
    if torch is not None:
        old_torch = torch.get_num_threads()
        torch.set_num_threads(threads)
        restore.append(lambda: torch.set_num_threads(old_torch))
    try:
        with _threadpools().limit(limits=threads):
            yield
    finally:
        for undo in restore:
            undo()
