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


def models(recs: list[dict]) -> dict:
    """``{(backend, dtype): CostModel}``, fitted once per distinct set of records."""
    key = tuple(sorted((r["backend"], r["dtype"], r["n"], r["k"], r["d"], r["per_iter"], r.get("per_call"))
                       for r in recs))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = costmodel.fit(recs)
    return _CACHE[key]


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


def entries(recs: list[dict], n: int, k: int, d: int, dtype: str, names, *, max_iter=None,
            machine=None, scaled_from=None) -> list[dict]:
    """Ranking entries for the backends in ``names`` with records at ``dtype``, fastest first.

    Each entry has ``backend``, ``per_iter`` (seconds), ``low``/``high`` (the interval),
    ``per_call`` (seconds or None), ``total`` (a fit of ``max_iter`` iterations, when
    given), ``basis`` ("recorded" at a recorded shape, else "model"), ``source``,
    ``points`` (the recorded shapes the model rests on, as (n, k, d, seconds)),
    ``how`` (a sentence) and ``machine``. ``scaled_from`` names the machine whose
    records were moved here by measured ceilings (see :meth:`CostModel.scaled`).
    """
    fitted = models(recs)
    out = []
    for name in names:
        m = fitted.get((name, dtype))
        if m is None:
            continue
        mine = [r for r in recs if r["backend"] == name and r["dtype"] == dtype]
        exact = next((r for r in mine if (r["n"], r["k"], r["d"]) == (n, k, d)), None)
        per_iter = exact["per_iter"] if exact else m.per_iter(n, k, d)
        spread = m.spread(n, k, d)
        low, high = per_iter * math.exp(-spread), per_iter * math.exp(spread)
        call = (exact or {}).get("per_call") or m.per_call(n, k, d)
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
        if scaled_from:
            how += f"; from {scaled_from}'s records, scaled by the two machines' measured ceilings"
        points = sorted(mine, key=lambda r: (math.log(r["n"] / n) ** 2 + math.log(r["k"] / k) ** 2
                                             + math.log(r["d"] / d) ** 2))[:4]
        out.append({"backend": name, "per_iter": per_iter, "low": low, "high": high, "per_call": call,
                    "total": None if max_iter is None else per_iter * max_iter + (call or 0.0),
                    "basis": "recorded" if exact else "model", "source": sources[0] if sources else "",
                    "points": [(p["n"], p["k"], p["d"], p["per_iter"]) for p in points], "how": how,
                    "model": m, "machine": machine or m.machine})
    out.sort(key=lambda r: r["total"] if r["total"] is not None else r["per_iter"])
    return out
