"""One thread knob for BLAS, OpenMP, Numba and torch, so every backend runs on equal cores."""
from __future__ import annotations

import ctypes
import os
import sys
from contextlib import contextmanager
from pathlib import Path

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


# -- Numba's threading layer ----------------------------------------------------------------
#
# Numba picks its threading layer at its first parallel call: TBB where it can load ``libtbb``,
# else OpenMP. pip's ``tbb`` wheel puts the library in ``<sys.prefix>/lib``, outside the dynamic
# loader's search path, so Numba silently took OpenMP there. The two differ where it matters
# for short fits on a VM: an OpenMP region waits at its end for every worker, and a worker whose
# idle vCPU the host descheduled took milliseconds to arrive (after 300 ms of idleness, two
# regions of 70 us took 6.8 and 4.0 ms, Emerald Rapids VM, 2 vCPUs); a TBB region's tasks go to
# the threads that are awake, so the same regions took 0.3 and 0.16 ms, the first ones on the
# calling thread alone. Loading the library by its path before that first call lets Numba's own
# default choose TBB; an explicit ``NUMBA_THREADING_LAYER`` is left to decide.

#: the TBB library Numba's layer links against, by platform
LIBRARY = {"linux": "libtbb.so.12", "darwin": "libtbb.12.dylib"}
_loaded: list[str] = []


def load_tbb() -> str | None:
    """Load ``libtbb`` from this environment's ``lib`` folder, once, before Numba's first parallel
    call; returns its path, or None where there is none, another layer was asked for, or Numba
    has already chosen its layer."""
    if _loaded:
        return _loaded[0]
    from numba.core import config
    from numba.np.ufunc import parallel

    name = LIBRARY.get(sys.platform)
    if name is None or config.THREADING_LAYER not in ("default", "tbb") or parallel._is_initialized:
        return None
    path = Path(sys.prefix) / "lib" / name
    if not path.is_file():
        return None
    try:
        ctypes.CDLL(os.fspath(path), mode=ctypes.RTLD_GLOBAL)
    except OSError:  # a library for another machine: Numba falls back as before
        return None
    _loaded.append(os.fspath(path))
    return _loaded[0]


def threading_layer() -> str | None:
    """The layer Numba launched ("tbb", "omp" or "workqueue"), or None before its first parallel call."""
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
        load_tbb()  # get_num_threads launches Numba's threads, choosing its layer
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
