"""Per-call and per-iteration parts of a fit, from ``run`` timed at two iteration counts.

A fit of m iterations costs about ``per_call + m * slope``: ``per_call`` is what every
``run`` pays once (the final assignment pass, allocations, a library's set-up), ``slope``
what each iteration adds. One count cannot tell them apart: three iterations charge each
a third of the per-call part. Timing ``run`` at two counts, interleaved, in one prepared
and warmed-up session, gives both (the line through the medians at each count).

``per_iter`` is then reported as the asv suites measure it, a run of
:data:`SUITE_ITERATIONS` divided by them (``slope + per_call / 10``), so trials, sweeps
and suites feed one cost model in one unit.
"""
from __future__ import annotations

import statistics
import time

#: iterations of the suites' per-iteration measurement (benchmarks/common.py ITERATIONS)
SUITE_ITERATIONS = 10


def line(runs) -> tuple[float, float]:
    """(slope, per_call) of seconds against iterations run, through the medians at the fewest and the most.

    ``runs`` is a list of (iterations run, seconds). Both results are >= 0; with a single
    iteration count, everything is charged to the iterations.
    """
    by: dict = {}
    for it, sec in runs:
        by.setdefault(int(it), []).append(float(sec))
    levels = sorted(by)
    if not levels:
        raise ValueError("no timed runs")
    if len(levels) == 1:
        return statistics.median(by[levels[0]]) / max(levels[0], 1), 0.0
    (i0, t0), (i1, t1) = [(lv, statistics.median(by[lv])) for lv in (levels[0], levels[-1])]
    slope = max((t1 - t0) / (i1 - i0), 0.0)
    if slope == 0.0:
        slope = t1 / i1
    return slope, max(t1 - slope * i1, 0.0)


def time_counts(backend, X, centers, counts=(1, 6), repeats: int = 2, *, budget: float | None = None,
                clock=time.perf_counter) -> dict:
    """Time ``backend.run(m, tol=-1)`` for each m in ``counts``, ``repeats`` times, interleaved.

    The backend is prepared and warmed up first (``kmbench.core.engine.session``, untimed).
    Stops repeating once ``budget`` seconds have passed (after one round at least).

    Returns
    -------
    dict with ``slope`` and ``per_call`` (seconds), ``per_iter`` (``slope + per_call / 10``:
    what the suites record), ``prepare`` (seconds), ``runs`` [(m, iterations run, seconds)],
    ``threads`` and ``device``.
    """
    from kmbench.core.engine import session

    runs = []
    with session(backend, (X, centers)) as timings:
        start = time.perf_counter()
        for _ in range(repeats):
            for m in counts:
                t0 = clock()
                backend.run(m, -1.0)
                seconds = clock() - t0
                runs.append((m, int(backend.result().n_iter), seconds))
            if budget is not None and time.perf_counter() - start > budget:
                break
    slope, per_call = line([(it, sec) for _, it, sec in runs])
    return {"slope": slope, "per_call": per_call, "per_iter": slope + per_call / SUITE_ITERATIONS,
            "prepare": timings["prepare"], "runs": runs, "threads": backend.threads,
            "device": str(backend.device)}
