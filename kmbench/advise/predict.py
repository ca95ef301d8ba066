"""Recorded results -> cost models -> a ranking: the glue between the tidy table and :mod:`.costmodel`.

``records(table)`` turns the tidy table (``metric``, ``backend``, ``n``, ``k``, ``d``,
``dtype``, ``value``, ``source``, ``machine``) into cost-model records: one per shape
with its ``per_iter`` and, where the ``Design`` suite recorded it, its ``per_call``.
``models(...)`` fits them once per table (cached: ``backend="auto"`` ranks in every
fit), and ``entries(...)`` gives the ranking entries ``kmbench recommend`` prints.
"""
from __future__ import annotations

import math

import numpy as np

from . import costmodel
from .counts import SUITE_ITERATIONS

_CACHE: dict = {}


def records(table, dtype: str | None = None) -> list[dict]:
    """Cost-model records from a tidy table: the median per shape, backend and dtype of each metric."""
    if table is None or not len(table):
        return []
    rows = table[table["metric"].isin(["per_iter", "per_call"]) & table["n"].notna() & table["k"].notna()
                 & table["d"].notna() & table["value"].notna()]
    if dtype is not None:
        rows = rows[rows["dtype"] == dtype]
    if not len(rows):
        return []
    med = rows.groupby(["backend", "dtype", "n", "k", "d", "metric"], as_index=False).agg(
        value=("value", "median"), source=("source", "first"), machine=("machine", "first"))
    out: dict = {}
    for r in med.itertuples(index=False):
        key = (r.backend, r.dtype, int(r.n), int(r.k), int(r.d))
        rec = out.setdefault(key, {"backend": r.backend, "dtype": r.dtype, "n": key[2], "k": key[3], "d": key[4],
                                   "source": r.source, "machine": r.machine})
        rec[r.metric] = float(r.value)
    return [r for r in out.values() if r.get("per_iter", 0) > 0]


def models(recs: list[dict], gemm_gflops: float | None = None) -> dict:
    """``{(backend, dtype): CostModel}``, fitted once per distinct set of records (and GEMM rate)."""
    key = (gemm_gflops,) + tuple(sorted((r["backend"], r["dtype"], r["n"], r["k"], r["d"], r["per_iter"],
                                         r.get("per_call")) for r in recs))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = costmodel.fit(recs, gemm_gflops=gemm_gflops)
    return _CACHE[key]


#: a backend's model at one dtype with fewer recorded shapes than this borrows its other dtype's shape
BORROW_BELOW = 5


def _borrow(fitted: dict, recs, name: str, dtype: str, m):
    """The backend's model at its other dtype, times the ratio between the dtypes where both were recorded.

    The suites record float64 at one shape only (``Dtype``): too few to fit the terms,
    but enough to say how much slower float64 is. Returns ``(model, how)`` or None.
    """
    if m.size >= BORROW_BELOW:
        return None
    others = [o for (b, dt), o in fitted.items() if b == name and dt != dtype and o.size >= BORROW_BELOW]
    if not others:
        return None
    other = max(others, key=lambda o: o.size)
    mine = [r for r in recs if r["backend"] == name and r["dtype"] == dtype]
    ratios = [r["per_iter"] / other.per_iter(r["n"], r["k"], r["d"]) for r in mine]
    ratio = float(np.median(ratios))
    scaled = other.scaled({t: 1.0 / ratio for t in costmodel.TERMS})
    scaled.dtype, scaled.machine = dtype, m.machine
    how = (f"{other.dtype} cost model of {other.size} recorded shapes times {ratio:.3g}, the {dtype}/{other.dtype} "
           f"ratio at {len(mine)} recorded shape{'s' if len(mine) > 1 else ''}")
    return scaled, how


def whole_fit(per_iter: float, per_call: float | None, max_iter: int) -> float:
    """Seconds of a fit of ``max_iter`` iterations: the per-call part once, plus what each iteration adds.

    ``per_iter`` is a run of 10 iterations over 10, as the suites record it, so it holds a
    tenth of the per-call part: each iteration adds ``per_iter - per_call / 10`` (kept
    above a third of ``per_iter``, against a per-call part recorded larger than it is).
    At 10 iterations this is ``10 * per_iter``, whatever the per-call part.
    """
    call = per_call or 0.0
    slope = max(per_iter - call / SUITE_ITERATIONS, per_iter / 3)
    return call + max_iter * slope


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


def entries(recs: list[dict], n: int, k: int, d: int, dtype: str, names, *, max_iter=None,
            machine=None, scaled_from=None, factors=None, gemm_gflops=None) -> list[dict]:
    """Ranking entries for the backends in ``names`` with records at ``dtype``, fastest first.

    Each entry has ``backend``, ``per_iter`` (seconds), ``low``/``high`` (the interval),
    ``per_call`` (seconds) with ``per_call_basis`` ("recorded": fitted to recorded
    per-call times; "assumed": none recorded, one assignment pass of the model),
    ``total`` (a fit of ``max_iter`` iterations, when given), ``basis`` ("recorded" at a
    recorded shape, else "model"), ``source``, ``points`` (the nearest recorded shapes, as
    (n, k, d, seconds)), ``how`` (a sentence) and ``machine``. ``scaled_from`` says whose
    records were moved here, and how, by the per-term ``factors`` (see
    :meth:`CostModel.scaled`).
    ``gemm_gflops`` (the recording machine's measured float32 GEMM rate) puts a floor
    under each model's distance term (:func:`kmbench.advise.costmodel.floors_for`).
    """
    fitted = models(recs, gemm_gflops)
    out = []
    for name in names:
        m = fitted.get((name, dtype))
        if m is None:
            continue
        borrowed = _borrow(fitted, recs, name, dtype, m)
        if borrowed is not None:
            m, borrowed_how = borrowed
        if factors:
            m = m.scaled(factors, machine)
        mine = [r for r in recs if r["backend"] == name and r["dtype"] == dtype]
        exact = None if factors else next((r for r in mine if (r["n"], r["k"], r["d"]) == (n, k, d)), None)
        per_iter = exact["per_iter"] if exact else m.per_iter(n, k, d)
        spread = m.spread(n, k, d)
        low, high = per_iter * math.exp(-spread), per_iter * math.exp(spread)
        call = (exact or {}).get("per_call") or m.per_call(n, k, d)
        call_basis = "recorded" if call is not None else "assumed"
        if call is None:
            # not recorded: a fit pays at least one more assignment pass (distances, argmin, labels)
            terms = m.terms(n, k, d)
            call = sum(terms[t] for t in ("n", "nd", "nkd", "nk"))
        loo = np.exp(np.abs(m.loo))
        quality = (f"leave-one-out error {np.median(loo):.2g}x median, {loo.max():.2g}x worst"
                   if len(loo) else "too few shapes to validate")
        sources = sorted({r["source"] for r in mine if r.get("source")})
        if exact:
            how = f"recorded at this shape ({', '.join(sources)})"
        else:
            outside = m.outside(n, k, d)
            how = (f"cost model of {m.size} recorded shapes ({', '.join(sources)}; {quality})"
                   + (f", extrapolated ({', '.join(outside)} outside the recorded range)" if outside else ""))
        if borrowed is not None and not exact:
            how = borrowed_how + (f", extrapolated ({', '.join(m.outside(n, k, d))} outside the recorded range)"
                                  if m.outside(n, k, d) else "")
        if scaled_from:
            how += f"; from {scaled_from}"
        points = sorted(mine, key=lambda r: (math.log(r["n"] / n) ** 2 + math.log(r["k"] / k) ** 2
                                             + math.log(r["d"] / d) ** 2))[:4]
        out.append({"backend": name, "per_iter": per_iter, "low": low, "high": high, "per_call": call,
                    "per_call_basis": call_basis,
                    "total": None if max_iter is None else whole_fit(per_iter, call, max_iter),
                    "basis": "recorded" if exact else "model", "source": sources[0] if sources else "",
                    "points": [(p["n"], p["k"], p["d"], p["per_iter"]) for p in points], "how": how,
                    "model": m, "machine": machine or m.machine})
    out.sort(key=lambda r: r["total"] if r["total"] is not None else r["per_iter"])
    return out


def rank_table(table, n: int, k: int, d: int, dtype: str, names, *, quality=None, max_iter=None, machine=None,
               scaled_from=None, factors=None, gemm_gflops=None) -> list[dict]:
    """The ranking ``kmbench recommend`` prints, from a tidy table: :func:`entries` plus eligibility and reasons.

    ``quality`` maps backends whose recorded quality fails the contract to the sentence
    saying so: they are ranked last and marked ``eligible=False`` (never picked by auto).
    """
    quality = quality or {}
    # every dtype: a dtype recorded at few shapes borrows the backend's other dtype's model (_borrow)
    recs = [r for r in records(table) if r["backend"] in set(names)]
    ranking = entries(recs, n, k, d, dtype, names, max_iter=max_iter, machine=machine, scaled_from=scaled_from,
                      factors=factors, gemm_gflops=gemm_gflops)
    for r in ranking:
        r["eligible"] = r["backend"] not in quality
        r["note"] = quality.get(r["backend"], "")
    ranking.sort(key=lambda r: (not r["eligible"], r["total"] if r["total"] is not None else r["per_iter"]))
    add_reasons(ranking, n, k, d, dtype, max_iter)
    return ranking


def interval_text(r) -> str:
    return f"{fmt_time(r['low'])} to {fmt_time(r['high'])}"


def add_reasons(ranking: list[dict], n, k, d, dtype, max_iter=None) -> None:
    """A sentence per entry: how fast, against what, how sure, on what basis."""
    shape = f"n={n}, k={k}, d={d}, {dtype}"
    key = "total" if max_iter is not None else "per_iter"
    for i, r in enumerate(ranking):
        if i == 0:
            if len(ranking) > 1:
                nxt = ranking[1]
                lead = f"{nxt[key] / r[key]:.2g}x faster than {nxt['backend']}"
                overlap = nxt["low"] < r["high"]
                if overlap:
                    lead += " (their intervals overlap: the order is not certain)"
            else:
                lead = "the only backend with results for this case"
            whole = (f", {fmt_time(r['total'])} for {max_iter} iterations" if max_iter is not None else "")
            r["reason"] = (f"fastest for {shape} on this machine: about {fmt_time(r['per_iter'])} per iteration "
                           f"(likely {interval_text(r)}){whole}, {lead}; {r['how']}")
        else:
            r["reason"] = f"{r[key] / ranking[0][key]:.2g}x the time of {ranking[0]['backend']}; {r['how']}"
        if r.get("note"):
            r["reason"] += f"; not chosen by auto: {r['note']}"


def as_json(ranking: list[dict], n, k, d, dtype, max_iter=None) -> dict:
    """The ranking for scripts: plain numbers, seconds throughout."""
    return {"n": n, "k": k, "d": d, "dtype": dtype, "max_iter": max_iter,
            "ranking": [{"backend": r["backend"], "per_iter": r["per_iter"], "per_call": r.get("per_call"),
                         "per_call_basis": r.get("per_call_basis", "measured"),
                         "interval": [r.get("low"), r.get("high")], "total": r.get("total"),
                         "basis": r.get("basis"), "source": r.get("source"), "how": r.get("how"),
                         "eligible": r.get("eligible", True), "machine": r.get("machine")} for r in ranking]}


def format_validation(result: dict, machine: str | None = None) -> str:
    """``kmbench recommend --validate``'s text: per backend the leave-one-out error, per dtype the pick's regret."""
    lines = [f"Leave-one-out validation of the cost models{f' on {machine}' if machine else ''}: each recorded "
             "shape predicted from the others.", "",
             "backend     dtype     shapes  median error  worst error"]
    for (backend, dtype), s in sorted(result["backends"].items()):
        lines.append(f"{backend:11s} {dtype:9s} {s['shapes']:6d}  {s['median']:11.2f}x  {s['worst']:10.2f}x")
    if not result["backends"]:
        lines.append("(no backend has three or more recorded shapes)")
    lines += ["", "The pick, each shape left out of every backend's model (shapes recorded for two or more "
              "backends):", "dtype     shapes  pick slower  by >10%  median regret  worst regret"]
    for dtype, p in sorted(result["picks"].items()):
        lines.append(f"{dtype:9s} {p['shapes']:6d}  {p['slower']:11d}  {p['slower_than_10pct']:7d}  "
                     f"{p['median_regret']:12.3f}x  {p['worst_regret']:11.3f}x")
        for det in p["details"]:
            if det["regret"] > 1.0 + 1e-12:
                n, k, d = det["shape"]
                lines.append(f"    n={n} k={k} d={d}: picked {det['pick']}, {det['regret']:.2f}x the time of "
                             f"{det['fastest']}")
    if not result["picks"]:
        lines.append("(no shape is recorded for two or more backends)")
    return "\n".join(lines)


def validation_markdown(result: dict) -> str:
    """The report's section on how far the cost models can be trusted (same figures as ``--validate``)."""
    lines = ["| backend | dtype | shapes | median error | worst error |", "| --- | --- | --- | --- | --- |"]
    for (backend, dtype), s in sorted(result["backends"].items()):
        lines.append(f"| {backend} | {dtype} | {s['shapes']} | {s['median']:.2f}x | {s['worst']:.2f}x |")
    lines += ["", "| dtype | shapes | pick slower than the fastest | by more than 10% | median regret | worst regret |",
              "| --- | --- | --- | --- | --- | --- |"]
    for dtype, p in sorted(result["picks"].items()):
        lines.append(f"| {dtype} | {p['shapes']} | {p['slower']} | {p['slower_than_10pct']} | "
                     f"{p['median_regret']:.3f}x | {p['worst_regret']:.3f}x |")
    return "\n".join(lines)
