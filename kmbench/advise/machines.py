"""Several machines side by side: the same backend and shape, raw and normalised by each machine's ceilings.

A machine's *ceilings* are what its description (``kmbench-machine.json``) measured:
the float32 GEMM rate (GFLOP/s) and the memory bandwidth (GB/s, STREAM add). Time
per iteration normalised by them reads as a fraction of what that machine could do:

* ``gemm %``: the distance computation's 2*n*k*d flops per second over the GEMM rate;
* ``bandwidth %``: the data's bytes (n*d*itemsize, read once per iteration) per second
  over the memory bandwidth.

Where two machines differ by their ceilings alone, their normalised figures agree; what
is left is the backend's own (its kernels on that CPU, its threading). The same two
ceilings move a cost model from one machine to another (:func:`scale_factors`): the
n*k*d term by the GEMM rates' ratio, the per-row and memory terms by the bandwidths'.
"""
from __future__ import annotations

import math

#: the cost model's terms and the ceiling each one is bound by ("call" is bound by neither)
BOUND_BY = {"n": "bandwidth", "nd": "bandwidth", "nk": "bandwidth", "kd": "bandwidth", "nkd": "gemm"}
ITEMSIZE = {"float32": 4, "float64": 8}


def ceilings(description: dict | None) -> dict:
    """``{"gemm": GFLOP/s, "bandwidth": GB/s}`` from a machine description; a ceiling not measured is absent."""
    out = {}
    if not description:
        return out
    peak = (description.get("gemm_peak") or {}).get("float32")
    if peak:
        out["gemm"] = float(peak)
    bw = (description.get("memory_bandwidth") or {}).get("GB/s")
    if bw:
        out["bandwidth"] = float(bw)
    return out


def scale_factors(source: dict, target: dict) -> tuple[dict | None, str]:
    """How many times faster ``target`` is than ``source`` at each cost-model term, and how that was found.

    With both ceilings measured on both machines, each term moves by the ratio of the
    ceiling it is bound by (:data:`BOUND_BY`). With only the GEMM rate on both, every term
    moves by that ratio and the sentence says so. With neither, ``(None, reason)``.
    """
    a, b = ceilings(source), ceilings(target)
    if all(key in a and key in b for key in ("gemm", "bandwidth")):
        return ({term: b[bound] / a[bound] for term, bound in BOUND_BY.items()},
                f"GEMM rate x{b['gemm'] / a['gemm']:.2g}, memory bandwidth x{b['bandwidth'] / a['bandwidth']:.2g}")
    if "gemm" in a and "gemm" in b:
        r = b["gemm"] / a["gemm"]
        return {term: r for term in BOUND_BY}, f"GEMM rate x{r:.2g} for every term (memory bandwidth not measured on both)"
    return None, "the machines' GEMM rates are not both measured"


def label(description: dict | None, fallback: str) -> str:
    """A short name for a machine in tables: its key, with the CPU where known."""
    if not description:
        return fallback
    return description.get("machine_id") or description.get("machine") or fallback


def side_by_side(tables: dict, descriptions: dict, metric: str = "per_iter"):
    """One row per (backend, n, k, d, dtype) recorded on two or more machines.

    Parameters
    ----------
    tables : {machine: DataFrame}
        Each machine's tidy table (``kmbench.bench.records.tidy``).
    descriptions : {machine: dict}
        Each machine's description (for its ceilings); missing ones give blank normalised columns.

    Returns
    -------
    DataFrame with backend, n, k, d, dtype, and per machine ``<m> s``, ``<m> gemm %``,
    ``<m> bandwidth %``, sorted by backend and work.
    """
    import pandas as pd

    frames = []
    for machine, table in tables.items():
        rows = table[(table["metric"] == metric) & table["n"].notna() & table["value"].notna()]
        med = rows.groupby(["backend", "n", "k", "d", "dtype"], as_index=False)["value"].median()
        med["machine"] = machine
        frames.append(med)
    if not frames:
        return pd.DataFrame()
    allrows = pd.concat(frames, ignore_index=True)
    wide = allrows.pivot_table(index=["backend", "n", "k", "d", "dtype"], columns="machine", values="value",
                               aggfunc="median")
    wide = wide[wide.notna().sum(axis=1) >= 2].reset_index()
    out = wide[["backend", "n", "k", "d", "dtype"]].copy()
    import numpy as np

    n, k, d = (wide[a].astype(float).to_numpy() for a in ("n", "k", "d"))
    itemsize = np.array([ITEMSIZE.get(str(v), 4) for v in wide["dtype"]], dtype=float)
    for machine in tables:
        if machine not in wide:
            continue
        t = wide[machine].astype(float).to_numpy()
        c = ceilings(descriptions.get(machine))
        out[f"{machine} s"] = t
        flops = 2.0 * n * k * d
        data = n * d * itemsize
        out[f"{machine} gemm %"] = 100 * flops / t / 1e9 / c["gemm"] if "gemm" in c else math.nan
        out[f"{machine} bandwidth %"] = 100 * data / t / 1e9 / c["bandwidth"] if "bandwidth" in c else math.nan
    work = out["n"].astype(float) * out["k"].astype(float) * out["d"].astype(float)
    return out.assign(_w=work).sort_values(["backend", "dtype", "_w"]).drop(columns="_w").reset_index(drop=True)


def summary(frame, machines: list[str]) -> list[dict]:
    """Per backend and pair of machines: median time ratio, raw and after each normalisation.

    A ratio near 1 after normalising says the ceilings explain the machines' difference
    for that backend.
    """
    import numpy as np

    out = []
    if frame is None or not len(frame):
        return out
    for i, a in enumerate(machines):
        for b in machines[i + 1:]:
            if f"{a} s" not in frame or f"{b} s" not in frame:
                continue
            for backend, g in frame.groupby("backend"):
                g = g[g[f"{a} s"].notna() & g[f"{b} s"].notna()]
                if not len(g):
                    continue
                raw = g[f"{a} s"] / g[f"{b} s"]
                row = {"backend": backend, "a": a, "b": b, "shapes": len(g), "time a/b": float(np.median(raw))}
                for what in ("gemm", "bandwidth"):
                    ea, eb = g[f"{a} {what} %"], g[f"{b} {what} %"]
                    ok = ea.notna() & eb.notna()
                    row[f"{what} % b/a"] = float(np.median(eb[ok] / ea[ok])) if ok.any() else None
                out.append(row)
    return out


def page_markdown(frame, machines: list[str], descriptions: dict, *, limit: int = 60) -> str:
    """The report's machine comparison page: who the machines are, the summary, then every shared case."""
    def fmt(v, pct=False):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if pct:
            return f"{v:.3g}%"
        return f"{v * 1e3:.3g} ms" if v >= 1e-3 else f"{v * 1e6:.3g} us"

    lines = ["# Machines side by side", "",
             "The same backend and shape on every machine that recorded it: time per iteration as measured, then "
             "as a fraction of that machine's measured ceilings (float32 GEMM rate for the 2*n*k*d flops of the "
             "distances; memory bandwidth for the n*d data read once per iteration). Where two machines differ "
             "only by their ceilings, the fractions agree.", "",
             "| machine | CPU | cores | GEMM float32 | memory bandwidth |", "| --- | --- | --- | --- | --- |"]
    for m in machines:
        desc = descriptions.get(m) or {}
        c = ceilings(desc)
        lines.append(f"| {m} | {desc.get('cpu', '?')} | {desc.get('available_cores') or desc.get('cores') or '?'} | "
                     f"{str(round(c['gemm'], 1)) + ' GFLOP/s' if 'gemm' in c else 'not measured'} | "
                     f"{str(round(c['bandwidth'], 1)) + ' GB/s' if 'bandwidth' in c else 'not measured'} |")
    rows = summary(frame, machines)
    lines += ["", "## Summary", ""]
    if rows:
        lines += ["Median over the shapes both machines recorded. *time a/b*: how many times longer a took than "
                  "b; *GEMM % b/a* and *bandwidth % b/a*: b's fraction of its ceiling over a's (1 when the "
                  "ceilings explain the difference).", "",
                  "| backend | a | b | shapes | time a/b | GEMM % b/a | bandwidth % b/a |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            g, bw = r["gemm % b/a"], r["bandwidth % b/a"]
            lines.append(f"| {r['backend']} | {r['a']} | {r['b']} | {r['shapes']} | {r['time a/b']:.2f} | "
                         f"{'-' if g is None else f'{g:.2f}'} | {'-' if bw is None else f'{bw:.2f}'} |")
    else:
        lines.append("No backend and shape is recorded on two machines yet.")
    if frame is not None and len(frame):
        lines += ["", "## Every shared case", ""]
        head = ["backend", "n", "k", "d", "dtype"]
        for m in machines:
            if f"{m} s" in frame:
                head += [f"{m}", f"{m} GEMM %", f"{m} bandwidth %"]
        lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for _, r in frame.head(limit).iterrows():
            cells = [r["backend"], f"{int(r['n']):,}", str(int(r["k"])), str(int(r["d"])), r["dtype"]]
            for m in machines:
                if f"{m} s" in frame:
                    cells += [fmt(r[f"{m} s"]), fmt(r[f"{m} gemm %"], True), fmt(r[f"{m} bandwidth %"], True)]
            lines.append("| " + " | ".join(cells) + " |")
        if len(frame) > limit:
            lines.append(f"\n{len(frame) - limit} more cases in the machines' results.csv files.")
    return "\n".join(lines) + "\n"
