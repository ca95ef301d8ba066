"""Which linkage backend to use: ``auto`` inside ``kmbench.linkage`` and ``kmbench recommend --family linkage``.

The ranking reads the recorded asv results of the linkage suites (``benchmarks/linkage_suites.py``,
metric ``linkage``: seconds per whole linkage) for this machine, method and dtype. A backend's time
at (n, d) comes from its nearest recorded shape, scaled as n^2 d (every algorithm here does O(n^2 d)
work or, on the condensed matrix, O(n^2) after an O(n^2 d) start). Backends whose recorded quality
failed the contract (height error beyond the tolerance, or an ARI below 1) are passed over.
Nothing recorded: ``--measure`` times each backend on a sample of the shape, in the same way,
and ``auto`` takes the first backend in fallback order (each class's ``fallback_rank``) that runs
the case. As for K-Means, ``auto`` only reads: it never times anything inside a fit.
"""
from __future__ import annotations

import math

from kmbench.core.errors import BackendUnavailable
from kmbench.core.registry import candidates as registry_candidates
from kmbench.core.registry import fallback_order

FAMILY = "linkage"
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}


def candidates(n: int, d: int, dtype: str, method: str, names=None, device=None) -> tuple[list, dict]:
    """The linkage backends among ``names`` (default: all) that run this case here, and why the others do not."""
    return registry_candidates(names, family=FAMILY, device=device, n=n, d=d, dtype=dtype, method=method)


def recorded_rows(results_dir=None):
    """The linkage family's rows of the tidy table for this machine, method in its own column."""
    import json

    from kmbench.bench.records import default_results_dir, latest, this_machine, tidy

    folder = results_dir or default_results_dir()
    table = latest(tidy(folder, machine=this_machine(folder), sweeps=[], trials=False, family=FAMILY)).copy()
    table["method"] = [json.loads(p).get("method") if p else None for p in table["params"]]
    return table


def rank_recorded(n: int, d: int, dtype: str, method: str, device=None, *, table=None, results_dir=None) -> list[dict]:
    """Backends that run this case, fastest first by recorded seconds per linkage; empty when none recorded."""
    from pathlib import Path

    from kmbench.bench.records import default_results_dir

    if table is None:
        folder = Path(results_dir or default_results_dir())
        if not any(folder.glob("*/*.json")):
            return []  # nothing recorded: answer without importing pandas
        table = recorded_rows(folder)
    if not len(table):
        return []
    times = table[(table["metric"] == "linkage") & (table["method"] == method) & (table["dtype"] == dtype)
                  & (table["value"] > 0)]
    mine = table[table["method"] == method]
    failed = set(mine[(mine["metric"] == "height_error") & (mine["value"] > TOLERANCE[dtype])]["backend"])
    failed |= set(mine[(mine["metric"] == "ari") & (mine["value"] < 1.0)]["backend"])
    recorded = list(dict.fromkeys(times["backend"].dropna()))
    ok, _ = candidates(n, d, dtype, method, recorded, device)
    ranking = []
    for name in ok:
        mine = times[times["backend"] == name]
        pts = mine.groupby(["n", "d"], as_index=False)["value"].median()
        # nearest recorded shape in log space, then n^2 d scaling from it
        best = min(zip(pts["n"].astype(int), pts["d"].astype(int), pts["value"]),
                   key=lambda p: math.hypot(math.log(p[0] / n), math.log(p[1] / d)))
        seconds = best[2] * (n / best[0]) ** 2 * (d / best[1])
        how = ("recorded at this shape" if (best[0], best[1]) == (n, d) else
               f"scaled as n^2 d from n={best[0]}, d={best[1]} ({best[2]:.3g} s)")
        ranking.append({"backend": name, "seconds": seconds, "eligible": name not in failed,
                        "reason": f"{name}: {seconds:.3g} s per {method} linkage, {how}"
                                  + (" (recorded quality fails the contract)" if name in failed else "")})
    return sorted(ranking, key=lambda r: (not r["eligible"], r["seconds"]))


def measure(n: int, d: int, dtype: str, method: str, *, budget: float = 2.0, names=None, seed: int = 0) -> list[dict]:
    """Time every backend that runs the case on a sample small enough for ``budget`` seconds, scaled to n."""
    import numpy as np

    from kmbench.core.linkage import linkage

    ok, why = candidates(n, d, dtype, method, names)
    rng = np.random.default_rng(seed)
    rows = []
    for name in ok:
        m = min(n, 500)
        X = rng.standard_normal((m, d)).astype(dtype)
        seconds = linkage(X, method, backend=name).timings["fit"]
        # grow the sample (x2 each time) while the projected next trial fits the budget
        while m < n and seconds * 4 < budget / 4:
            m = min(n, 2 * m)
            X = rng.standard_normal((m, d)).astype(dtype)
            seconds = linkage(X, method, backend=name).timings["fit"]
        estimate = seconds * (n / m) ** 2
        rows.append({"backend": name, "seconds": estimate, "eligible": True,
                     "reason": f"{name}: {estimate:.3g} s per {method} linkage, measured at n={m} and scaled as n^2"})
    rows.sort(key=lambda r: r["seconds"])
    return rows + [{"backend": name, "seconds": None, "eligible": False, "reason": f"{name}: {reason}"}
                   for name, reason in why.items()]


def recommend(n: int, d: int, dtype: str, method: str, *, measure_now: bool = False, results_dir=None) -> list[dict]:
    """The ranking ``kmbench recommend --family linkage`` prints."""
    from kmbench.core.linkage import check_method

    check_method(method)
    rows = rank_recorded(n, d, dtype, method, results_dir=results_dir)
    if not rows and measure_now:
        rows = measure(n, d, dtype, method)
    return rows


def print_ranking(rows: list[dict], n: int, d: int, dtype: str, method: str) -> None:
    print(f"{method} linkage of n={n}, d={d}, {dtype}:")
    if not rows:
        print("  nothing recorded for this machine: run `kmbench bench` (the linkage suites), or add --measure.\n"
              f"  Without records, backend='auto' takes the first of {', '.join(fallback_order(FAMILY))} that runs it.")
        return
    for i, row in enumerate(rows, 1):
        mark = f"{i}." if row["eligible"] else " -"
        print(f"  {mark:<3} {row['reason']}")


def choose(n: int, d: int, dtype: str, method: str, *, device=None) -> tuple[str, str]:
    """``backend="auto"``: the fastest recorded backend for this case, else the first in fallback order."""
    try:
        ranking, problem = rank_recorded(n, d, dtype, method, device), ""
    except Exception as exc:  # unreadable results must not stop a fit; say so in the reason
        ranking, problem = [], f" (recorded results unreadable: {exc})"
    eligible = [r for r in ranking if r["eligible"]]
    if eligible:
        return eligible[0]["backend"], "ranked by recorded results: " + eligible[0]["reason"]
    order = fallback_order(FAMILY)
    refused = {}
    for name in order:
        ok, why = candidates(n, d, dtype, method, [name], device)
        if ok:
            return name, (f"no recorded linkage results for this machine{problem}; first backend of the fallback "
                          f"order ({', '.join(order)}) that runs {method} linkage of n={n}, d={d}, {dtype}")
        refused.update(why)
    raise BackendUnavailable(f"backend 'auto' found none for {method} linkage of n={n}, d={d}, {dtype}: "
                             + "; ".join(f"{name}: {reason}" for name, reason in refused.items()))
