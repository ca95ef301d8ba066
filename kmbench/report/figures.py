"""The report's figures, drawn from the tidy table (``kmbench.bench.records``) with matplotlib's Agg backend.

Every function takes the table (and what else it needs), writes one PNG and returns
its path, or None when the table holds nothing to draw (the report then says so).
Each backend keeps one colour and one marker in every figure (:func:`style`).
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from kmbench.core import registry

#: what figures draw that is not a backend
OTHERS = {"oracle": ("#000000", ".")}


@functools.lru_cache(maxsize=None)
def _styles() -> dict[str, tuple[str, str]]:
    """``{name: (colour, marker)}`` in registry order, read from each backend class."""
    out = {name: (cls.color, cls.marker) for name, cls in registry.classes("kmeans").items()}
    out.update(OTHERS)
    return out


AXIS = {"n": "n (samples)", "k": "k (clusters)", "d": "d (features)"}


def style(backend: str) -> dict:
    color, marker = _styles().get(backend, ("#555555", "."))
    return {"color": color, "marker": marker, "label": backend}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "font.size": 10,
                         "axes.titlesize": 11, "legend.fontsize": 9})
    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _order(backends) -> list[str]:
    """Backends in registry order, so legends read the same everywhere."""
    known = list(_styles())
    return sorted(set(backends), key=lambda b: (known.index(b) if b in known else len(known), b))


def per_case(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Median ``value`` of ``metric`` per (backend, n, k, d, dtype): suites that share a shape agree on one number."""
    rows = df[(df["metric"] == metric) & df["n"].notna() & df["k"].notna() & df["d"].notna()]
    if not len(rows):
        return rows.iloc[:0][["backend", "n", "k", "d", "dtype", "value"]]
    out = rows.groupby(["backend", "n", "k", "d", "dtype"], as_index=False)["value"].median()
    for col in ("n", "k", "d"):
        out[col] = out[col].astype(int)
    return out


def sweep_slice(cases: pd.DataFrame, axis: str) -> tuple[pd.DataFrame, dict]:
    """The rows where only ``axis`` varies: the other two at the pair with the most distinct ``axis`` values."""
    others = [a for a in ("n", "k", "d") if a != axis]
    if not len(cases):
        return cases, {}
    spread = cases.groupby(others)[axis].nunique()
    fixed = dict(zip(others, spread.idxmax())) if len(spread) else {}
    if not fixed or spread.max() < 2:
        return cases.iloc[:0], {}
    mask = np.ones(len(cases), dtype=bool)
    for a, v in fixed.items():
        mask &= (cases[a] == v).to_numpy()
    return cases[mask], {a: int(v) for a, v in fixed.items()}


def time_against(df: pd.DataFrame, axis: str, path: Path, machine: str = "") -> Path | None:
    """Time per iteration against ``axis`` (log-log), one line per backend, one panel per dtype."""
    cases, fixed = sweep_slice(per_case(df, "per_iter"), axis)
    if not len(cases):
        return None
    fig, axes = _line_panels(cases, axis)
    axes[0][0].set_ylabel("time per Lloyd iteration (s)")
    _legend(fig, axes[0][-1])
    fixed_text = ", ".join(f"{a}={v:,}" for a, v in fixed.items())
    fig.suptitle(f"Time per iteration against {axis} ({fixed_text}){_on(machine)}; lower is better", y=1.02)
    return _save(fig, path)


def _line_panels(cases: pd.DataFrame, axis: str, *, scale: float = 1.0, log_y=lambda values: True):
    """One log-x panel per dtype, one line per backend of ``value * scale`` against ``axis``."""
    plt = _pyplot()
    dtypes = sorted(cases["dtype"].unique())
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6.2 * len(dtypes), 4.4), squeeze=False, sharey=True)
    for ax, dtype in zip(axes[0], dtypes):
        sub = cases[cases["dtype"] == dtype]
        for backend in _order(sub["backend"]):
            line = sub[sub["backend"] == backend].sort_values(axis)
            ax.plot(line[axis], line["value"] * scale, linewidth=1.6, markersize=6, **style(backend))
        ax.set_xscale("log")
        if log_y(sub["value"]):
            ax.set_yscale("log")
        ax.set_xlabel(AXIS[axis])
        ax.set_title(dtype)
        ax.set_xticks(sorted(sub[axis].unique()))
        ax.get_xaxis().set_major_formatter(_int_formatter())
        ax.minorticks_off()
    return fig, axes


def _on(machine: str) -> str:
    return f" on {machine}" if machine else ""


def _int_formatter():
    from matplotlib.ticker import FuncFormatter

    def fmt(v, _):
        if v >= 1e6 and v % 1e6 == 0:
            return f"{v / 1e6:g}M"
        if v >= 1e4 and v % 1e3 == 0:
            return f"{v / 1e3:g}k"
        return f"{v:g}"

    return FuncFormatter(fmt)


def _legend(fig, ax):
    """One legend right of ``ax`` holding every backend drawn in any panel of ``fig``, in registry order."""
    entries = {}
    for other in fig.axes:
        for handle, label in zip(*other.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    order = _order(label.split(" (")[0] for label in entries)
    labels = sorted(entries, key=lambda lb: (order.index(lb.split(" (")[0]), lb))
    ax.legend([entries[lb] for lb in labels], labels, loc="upper left", bbox_to_anchor=(1.02, 1.0),
              title="backend", frameon=False)


def speedup_heatmap(df: pd.DataFrame, path: Path, baseline: str = "sklearn", machine: str = "") -> Path | None:
    """Speed-up over ``baseline`` (its time / the backend's time) at every shape both ran, annotated."""
    cases = per_case(df, "per_iter")
    base = cases[cases["backend"] == baseline]
    if not len(base):
        return None
    merged = cases.merge(base[["n", "k", "d", "dtype", "value"]], on=["n", "k", "d", "dtype"],
                         suffixes=("", "_base"))
    merged = merged[merged["backend"] != baseline]
    if not len(merged):
        return None
    merged["speedup"] = merged["value_base"] / merged["value"]
    plt = _pyplot()
    from matplotlib.colors import TwoSlopeNorm

    dtypes = sorted(merged["dtype"].unique())
    shapes = {dt: sorted({(r.n, r.k, r.d) for r in merged[merged["dtype"] == dt].itertuples()},
                         key=lambda s: (s[0] * s[1] * s[2], s)) for dt in dtypes}
    rows = {dt: _order(merged[merged["dtype"] == dt]["backend"]) for dt in dtypes}
    width = max(len(s) for s in shapes.values())
    heights = [len(rows[dt]) + 2.2 for dt in dtypes]
    size = (max(7.5, 0.75 * width + 3.0), max(3.4, 0.42 * sum(heights) + 0.8))
    fig, axes = plt.subplots(len(dtypes), 1, figsize=size,
                             squeeze=False, layout="constrained", gridspec_kw={"height_ratios": heights})
    lo, hi = merged["speedup"].min(), merged["speedup"].max()
    bound = max(abs(math.log10(lo)), abs(math.log10(hi)), 0.3)
    norm = TwoSlopeNorm(vmin=-bound, vcenter=0.0, vmax=bound)
    image = None
    for ax, dtype in zip(axes[:, 0], dtypes):
        cols, names = shapes[dtype], rows[dtype]
        grid = np.full((len(names), len(cols)), np.nan)
        sub = merged[merged["dtype"] == dtype]
        for r in sub.itertuples():
            grid[names.index(r.backend), cols.index((r.n, r.k, r.d))] = r.speedup
        image = ax.imshow(np.log10(grid), cmap="RdBu", norm=norm, aspect="auto")
        for i in range(len(names)):
            for j in range(len(cols)):
                v = grid[i, j]
                text = "n/a" if np.isnan(v) else (f"{v:.2g}x" if v < 10 else f"{v:.0f}x")
                shade = abs(math.log10(v)) / bound if not np.isnan(v) else 0
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if shade > 0.6 else ("#999999" if np.isnan(v) else "black"))
        ax.set_yticks(range(len(names)), names)
        ax.set_xticks(range(len(cols)), [f"n={_short(c[0])}\nk={c[1]}\nd={c[2]}" for c in cols], fontsize=8)
        ax.set_title(f"{dtype}: {baseline}'s time per iteration / the backend's (>1: faster than {baseline})")
        ax.grid(False)
    bar = fig.colorbar(image, ax=axes[:, 0].tolist(), fraction=0.04, pad=0.02)
    steps = (1, 2, 5) if bound <= 1.5 else (1, 3) if bound <= 2.5 else (1,)
    values = [m * 10.0 ** e for e in range(-3, 4) for m in steps]
    ticks = [math.log10(v) for v in values if abs(math.log10(v)) <= bound]
    bar.set_ticks(ticks, labels=[f"{10.0 ** t:g}x" for t in ticks])
    bar.set_label(f"speed-up over {baseline} (log scale; blue: faster)")
    fig.suptitle(f"Speed-up over scikit-learn at every recorded shape{_on(machine)}")
    return _save(fig, path)


def _short(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k" if n >= 1e4 else str(n)


def roofline(df: pd.DataFrame, path: Path, peak: dict | None, machine: str = "") -> Path | None:
    """Achieved GFLOP/s against arithmetic intensity, under this machine's measured GEMM peak.

    GFLOP/s counts 2*n*k*d flops per iteration (the distance computation's multiply-adds,
    whichever way a backend does it), from the benchmarks' ``gflops`` track or, where
    absent, from the time per iteration. Intensity is those flops per byte of X read
    once per iteration (2k / itemsize): a backend far below the roof at high intensity
    leaves compute unused; at low intensity memory bandwidth bounds everyone.
    """
    cases = per_case(df, "gflops")
    if not len(cases):
        times = per_case(df, "per_iter")
        if not len(times):
            return None
        cases = times.assign(value=2.0 * times["n"] * times["k"] * times["d"] / times["value"] / 1e9)
    cases = cases[cases["value"] > 0]
    if not len(cases):
        return None
    itemsize = cases["dtype"].map({"float32": 4, "float64": 8}).fillna(8)
    cases = cases.assign(intensity=2.0 * cases["k"] / itemsize)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 5.0))
    for backend in _order(cases["backend"]):
        sub = cases[cases["backend"] == backend]
        for dtype, fill in (("float64", "full"), ("float32", "none")):
            part = sub[sub["dtype"] == dtype]
            if len(part):
                st = style(backend)
                line_marker = st["marker"] in "x+"  # no face to fill: colour comes from c=
                ax.scatter(part["intensity"], part["value"], marker=st["marker"], s=36, alpha=0.85,
                           c=st["color"] if line_marker else None,
                           facecolors=None if line_marker else (st["color"] if fill == "full" else "none"),
                           edgecolors=None if line_marker else st["color"], linewidths=1.2,
                           label=f"{backend}" if dtype == sub["dtype"].iloc[0] else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (flop per byte of X read per iteration = 2k / itemsize)")
    ax.set_ylabel("achieved GFLOP/s (2nkd flops per iteration)")
    peaks = {dt: v for dt, v in (peak or {}).items() if v}
    for dtype, gflops in sorted(peaks.items()):
        ax.axhline(gflops, color="black", linestyle="--" if dtype == "float64" else ":", linewidth=1.2)
        ax.annotate(f"{dtype} GEMM peak measured here: {gflops:.0f} GFLOP/s", (ax.get_xlim()[0], gflops),
                    xytext=(4, 4), textcoords="offset points", fontsize=8)
    if peaks:
        top = max(peaks.values())
        ax.set_ylim(top=top * 2.2)
        sec = ax.secondary_yaxis("right", functions=(lambda v: 100 * v / top, lambda p: p * top / 100))
        sec.set_ylabel(f"% of the {max(peaks, key=peaks.get)} GEMM peak")
        from matplotlib.ticker import FuncFormatter

        sec.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
    ax.legend(loc="upper left", bbox_to_anchor=(1.13, 1.0), frameon=False,
              title="backend\n(filled: float64,\nhollow: float32)")
    from matplotlib.ticker import NullFormatter

    ax.set_xticks(sorted(cases["intensity"].unique()))
    ax.xaxis.set_major_formatter(_int_formatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    note = "" if peaks else " (GEMM peak not recorded for this machine)"
    ax.set_title(f"Roofline view: achieved GFLOP/s under the GEMM peak{_on(machine)}{note}")
    return _save(fig, path)


def peakmem_against_n(df: pd.DataFrame, path: Path, machine: str = "") -> Path | None:
    """Peak resident memory of a whole fit against n, one line per backend, one panel per dtype."""
    cases = per_case(df, "peakmem")
    if not len(cases):
        return None
    sliced, fixed = sweep_slice(cases, "n")
    if not len(sliced):  # one n recorded: a bar per backend still compares them
        return _peakmem_bars(cases, path, machine)
    # Log y only where the range needs it, so the ticks stay labelled.
    fig, axes = _line_panels(sliced, "n", scale=2.0 ** -20, log_y=lambda v: v.max() > 20 * v.min())
    axes[0][0].set_ylabel("peak resident memory of the process (MiB)")
    axes[0][0].yaxis.set_major_formatter(_int_formatter())
    _legend(fig, axes[0][-1])
    shape = ", ".join(f"{a}={v}" for a, v in fixed.items()) if fixed else "as recorded"
    fig.suptitle(f"Peak memory of one fit against n ({shape}){_on(machine)}; includes data and libraries",
                 y=1.02)
    return _save(fig, path)


def _peakmem_bars(cases: pd.DataFrame, path: Path, machine: str) -> Path:
    plt = _pyplot()
    groups = list(cases.groupby(["dtype", "n", "k", "d"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(5.6 * len(groups), 0.4 * cases["backend"].nunique() + 1.8),
                             squeeze=False, layout="constrained")
    for ax, ((dtype, n, k, d), sub) in zip(axes[0], groups):
        names = _order(sub["backend"])
        mib = [float(sub[sub["backend"] == b]["value"].iloc[0]) / 2 ** 20 for b in names]
        ax.barh(range(len(names)), mib, color=[style(b)["color"] for b in names])
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        for i, v in enumerate(mib):
            ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
        ax.set_xlim(0, max(mib) * 1.18)
        ax.set_xlabel("peak resident memory of the process (MiB)")
        ax.set_title(f"{dtype}, n={n:,}, k={k}, d={d}")
        ax.grid(axis="y", visible=False)
    fig.suptitle(f"Peak memory of one fit{_on(machine)} (one n recorded; includes data and libraries)")
    return _save(fig, path)


def convergence(runs: list[dict], path: Path, title: str) -> Path | None:
    """Inertia per iteration per backend (left) and its relative distance from the oracle's (right).

    ``runs``: dicts with ``backend``, ``dtype`` and ``history`` (inertia per iteration);
    the one named ``oracle`` is the float64 reference.
    """
    ref = next((r for r in runs if r["backend"] == "oracle"), None)
    shown = [r for r in runs if r["history"]]
    if not shown or ref is None:
        return None
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 4.6))
    oracle = np.asarray(ref["history"])
    floor = 1e-17
    for r in sorted(shown, key=lambda r: _order([x["backend"] for x in shown]).index(r["backend"])):
        h = np.asarray(r["history"])
        it = np.arange(1, len(h) + 1)
        if r["backend"] == "oracle":
            left.plot(it, h, color="black", linestyle="--", linewidth=2.2, label="oracle (float64)", zorder=5)
            continue
        st = style(r["backend"])
        label = f"{r['backend']} ({r['dtype']})"
        left.plot(it, h, linewidth=1.2, markersize=5, markevery=max(1, len(h) // 10), alpha=0.9,
                  **{**st, "label": label})
        m = min(len(h), len(oracle))
        gap = np.abs(h[:m] - oracle[:m]) / oracle[:m]
        right.plot(it[:m], np.maximum(gap, floor), linewidth=1.2, markersize=5, markevery=max(1, m // 10),
                   **{**st, "label": label})
    from matplotlib.ticker import FuncFormatter

    left.set_xlabel("Lloyd iteration")
    left.set_ylabel("inertia (sum of squared distances)")
    left.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1e6:g}M" if abs(v) >= 1e6 else
                                                 f"{v / 1e3:g}k" if abs(v) >= 1e4 else f"{v:g}"))
    left.set_title("inertia per iteration (lines overlap where backends agree)")
    right.set_yscale("log")
    right.set_xlabel("Lloyd iteration")
    right.set_ylabel("|inertia - oracle's| / oracle's")
    right.set_title(f"distance from the float64 oracle (0 drawn at {floor:g})")
    from matplotlib.ticker import MaxNLocator

    for eps, name in ((2.2e-16, "float64 rounding (2.2e-16)"), (1.2e-7, "float32 rounding (1.2e-7)")):
        right.axhline(eps, color="grey", linewidth=0.8, linestyle=":")
        right.annotate(name, (1.0, eps), xycoords=("axes fraction", "data"), xytext=(-2, 3),
                       textcoords="offset points", fontsize=8, color="grey", ha="right")
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(fig, right)
    hidden = [r["backend"] for r in runs if not r["history"] and r["backend"] != "oracle"]
    if hidden:
        fig.text(0.01, -0.03, "not drawn (inertia history not exposed): " + ", ".join(hidden), fontsize=8)
    fig.suptitle(title, y=1.02)
    return _save(fig, path)
