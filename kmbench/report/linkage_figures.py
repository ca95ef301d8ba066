"""The report's figures for the linkage family, from the tidy table's rows of the linkage suites.

Each function takes the rows (with a ``method`` column), writes one PNG and returns its path, or
None when nothing is recorded to draw.
"""
from __future__ import annotations

from pathlib import Path

METHODS = ("single", "complete", "average", "ward")
#: one colour and marker per linkage backend, the same in every figure
STYLE = {"scipy": ("#1f77b4", "o"), "fastcluster": ("#9467bd", "s"), "sklearn": ("#2ca02c", "P"),
         "numba": ("#d62728", "D"), "torch-cpu": ("#ff7f0e", "^"), "torch-cuda": ("#8c564b", "v")}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panels(rows, metric: str, path: Path, *, ylabel: str, scale: float, title: str, methods=METHODS):
    rows = rows[(rows["metric"] == metric) & rows["method"].isin(methods)]
    if not len(rows):
        return None
    d = int(rows["d"].mode().iloc[0])
    rows = rows[rows["d"] == d]
    cases = rows.groupby(["method", "backend", "n"], as_index=False)["value"].median()
    present = [m for m in methods if m in set(cases["method"])]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(present), figsize=(3.6 * len(present), 3.4), squeeze=False, sharey=True,
                             layout="constrained")
    for ax, method in zip(axes[0], present):
        sub = cases[cases["method"] == method]
        for backend in [b for b in STYLE if b in set(sub["backend"])] + sorted(set(sub["backend"]) - set(STYLE)):
            line = sub[sub["backend"] == backend].sort_values("n")
            color, marker = STYLE.get(backend, ("#555555", "."))
            ax.plot(line["n"], line["value"] * scale, color=color, marker=marker, label=backend)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(method)
        ax.set_xlabel("n (points)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel(ylabel)
    handles, labels = axes[0][-1].get_legend_handles_labels()
    for ax in axes[0][:-1]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside right center")
    fig.suptitle(f"{title} (d={d})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", dpi=110)
    plt.close(fig)
    return path


def time_vs_n(rows, path) -> Path | None:
    """Seconds per whole linkage against n, one panel per method, one line per backend."""
    return _panels(rows, "linkage", path, ylabel="seconds per linkage", scale=1.0,
                   title="Linkage time against n")


def memory_vs_n(rows, path) -> Path | None:
    """Peak resident memory of one linkage against n: the n x n matrix against O(n*d)."""
    return _panels(rows, "peakmem", path, ylabel="peak resident memory (MiB)", scale=2.0 ** -20,
                   title="Peak memory of one linkage against n (process: data and libraries included)")
