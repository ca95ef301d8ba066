"""Figures, pages and a CSV of every number, for one machine (``kmbench report``).

``write_report(results_dir, out_dir)`` (``kmbench bench`` calls it after asv) reads
asv's results (and sweep rows) through ``kmbench.bench.records``, draws the figures of
``kmbench.report.figures``, takes the convergence comparison from
``kmbench.check.quality`` and the machine from ``kmbench.bench.machine``, and writes ``index.html``, ``README.md``
and ``results.csv`` into the output folder.
"""
from __future__ import annotations

import datetime
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from kmbench.bench.machine import machine_facts
from kmbench.check.quality import CONVERGENCE_ITERS, CONVERGENCE_SHAPE, convergence_runs

__all__ = ["CONVERGENCE_ITERS", "CONVERGENCE_SHAPE", "write_report"]


def write_report(results_dir=None, out_dir="reports", *, machine: str | None = None, sweeps=None,
                 convergence: bool = True, convergence_shape=CONVERGENCE_SHAPE,
                 convergence_backends=None, progress: bool = True) -> dict:
    """Write the report for one machine; return ``{what: path}`` of every file written.

    Parameters
    ----------
    results_dir : path, optional
        asv's results folder (``kmbench.bench.records.default_results_dir()`` when None).
    out_dir : path
        Folder for ``index.html``, ``README.md``, ``results.csv`` and ``figures/*.png``.
    machine : str, optional
        The machine to report; this one (or the only one recorded) when None.
    sweeps : list of paths, optional
        Sweep JSONL files; ``results/*.jsonl`` when None.
    convergence : bool
        Run the convergence comparison (seconds) and draw its figure.
    convergence_shape : (n, k, d)
    convergence_backends : list of str, optional
        Only these backends in the convergence run.
    progress : bool
        Progress bars.
    """
    import kmbench.report.figures as plots
    import kmbench.report.linkage_figures as linkage_figures
    from kmbench.report.dendrogram import iris as iris_dendrogram
    from kmbench.bench.records import default_results_dir, latest, machine_info, machines, this_machine, tidy

    results_dir = Path(results_dir or default_results_dir())
    out = Path(out_dir)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    machine = machine or this_machine(results_dir)
    if machine is None:
        recorded = machines(results_dir)
        if len(recorded) > 1:
            raise ValueError(f"results in {results_dir} are from {len(recorded)} machines "
                             f"({', '.join(recorded)}); choose one with --machine")
    table = tidy(results_dir, machine=machine, sweeps=sweeps, trials=False)
    current = latest(table)
    if machine is None and len(table):
        machine = str(table["machine"].dropna().iloc[0]) if table["machine"].notna().any() else None
    facts = machine_facts(results_dir, machine, machine_info(results_dir, machine) if machine else {})
    title = machine or "this machine"

    written = {}
    steps = [
        ("time_vs_n", lambda p: plots.time_against(current, "n", p, title)),
        ("time_vs_k", lambda p: plots.time_against(current, "k", p, title)),
        ("time_vs_d", lambda p: plots.time_against(current, "d", p, title)),
        ("speedup_heatmap", lambda p: plots.speedup_heatmap(current, p, machine=title)),
        ("roofline", lambda p: plots.roofline(current, p, facts.get("gemm_peak"), title)),
        ("peakmem_vs_n", lambda p: plots.peakmem_against_n(current, p, title)),
    ]
    linkage = linkage_rows(results_dir, machine)
    steps += [
        ("linkage_time_vs_n", lambda p: linkage_figures.time_vs_n(linkage, p)),
        ("linkage_peakmem_vs_n", lambda p: linkage_figures.memory_vs_n(linkage, p)),
        ("linkage_dendrogram", lambda p: iris_dendrogram(p)[0]),
    ]
    missing = {}
    for name, draw in steps:
        path = draw(figures / f"{name}.png")
        if path is None:
            missing[name] = "no recorded numbers for it"
        else:
            written[name] = path
    conv_rows = []
    if convergence:
        runs, conv_rows, conv_title = convergence_runs(convergence_shape, convergence_backends, progress)
        path = plots.convergence(runs, figures / "convergence.png", conv_title)
        if path is not None:
            written["convergence"] = path
        else:
            missing["convergence"] = "no backend exposed its inertia history"
    table.to_csv(out / "results.csv", index=False)
    written["results.csv"] = out / "results.csv"

    quality = quality_table(current, conv_rows)
    advice = recommendation_table(current)
    from kmbench.advise import costmodel, predict

    trust = costmodel.validate(predict.records(current), gemm_gflops=(facts.get("gemm_peak") or {}).get("float32"))
    written.update(archive_machine(out, machine or "this-machine", table, results_dir))
    written["machines.md"] = write_machines_page(out)
    context = {"machine": machine, "facts": facts, "figures": written, "missing": missing, "trust": trust,
               "quality": quality, "advice": advice, "table": table, "results_dir": results_dir,
               "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    (out / "README.md").write_text(render_markdown(context, out))
    (out / "index.html").write_text(render_html(context, out))
    written["README.md"] = out / "README.md"
    written["index.html"] = out / "index.html"
    return written


# -- several machines ----------------------------------------------------------------------------
def archive_machine(out: Path, machine: str, table: pd.DataFrame, results_dir) -> dict:
    """Keep this machine's numbers and description under ``out/machines/<machine>/``, beside other machines'.

    The report's own ``results.csv`` and pages are this machine's; the archive is what
    lets a later report, made on another machine into the same folder, compare them.
    """
    import json

    from kmbench.bench import machine as machine_mod

    folder = out / "machines" / machine
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "results.csv", index=False)
    stored = machine_mod.load_machine(results_dir) or {}
    if stored.get("machine") not in (None, machine):
        stored = {}
    if stored:
        (folder / "machine.json").write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    return {f"machines/{machine}/results.csv": folder / "results.csv"}


def write_machines_page(out: Path) -> Path:
    """``out/machines.md``: every archived machine side by side (``kmbench.advise.machines``)."""
    from kmbench.advise import machines as compare
    from kmbench.bench.records import machine_archives

    tables, descriptions = machine_archives(out)
    frame = compare.side_by_side(tables, descriptions)
    path = Path(out) / "machines.md"
    path.write_text(compare.page_markdown(frame, list(tables), descriptions))
    return path


# -- tables ----------------------------------------------------------------------------------------
def quality_table(current: pd.DataFrame, conv_rows: list[dict]) -> pd.DataFrame:
    """Per backend and dtype: worst inertia error and ARI against the oracle, and the verdict.

    From the benchmarks' quality tracks where recorded, and from the report's own
    convergence run; the verdict applies docs/contract.md's inertia tolerance.
    """
    from kmbench.check.crosscheck import TOLERANCES

    rows = []
    q = current[current["metric"].isin(["inertia_error", "ari"])]
    for (backend, dtype), group in q.groupby(["backend", "dtype"]):
        err = group[group["metric"] == "inertia_error"]["value"]
        ari = group[group["metric"] == "ari"]["value"]
        shapes = sorted({(int(r.n), int(r.k), int(r.d)) for r in group.itertuples()})
        worst = float(err.abs().max()) if len(err) else np.nan
        limit = TOLERANCES.get(dtype, TOLERANCES["float64"])["inertia"]
        declared = _deviations(backend)
        rows.append({"backend": backend, "dtype": dtype,
                     "source": "asv quality track at " + "; ".join(f"n={a} k={b} d={c}" for a, b, c in shapes),
                     "inertia_error": worst, "ari": float(ari.min()) if len(ari) else np.nan,
                     "status": "ok" if not np.isnan(worst) and worst <= limit else
                     (f"inertia error > {limit:.0e}" + (f" (declared deviations: {declared})" if declared else "")
                      if not np.isnan(worst) else "")})
    rows += conv_rows
    cols = ["backend", "dtype", "inertia_error", "ari", "status", "source"]
    return pd.DataFrame(rows, columns=cols)


def _deviations(backend: str) -> str:
    """The contract lines a backend declares it does not honour, by key (``impls.base.Backend.deviations``)."""
    from kmbench.core.kmeans import backend_class

    try:
        return ", ".join(backend_class(backend).deviations)
    except (ImportError, ValueError):
        return ""


def recommendation_table(current: pd.DataFrame) -> pd.DataFrame:
    """For every recorded shape: the fastest backend whose quality passes, its time, and its lead."""
    from kmbench.report.figures import per_case
    from kmbench.advise.ranking import quality_failures

    cases = per_case(current, "per_iter")
    rows = []
    for (dtype, n, k, d), group in cases.groupby(["dtype", "n", "k", "d"]):
        bad = quality_failures(current, dtype)
        group = group[~group["backend"].isin(bad)].sort_values("value")
        if not len(group):
            continue
        best = group.iloc[0]
        nxt = group.iloc[1] if len(group) > 1 else None
        rows.append({"dtype": dtype, "n": int(n), "k": int(k), "d": int(d), "use": best["backend"],
                     "per_iter_s": float(best["value"]),
                     "next": nxt["backend"] if nxt is not None else "",
                     "faster_than_next": float(nxt["value"] / best["value"]) if nxt is not None else np.nan,
                     "backends_compared": len(group)})
    out = pd.DataFrame(rows, columns=["dtype", "n", "k", "d", "use", "per_iter_s", "next", "faster_than_next",
                                      "backends_compared"])
    if len(out):
        out = out.assign(work=out["n"] * out["k"] * out["d"]).sort_values(["dtype", "work", "n"]).drop(columns="work")
    return out.reset_index(drop=True)


def _fmt(value, kind: str = "") -> str:
    from kmbench.advise.ranking import fmt_time

    if isinstance(value, float) and np.isnan(value):
        return ""
    if kind == "time":
        return fmt_time(value)
    if kind == "ratio":
        return f"{value:.2f}x"
    if kind == "sci":
        return f"{value:.1e}"
    if kind == "ari":
        return f"{value:.4f}"
    return f"{value:,}" if isinstance(value, (int, np.integer)) else str(value)


def _advice_rows(advice):
    return [[r.dtype, _fmt(r.n), _fmt(r.k), _fmt(r.d), r.use, _fmt(r.per_iter_s, "time"), r.next,
             _fmt(r.faster_than_next, "ratio")] for r in advice.itertuples()]


ADVICE_HEADER = ["dtype", "n", "k", "d", "use", "time / iteration", "next fastest", "faster than next by"]
QUALITY_HEADER = ["backend", "dtype", "inertia rel. error", "ARI vs oracle", "verdict", "measured on"]


def _quality_rows(quality):
    return [[r.backend, r.dtype, _fmt(r.inertia_error, "sci"), _fmt(r.ari, "ari"), r.status, r.source]
            for r in quality.itertuples()]


def _winners(advice) -> str:
    if not len(advice):
        return ""
    counts = advice.groupby(["dtype", "use"]).size().sort_values(ascending=False)
    parts = [f"{use} ({dtype}) is fastest at {c} of {int((advice['dtype'] == dtype).sum())} recorded shapes"
             for (dtype, use), c in counts.items()]
    return "; ".join(parts) + "."


def linkage_rows(results_dir, machine):
    """The linkage family's latest recorded rows for this machine, with the method in its own column."""
    from kmbench.bench.records import latest, tidy

    rows = latest(tidy(results_dir, machine=machine, sweeps=[], trials=False, family="linkage")).copy()
    rows["method"] = [json.loads(p).get("method") if p else None for p in rows["params"]]
    return rows


FIGURE_TEXT = {
    "time_vs_n": ("Time per iteration against n", "Lines that stay parallel scale alike; the gap is the "
                  "constant-factor speed-up. A line that flattens at small n is paying fixed overhead per call."),
    "time_vs_k": ("Time per iteration against k", "k sets the arithmetic intensity: GEMM-based backends gain "
                  "as k grows, fused kernels lead at small k."),
    "time_vs_d": ("Time per iteration against d", "Large d favours BLAS; small d favours kernels that keep "
                  "a row in registers."),
    "speedup_heatmap": ("Speed-up over scikit-learn", "Each cell: scikit-learn's time per iteration divided by "
                        "the backend's at that shape (blue: faster than scikit-learn, red: slower)."),
    "roofline": ("Roofline view", "Achieved GFLOP/s (2nkd flops per iteration) against the flops per byte of X "
                 "read; the dashed line is this machine's measured GEMM peak, the ceiling for "
                 "distance computation by matrix multiply."),
    "peakmem_vs_n": ("Peak memory against n", "Peak resident memory of the benchmark process during one fit: "
                     "the data and imported libraries count too, so compare backends at one n."),
    "convergence": ("Convergence", "Inertia after each iteration's assignment from the same centres. Backends "
                    "computing the contract's function overlap the oracle; the right panel shows how far, "
                    "relative to float64 and float32 rounding."),
}
#: the hierarchical-clustering section's figures (benchmarks/linkage_suites.py)
LINKAGE_FIGURE_TEXT = {
    "linkage_time_vs_n": ("Linkage time against n", "Seconds per whole linkage, one panel per method. Every "
                          "backend does O(n^2 d) work; the gaps are constant factors, and the peers' single "
                          "and ward lines carry the n x n matrix they build first."),
    "linkage_peakmem_vs_n": ("Linkage memory against n", "Peak resident memory of one linkage (data and "
                             "libraries included): backends that hold the condensed n x n matrix grow as "
                             "n^2, numba's and fastcluster's single and ward (O(n d)) stay flat."),
    "linkage_dendrogram": ("A dendrogram", "Ward linkage of the standardised iris flowers (shipped with "
                           "scikit-learn) and SciPy's fcluster cut into 3 clusters: the README's pipeline."),
}


def _machine_lines(facts: dict) -> list[tuple[str, str]]:
    lines = []
    for key in ("name", "CPU", "cores", "memory", "architecture", "OS", "BLAS", "GPU"):
        if key in facts:
            lines.append((key, str(facts[key])))
    if facts.get("gemm_peak"):
        lines.append(("GEMM peak (measured)", ", ".join(f"{dt}: {v:.1f} GFLOP/s"
                                                         for dt, v in sorted(facts["gemm_peak"].items()))
                      + (f" ({facts['peak_note']})" if facts.get("peak_note") else "")))
    if facts.get("memory_bandwidth"):
        lines.append(("memory bandwidth (measured)", facts["memory_bandwidth"]))
    if facts.get("versions"):
        lines.append(("versions", ", ".join(f"{k} {v}" for k, v in facts["versions"].items())))
    return lines


def _summary(ctx) -> dict:
    table = ctx["table"]
    commits = sorted(set(table["commit"].dropna()) - {""}) if len(table) else []
    dates = table["date"].dropna() if len(table) else []
    return {"rows": len(table), "sources": ", ".join(f"{s}: {c}" for s, c in table["source"].value_counts().items())
            if len(table) else "none", "commits": ", ".join(commits[-3:]) or "n/a",
            "span": f"{dates.min():%Y-%m-%d} to {dates.max():%Y-%m-%d}" if len(dates) else "n/a"}


REGENERATE = ("make bench                      # asv (fast profile), then this report\n"
              "KMBENCH_PROFILE=default make bench   # the published profile (about half an hour)\n"
              "kmbench report --out reports/   # this report again from .asv/default/results\n"
              "kmbench recommend --n 100000 --k 64 --d 32   # a ranking for one shape\n"
              "kmbench recommend --validate    # the figures of the section on trust")


TRUST_TEXT = ("`kmbench recommend` and `backend=\"auto\"` rank backends by a cost model per backend fitted to "
              "these numbers (kmbench/advise/costmodel.py). Each recorded shape was left out in turn and predicted "
              "from the others: the error of those predictions (predicted over measured, or the inverse), and how "
              "often the backend the models picked for a left-out shape was slower than the fastest one recorded "
              "there. The same figures: `kmbench recommend --validate`.")


def predict_markdown(trust) -> str:
    from kmbench.advise.predict import validation_markdown

    if not trust or not trust.get("backends"):
        return "Too few recorded shapes to validate (three or more per backend are needed)."
    return validation_markdown(trust)


def render_markdown(ctx, out: Path) -> str:
    s = _summary(ctx)
    md = [f"# K-Means backends on {ctx['machine'] or 'this machine'}", "",
          f"Generated {ctx['generated']} from {s['rows']} recorded numbers ({s['sources']}; "
          f"commits {s['commits']}; {s['span']}). Every number is in [results.csv](results.csv).", "",
          "## Machine", ""]
    md += _md_table(["", ""], [[f"**{k}**", v] for k, v in _machine_lines(ctx["facts"])])
    md += ["", "## Recommendation", "",
           "For shapes like these, use this backend; it is this much faster per iteration than the next "
           "(backends whose recorded quality fails the contract's tolerance are left out).", ""]
    if len(ctx["advice"]):
        md += [_winners(ctx["advice"]), ""]
        md += _md_table(ADVICE_HEADER, _advice_rows(ctx["advice"]))
    else:
        md += ["No time-per-iteration results recorded yet: run `make bench`."]
    md += ["", "For any other shape: `kmbench recommend --n N --k K --d D` (see below).", ""]
    md += ["## How far the recommendation can be trusted", "", TRUST_TEXT, "",
           predict_markdown(ctx["trust"]), "",
           "Other machines' numbers, side by side with these: [machines.md](machines.md).", "", "## Figures", ""]
    for name, (title, text) in FIGURE_TEXT.items():
        if name in ctx["figures"]:
            rel = Path(ctx["figures"][name]).relative_to(out)
            md += [f"### {title}", "", text, "", f"![{title}]({rel.as_posix()})", ""]
    if ctx["missing"]:
        md += ["Not drawn: " + "; ".join(f"{k} ({v})" for k, v in ctx["missing"].items()), ""]
    md += _linkage_markdown(ctx, out)
    md += ["## Quality against the float64 oracle", "",
           "Relative inertia error and adjusted Rand index (labels against the oracle's) after the same "
           "fixed iterations from the same centres; verdict by docs/contract.md's tolerances.", ""]
    md += _md_table(QUALITY_HEADER, _quality_rows(ctx["quality"])) if len(ctx["quality"]) else ["(none recorded)"]
    md += ["", "## Regenerate", "", "```", REGENERATE, "```", ""]
    return "\n".join(md)


def _linkage_markdown(ctx, out: Path) -> list[str]:
    shown = [name for name in LINKAGE_FIGURE_TEXT if name in ctx["figures"]]
    if not shown:
        return []
    md = ["## Hierarchical clustering (kmbench.linkage)", "",
          "The second family (docs/contract.md): SciPy's linkage matrix for single, complete, average and ward. "
          "For any other case: `kmbench recommend --family linkage --method ward --n N --d D`.", ""]
    for name in shown:
        title, text = LINKAGE_FIGURE_TEXT[name]
        rel = Path(ctx["figures"][name]).relative_to(out)
        md += [f"### {title}", "", text, "", f"![{title}]({rel.as_posix()})", ""]
    return md


def _linkage_html(ctx, out: Path) -> list[str]:
    shown = [name for name in LINKAGE_FIGURE_TEXT if name in ctx["figures"]]
    if not shown:
        return []
    parts = ["<h2>Hierarchical clustering (kmbench.linkage)</h2>",
             "<p>The second family (docs/contract.md): SciPy's linkage matrix for single, complete, average and "
             "ward. For any other case: <code>kmbench recommend --family linkage --method ward --n N --d D</code>."
             "</p>"]
    for name in shown:
        title, text = LINKAGE_FIGURE_TEXT[name]
        rel = Path(ctx["figures"][name]).relative_to(out).as_posix()
        parts.append(f"<figure><h3>{html.escape(title)}</h3><img src='{rel}' alt='{html.escape(title)}'>"
                     f"<figcaption>{html.escape(text)}</figcaption></figure>")
    return parts


def _md_table(header, rows) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def _html_table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(ctx, out: Path) -> str:
    s = _summary(ctx)
    name = html.escape(ctx["machine"] or "this machine")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>K-Means backends on {name}</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
             "color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;"
             "padding:.25em .6em;text-align:left;font-size:.9em}th{background:#f3f3f3}img{max-width:100%;"
             "border:1px solid #eee}pre{background:#f6f6f6;padding:.8em}figure{margin:1.5em 0}"
             "figcaption{color:#444;font-size:.95em}</style></head><body>",
             f"<h1>K-Means backends on {name}</h1>",
             f"<p>Generated {html.escape(ctx['generated'])} from {s['rows']} recorded numbers "
             f"({html.escape(s['sources'])}; commits {html.escape(s['commits'])}; {html.escape(s['span'])}). "
             "Every number is in <a href='results.csv'>results.csv</a>.</p>", "<h2>Machine</h2>",
             _html_table(["", ""], _machine_lines(ctx["facts"])), "<h2>Recommendation</h2>",
             "<p>For shapes like these, use this backend; it is this much faster per iteration than the next "
             "(backends whose recorded quality fails the contract's tolerance are left out).</p>"]
    if len(ctx["advice"]):
        parts += [f"<p>{html.escape(_winners(ctx['advice']))}</p>",
                  _html_table(ADVICE_HEADER, _advice_rows(ctx["advice"]))]
    else:
        parts.append("<p>No time-per-iteration results recorded yet: run <code>make bench</code>.</p>")
    parts.append("<p>For any other shape: <code>kmbench recommend --n N --k K --d D</code>.</p>")
    parts += ["<h2>How far the recommendation can be trusted</h2>", f"<p>{html.escape(TRUST_TEXT)}</p>"]
    trust = ctx.get("trust") or {}
    if trust.get("backends"):
        parts.append(_html_table(["backend", "dtype", "shapes", "median error", "worst error"],
                                 [[b, dt, s["shapes"], f"{s['median']:.2f}x", f"{s['worst']:.2f}x"]
                                  for (b, dt), s in sorted(trust["backends"].items())]))
        parts.append(_html_table(["dtype", "shapes", "pick slower than the fastest", "by more than 10%",
                                  "median regret", "worst regret"],
                                 [[dt, p["shapes"], p["slower"], p["slower_than_10pct"], f"{p['median_regret']:.3f}x",
                                   f"{p['worst_regret']:.3f}x"] for dt, p in sorted(trust.get("picks", {}).items())]))
    else:
        parts.append("<p>Too few recorded shapes to validate.</p>")
    parts.append("<p>Other machines' numbers, side by side with these: <a href='machines.md'>machines.md</a>.</p>"
                 "<h2>Figures</h2>")
    for key, (title, text) in FIGURE_TEXT.items():
        if key in ctx["figures"]:
            rel = Path(ctx["figures"][key]).relative_to(out).as_posix()
            parts.append(f"<figure><h3>{html.escape(title)}</h3><img src='{rel}' alt='{html.escape(title)}'>"
                         f"<figcaption>{html.escape(text)}</figcaption></figure>")
    if ctx["missing"]:
        parts.append("<p>Not drawn: " + html.escape("; ".join(f"{k} ({v})" for k, v in ctx["missing"].items()))
                     + "</p>")
    parts += _linkage_html(ctx, out)
    parts += ["<h2>Quality against the float64 oracle</h2>",
              "<p>Relative inertia error and adjusted Rand index (labels against the oracle's) after the same "
              "fixed iterations from the same centres; verdict by docs/contract.md's tolerances.</p>",
              _html_table(QUALITY_HEADER, _quality_rows(ctx["quality"])) if len(ctx["quality"]) else
              "<p>(none recorded)</p>",
              "<h2>Regenerate</h2>", f"<pre>{html.escape(REGENERATE)}</pre>", "</body></html>"]
    return "\n".join(parts)


