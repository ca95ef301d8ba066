"""The one stopwatch: the harness times a backend's cycle here and nowhere else.

Family-neutral: a backend is anything with ``requires``, ``threads``, ``prepare(*a)``,
``warm_up()``, ``run(*a)``, ``result()`` and ``close()``. Its libraries are imported
before thread limits are applied (so their pools exist to be capped), then

    prepare   timed apart: casts, copies, transfers
    warm_up   untimed: compilation, contexts
    run       THE measurement
    result    untimed: device-to-host

and ``close()`` always runs, also after a failure. ``kmbench.fit``, the sweep
worker, the asv suites and ``benchmarks/side_by_side.py`` all time through this module.
"""
from __future__ import annotations

import importlib
import time
from contextlib import contextmanager

from kmbench.core.threads import limited_threads


@contextmanager
def session(backend, prepare_args=(), prepare_kwargs=None):
    """The untimed part of the cycle: the backend prepared and warmed up inside its thread limits.

    Yields ``{"prepare": s, "warmup": s}``; time ``run()`` inside the block with
    :func:`time_run`. ``close()`` runs on the way out, also after a failure.
    """
    for module in backend.requires:
        importlib.import_module(module)  # so thread pools exist before they are capped
    with limited_threads(backend.threads):
        try:
            t0 = time.perf_counter()
            backend.prepare(*prepare_args, **(prepare_kwargs or {}))
            t1 = time.perf_counter()
            backend.warm_up()
            yield {"prepare": t1 - t0, "warmup": time.perf_counter() - t1}
        finally:
            backend.close()


def time_run(backend, run_args=(), run_kwargs=None) -> float:
    """Seconds one ``run()`` takes (call inside :func:`session`)."""
    t0 = time.perf_counter()
    backend.run(*run_args, **(run_kwargs or {}))
    return time.perf_counter() - t0


def time_runs(backend, run_args=(), *, runs: int, seconds: float = float("inf")) -> list[float]:
    """Seconds of up to ``runs`` calls of ``run()``, fewer once ``seconds`` have passed; at least one."""
    times = []
    start = time.perf_counter()
    while len(times) < max(1, runs):
        times.append(time_run(backend, run_args))
        if time.perf_counter() - start > seconds:
            break
    return times


def timed_cycle(backend, prepare_args=(), run_args=(), *, prepare_kwargs=None, run_kwargs=None):
    """Prepare, warm up, time ``run()`` once, fetch the result, close.

    Returns
    -------
    result : whatever ``backend.result()`` returns
    timings : dict
        Seconds: ``prepare``, ``warmup``, ``run``.
    """
    with session(backend, prepare_args, prepare_kwargs) as timings:
        timings["run"] = time_run(backend, run_args, run_kwargs)
        result = backend.result()
    return result, timings
