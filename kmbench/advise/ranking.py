"""Rank the backends for one shape on this machine (what ``kmbench recommend`` prints and ``auto`` reads).

Two ways to rank, same output:

* :func:`rank_recorded` reads what was measured here before (asv results first, then
  ``kmbench sweep`` rows, then cached trials of ``--measure``), and for each backend
  interpolates the time per iteration at the requested shape from its nearest
  recorded grid points in log space (see :func:`estimate`).
* :func:`kmbench.advise.trials.rank_measured` times a few fixed Lloyd iterations of every available
  backend on synthetic blobs of that shape now; a shape too large for a short trial
  is subsampled in n and the time scaled linearly, and the ranking says so. Each
  trial is cached, so ``backend="auto"`` can use it later without measuring.

Every entry of a ranking is a dict: ``backend``, ``per_iter`` (seconds, expected),
``basis`` ("recorded" or "measured"), ``source``, ``points`` (the shapes it rests on),
``reason`` (a sentence), ``eligible`` (False where recorded quality fails the
contract's tolerance: shown, but never picked by ``auto``) and ``note``.
"""
from __future__ import annotations

import math
import os
import platform
from pathlib import Path

import numpy as np

from kmbench.bench.records import trial_cache_path
from kmbench.core import registry

#: recorded grid points one estimate rests on
NEIGHBOURS = 4
#: sources in order of trust: a backend's estimate uses the first that has its points
SOURCES = ("asv", "sweep", "trial")


def machine_name(results_dir=None) -> str:
    """This machine's name in recorded results (asv's naming where known, else the host name)."""
    from kmbench.bench.records import this_machine

    return this_machine(results_dir) or platform.node()


# -- which backends may run this case ----------------------------------------------------------
def candidates(n: int, k: int, d: int, dtype: str, device=None, names=None) -> tuple[list[str], dict]:
    """K-Means backends that can run this case here, and ``{name: reason}`` for those that cannot
    (``kmbench.core.registry.candidates``)."""
    return registry.candidates(names, family="kmeans", device=device, n=n, k=k, d=d, dtype=dtype)


# -- ranking from recorded results -------------------------------------------------------------
def estimate(points, n: int, k: int, d: int, neighbours: int = NEIGHBOURS) -> tuple[float, list, float]:
    """Time per iteration at (n, k, d) from recorded ``points`` [(n, k, d, seconds), ...].

    The nearest ``neighbours`` points in (log n, log k, log d) are combined by inverse
    distance weighting of the log of *seconds per unit of work* (work = n*k*d), then
    multiplied by the requested shape's work. At a recorded point this is the recorded
    time; between grid points it interpolates; beyond the grid it extrapolates with
    time proportional to n*k*d, which is how Lloyd's dominant term grows.

    Returns the estimate (seconds), the points used, and the log-space distance (in
    natural-log units) to the nearest of them.
    """
    pts = np.asarray([(p[0], p[1], p[2], p[3]) for p in points], dtype=float)
    target = np.log([n, k, d])
    dist = np.sqrt(((np.log(pts[:, :3]) - target) ** 2).sum(axis=1))
    order = np.argsort(dist, kind="stable")[:neighbours]
    used, near = pts[order], dist[order]
    if near[0] < 1e-12:
        return float(used[0, 3]), [tuple(used[0])], 0.0
    weights = 1.0 / near ** 2
    per_work = np.log(used[:, 3] / used[:, :3].prod(axis=1))
    value = math.exp(float(np.sum(weights * per_work) / weights.sum())) * n * k * d
    return value, [tuple(p) for p in used], float(near[0])


def _describe_points(points) -> str:
    return "; ".join(f"n={int(p[0])} k={int(p[1])} d={int(p[2])}: {fmt_time(p[3])}" for p in points)


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


_TABLE_CACHE: dict = {}


def _signature(results_dir: Path) -> tuple:
    """Names, sizes and modification times of every file the table is read from."""
    from kmbench.bench.records import default_sweep_paths

    files = []
    if results_dir.is_dir():
        for root, _, names in os.walk(results_dir):
            files.extend(Path(root) / f for f in names if f.endswith(".json"))
    files.extend(default_sweep_paths(results_dir))
    files.append(trial_cache_path())
    sig = []
    for f in sorted(files):
        try:
            st = f.stat()
        except OSError:
            continue
        sig.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(sig)


def recorded_table(results_dir=None):
    """This machine's recorded rows (latest per case), cached until a results file changes.

    ``backend="auto"`` reads this in every ``fit``; the cache makes that a few stat calls.
    """
    from kmbench.bench.records import default_results_dir, latest, tidy

    results_dir = Path(results_dir or default_results_dir())
    key = (str(results_dir), _signature(results_dir))
    if key not in _TABLE_CACHE:
        machine = machine_name(results_dir)
        _TABLE_CACHE.clear()
        _TABLE_CACHE[key] = (latest(tidy(results_dir, machine=machine)), machine)
    return _TABLE_CACHE[key]


def rank_recorded(n: int, k: int, d: int, dtype: str, device=None, *, results_dir=None, table=None,
                  names=None) -> list[dict]:
    """Rank the backends that can run this case by recorded time per iteration, fastest first.

    Parameters
    ----------
    n, k, d : int
        Samples, clusters, features.
    dtype : {"float32", "float64"}
    device : str, optional
        Only backends that run there.
    results_dir : path, optional
        asv results folder (``kmbench.bench.records.default_results_dir()`` when None).
    table : DataFrame, optional
        A tidy table (``kmbench.bench.records.tidy``) to rank from instead of reading files.
    names : list of str, optional
        Only these backends.

    Returns
    -------
    list of dict
        Empty when nothing usable is recorded for this machine and dtype.
    """
    n, k, d = int(n), int(k), int(d)
    machine = None
    if table is None:
        from kmbench.bench.records import default_results_dir

        if not _signature(Path(results_dir or default_results_dir())):
            return []  # nothing recorded: answer without importing pandas (auto calls this in every fit)
        table, machine = recorded_table(results_dir)
    if not len(table):
        return []
    rows = table[(table["metric"] == "per_iter") & (table["dtype"] == dtype)
                 & table["n"].notna() & table["k"].notna() & table["d"].notna() & (table["value"] > 0)]
    if not len(rows):
        return []
    recorded = [b for b in dict.fromkeys(rows["backend"].dropna()) if names is None or b in names]
    ok, _ = candidates(n, k, d, dtype, device, recorded)
    quality = quality_failures(table, dtype)
    ranking = []
    for name in ok:
        mine = rows[rows["backend"] == name]
        for source in SOURCES:
            picked = mine[mine["source"] == source]
            if len(picked):
                break
        else:
            continue
        pts = picked.groupby(["n", "k", "d"], as_index=False)["value"].median()
        points = list(zip(pts["n"].astype(int), pts["k"].astype(int), pts["d"].astype(int), pts["value"]))
        value, used, nearest = estimate(points, n, k, d)
        outside = [axis for axis, value in (("n", n), ("k", k), ("d", d))
                   if not pts[axis].min() <= value <= pts[axis].max()]
        shapes = f"{len(used)} nearest recorded shape{'s' if len(used) > 1 else ''}"
        how = ("recorded at this shape" if nearest == 0 else
               f"interpolated from the {shapes}" if not outside else
               f"extrapolated from the {shapes} ({', '.join(outside)} outside the recorded range; "
               "time taken as proportional to n*k*d)")
        ranking.append({"backend": name, "per_iter": value, "basis": "recorded", "source": source,
                        "points": [(int(p[0]), int(p[1]), int(p[2]), float(p[3])) for p in used],
                        "how": how, "eligible": name not in quality, "note": quality.get(name, ""),
                        "machine": machine})
    ranking.sort(key=lambda r: (not r["eligible"], r["per_iter"]))
    _add_reasons(ranking, n, k, d, dtype)
    return ranking


def quality_failures(table, dtype: str) -> dict:
    """Backends whose recorded inertia error exceeds the contract's tolerance for ``dtype``."""
    from kmbench.check.crosscheck import TOLERANCES

    q = table[(table["metric"] == "inertia_error") & (table["dtype"] == dtype)]
    limit = TOLERANCES.get(dtype, TOLERANCES["float64"])["inertia"]
    bad = {}
    for name, group in q.groupby("backend"):
        worst = float(group["value"].abs().max())
        if worst > limit:
            bad[name] = f"recorded inertia error {worst:.1e} > the contract's {limit:.0e} for {dtype}"
    return bad


def _add_reasons(ranking: list[dict], n, k, d, dtype) -> None:
    shape = f"n={n}, k={k}, d={d}, {dtype}"
    for i, r in enumerate(ranking):
        basis = (f"{r['source']} results, {r['how']} ({_describe_points(r['points'])})"
                 if r["basis"] == "recorded" else r["how"])
        if i == 0:
            if len(ranking) > 1:
                nxt = ranking[1]
                lead = f"{nxt['per_iter'] / r['per_iter']:.2g}x faster than {nxt['backend']}"
            else:
                lead = "the only backend with results for this case"
            r["reason"] = (f"fastest for {shape} on this machine: about {fmt_time(r['per_iter'])} per "
                           f"iteration, {lead}; {basis}")
        else:
            r["reason"] = (f"{r['per_iter'] / ranking[0]['per_iter']:.2g}x the time of "
                           f"{ranking[0]['backend']}; {basis}")
        if r["note"]:
            r["reason"] += f"; not chosen by auto: {r['note']}"
