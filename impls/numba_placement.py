"""Numba's threads pinned, each to a CPU of its own, while a fit's parallel regions run.

Why: an OpenMP region ends at a barrier where the calling thread spins, waiting for the
workers. After an idle spell (50 ms or more) a worker sleeps, and on a VM the kernel may
wake it on the *calling* thread's CPU rather than on the idle one (likely because a halted
vCPU looks preempted to the guest's scheduler; not checked). It then waits behind the spinning
caller until that gives up its spin: a 30 us region after 0.3 s of idleness took 3.9-7.9 ms,
median 7.8 (libgomp, 2 vCPUs, Emerald Rapids VM), a whole fit's worth at 20k-90k rows and
k <= 18. With the worker pinned to the other CPU it took 0.2-0.3 ms. Pinned only for the block
and put back after, so the caller's own threads and other libraries keep their placement.

Not pinned: where one of ``BINDING_VARIABLES`` asks OpenMP to place its threads itself, under
the TBB layer (whose workers come and go), where the process may use fewer CPUs than the
threads or the workers' ids cannot be found, and off Linux.
"""
from __future__ import annotations

import ctypes
import functools
import os
from contextlib import contextmanager

import numpy as np
from numba import get_num_threads, get_thread_id, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

#: environment variables by which a user has OpenMP place the threads
BINDING_VARIABLES = ("OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY", "KMP_AFFINITY")


@intrinsic
def _gettid(typingctx):
    """The calling OS thread's id (glibc's ``gettid``), resolved by name when the kernel loads."""
    def codegen(context, builder, signature, args):
        from llvmlite import ir

        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "gettid")
        return builder.sext(builder.call(function, []), ir.IntType(64))

    return types.int64(), codegen


@njit(parallel=True, cache=True)
def _thread_ids(out):
    """``out[t]``: the OS id of Numba's thread number ``t``; many small iterations, so that
    every thread of the team takes some."""
    for i in prange(out.shape[0] * 64):
        out[get_thread_id()] = _gettid()


def why_not_pinned() -> str | None:
    """Why this process's Numba threads are left where the kernel puts them, or None."""
    from kmbench.core.threads import threading_layer

    if not hasattr(os, "sched_setaffinity"):
        return "no sched_setaffinity on this platform"
    chosen = [name for name in BINDING_VARIABLES if os.environ.get(name, "").lower() not in ("", "false")]
    if chosen:
        return f"{chosen[0]}={os.environ[chosen[0]]} places the threads"
    get_num_threads()  # launches the layer, so that it is known
    layer = threading_layer()
    if layer not in ("omp", "workqueue"):
        return f"the {layer} layer's workers come and go"
    return None


@functools.lru_cache(maxsize=4)
def _worker_ids(pid: int, threads: int) -> tuple:
    """The OS ids of Numba's workers 1..threads-1 in process ``pid`` (the caller is thread 0),
    or () where a worker took no iteration. Found by one parallel region, once per process."""
    ids = np.zeros(threads, dtype=np.int64)
    try:
        _thread_ids(ids)
    except Exception:  # noqa: BLE001 (no gettid to link, say: pinning is an optimisation, the fit goes on)
        return ()
    if np.any(ids == 0) or len(set(ids.tolist())) != threads:
        return ()
    return tuple(int(t) for t in ids[1:])


@functools.lru_cache(maxsize=1)
def _sched_getcpu():
    """glibc's ``sched_getcpu``: the CPU the calling thread runs on."""
    function = ctypes.CDLL(None).sched_getcpu
    function.restype, function.argtypes = ctypes.c_int, []
    return function


@functools.lru_cache(maxsize=None)
def _siblings(cpu: int) -> frozenset:
    """The CPUs that share ``cpu``'s core (SMT siblings), itself included."""
    try:
        with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
            text = f.read().strip()
    except OSError:
        return frozenset({cpu})
    cpus = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return frozenset(cpus)


def worker_cpus(own: int, allowed, workers: int) -> list:
    """CPUs for ``workers`` workers, from ``allowed`` without ``own``: one per core first, the
    cores' other SMT siblings after, each in order from ``own`` up (wrapping round)."""
    order = sorted((c for c in allowed if c != own), key=lambda c: (c < own, c))
    used_cores, first, rest = set(_siblings(own)), [], []
    for cpu in order:
        if cpu in used_cores:
            rest.append(cpu)
        else:
            first.append(cpu)
            used_cores |= _siblings(cpu)
    return (first + rest)[:workers]


@contextmanager
def pinned(threads: int, enabled: bool = True):
    """For the block, the calling thread on the CPU it runs on and Numba's workers 1..threads-1
    each on another CPU; every thread's CPUs are put back after. Yields whether they were pinned."""
    if not enabled or threads < 2 or why_not_pinned():
        yield False
        return
    allowed = os.sched_getaffinity(0)
    workers = _worker_ids(os.getpid(), threads) if len(allowed) >= threads else ()
    own = _sched_getcpu()()
    if not workers or own not in allowed:
        yield False
        return
    targets = [(0, {own})] + list(zip(workers, ({c} for c in worker_cpus(own, allowed, len(workers)))))
    before, placed = [], True
    try:
        for tid, cpus in targets:
            before.append((tid, os.sched_getaffinity(tid)))
            os.sched_setaffinity(tid, cpus)
    except OSError:  # a worker gone (the layer restarted its pool): found again next time
        _worker_ids.cache_clear()
        _restore(before)
        before, placed = [], False
    try:
        yield placed
    finally:
        _restore(before)


def _restore(before):
    for tid, cpus in before:
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass
