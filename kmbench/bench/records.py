"""Recorded results -> one tidy pandas table.

asv's result files (read with asv's own loader) come first; rows from ``kmbench sweep``
JSONL files and from ``kmbench recommend --measure`` trials follow, each marked in the
``source`` column. One row per benchmark x parameter combination:

    benchmark, metric, kind, backend, n, k, d, dtype, value, unit, q25, q75,
    machine, commit, date, source, params

``metric`` is a short, suite-independent name (``per_iter``, ``converge``, ``warmup``,
``peakmem``, ``gflops``, ``inertia_error``, ``ari``, ...) found from the benchmark's
name by :data:`METRICS`, so the report and the recommender do not depend on how the
suites name their classes.
"""
from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a table is built: fit(backend="auto") must not pay for it
    import pandas as pd

COLUMNS = ["benchmark", "metric", "kind", "backend", "n", "k", "d", "dtype", "value", "unit", "q25", "q75",
           "machine", "commit", "date", "source", "params", "family"]

#: asv suite modules whose rows belong to another family than K-Means (their backends share names)
FAMILY_SUITES = {"linkage_suites.": "linkage"}


def family_of(benchmark: str) -> str:
    """The algorithm family of an asv benchmark, from its suite module."""
    return next((family for prefix, family in FAMILY_SUITES.items() if benchmark.startswith(prefix)), "kmeans")

#: (metric, asv benchmark type or None for any, regular expression on the benchmark's method name);
#: first match wins, so the specific patterns come before the general ones
METRICS = (
    ("peakmem", "peakmemory", r""),
    ("warmup", None, r"warm|compile|first"),
    ("converge", None, r"conver"),
    ("n_iter", None, r"n_iter|iterations"),
    ("prepare", None, r"prepare|transfer"),
    ("per_iter", None, r"per_iter|per_iteration|lloyd|step"),
    ("gflops", None, r"gflop|flops"),
    ("inertia_error", None, r"inertia"),
    ("ari", None, r"\bari\b|_ari|ari_|rand"),
)

#: asv's units, spelled for axis labels
UNITS = {"seconds": "s", "bytes": "bytes"}


def trial_cache_path() -> Path:
    """Where ``--measure`` trials are cached: ``$KMBENCH_CACHE/trials.jsonl`` or ``~/.cache/kmbench/``."""
    root = os.environ.get("KMBENCH_CACHE") or Path.home() / ".cache" / "kmbench"
    return Path(root) / "trials.jsonl"


def default_results_dir() -> Path:
    """Where recorded asv results are read from when no folder is given.

    ``KMBENCH_RESULTS`` if set; else ``kmbench bench``'s folder for the default profile
    (``.asv/default/results``, the one the published report comes from) once it holds
    results; else the ``.asv/<profile>/results`` written most recently; else
    ``.asv/results``; all in the project root.
    """
    env = os.environ.get("KMBENCH_RESULTS")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2] / ".asv"
    def result_files(folder: Path) -> list[Path]:
        return [f for name in machines(folder) for f in (folder / name).glob("*.json") if f.name != "machine.json"]

    preferred = root / "default" / "results"
    if result_files(preferred):
        return preferred
    found = [p for p in root.glob("*/results") if result_files(p)]
    if found:
        return max(found, key=lambda p: max(f.stat().st_mtime for f in result_files(p)))
    return root / "results"


def metric_of(benchmark: str, kind: str) -> str:
    """The short metric name of an asv benchmark, e.g. ``suite.Lloyd.time_per_iteration -> per_iter``."""
    method = benchmark.rsplit(".", 1)[-1].lower()
    stem = re.sub(r"^(timeraw|time|peakmem|mem|track)_", "", method)
    for metric, want_kind, pattern in METRICS:
        if (want_kind is None or want_kind == kind) and re.search(pattern, stem):
            return metric
    return stem


def _literal(text):
    """A parameter value from asv's repr string (``"'numba'" -> 'numba'``, ``"1000" -> 1000``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _benchmark_meta(results_dir: Path) -> dict:
    """benchmarks.json: name -> {"param_names", "unit", "type"}; empty if missing."""
    path = results_dir / "benchmarks.json"
    if not path.is_file():
        return {}
    from asv import util
    from asv.benchmarks import Benchmarks

    data = util.load_json(str(path), api_version=Benchmarks.api_version)
    return {name: meta for name, meta in data.items() if isinstance(meta, dict) and "name" in meta}


def machines(results_dir=None) -> list[str]:
    """Machine names with results under ``results_dir``."""
    results_dir = Path(results_dir or default_results_dir())
    if not results_dir.is_dir():
        return []
    return sorted(p.name for p in results_dir.iterdir() if (p / "machine.json").is_file())


def machine_info(results_dir=None, machine: str | None = None) -> dict:
    """asv's machine.json for ``machine`` (cpu, num_cpu, ram, os, arch, plus what the bench stored)."""
    results_dir = Path(results_dir or default_results_dir())
    machine = machine or this_machine(results_dir)
    path = results_dir / str(machine) / "machine.json"
    if not path.is_file():
        return {}
    with open(path) as fh:
        return json.load(fh)


def this_machine(results_dir=None) -> str | None:
    """The machine whose results to use here, among those recorded in ``results_dir``.

    The one ``kmbench bench`` described in that folder (``kmbench.bench.machine``), else the
    asv machine named after this host, else the only machine recorded; None when the
    folder holds several others.
    """
    import platform

    results_dir = Path(results_dir or default_results_dir())
    names = machines(results_dir)
    from kmbench.bench.machine import load_machine

    try:
        described = (load_machine(results_dir) or {}).get("machine")
    except (OSError, ValueError):  # an unreadable description: fall back to asv's own naming
        described = None
    for name in (described, platform.node()):
        if name and name in names:
            return name
    return names[0] if len(names) == 1 else None


def load_asv(results_dir=None, machine: str | None = None) -> pd.DataFrame:
    """asv results as a tidy table: every machine's, or ``machine``'s only.

    Failed or skipped parameter combinations (asv stores ``None``/NaN) are left out.
    Files from older commits are kept; :func:`latest` keeps the newest value per case.
    """
    import pandas as pd

    results_dir = Path(results_dir or default_results_dir())
    if not results_dir.is_dir():
        return empty()
    from asv.results import iter_results_for_machine

    meta = _benchmark_meta(results_dir)
    rows = []
    for name in ([machine] if machine else machines(results_dir)):
        if not (results_dir / name).is_dir():
            continue
        for res in iter_results_for_machine(str(results_dir), name):
            for key in res.get_all_result_keys():
                rows.extend(_rows_of(res, key, meta.get(key, {}), name))
    if not rows:
        return empty()
    return _typed(pd.DataFrame(rows, columns=COLUMNS))


def _rows_of(res, key: str, meta: dict, machine: str) -> list[dict]:
    import pandas as pd

    params = res.get_result_params(key) or []
    names = meta.get("param_names") or [f"param{i + 1}" for i in range(len(params))]
    kind = meta.get("type") or key.rsplit(".", 1)[-1].split("_", 1)[0]
    unit = UNITS.get(meta.get("unit"), meta.get("unit") or "")
    values = res.get_result_value(key, params)
    stats = res.get_result_stats(key, params)
    import itertools

    combos = list(itertools.product(*params)) if params else [()]
    if not isinstance(values, list):
        values, stats = [values], [stats]
    date = pd.to_datetime(res.date, unit="ms", utc=True) if res.date else pd.NaT
    out = []
    for combo, value, stat in zip(combos, values, stats):
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            continue
        p = {pname: _literal(v) for pname, v in zip(names, combo)}
        stat = stat or {}
        out.append({
            "benchmark": key, "metric": metric_of(key, kind), "kind": kind,
            "backend": p.pop("backend", None), "n": p.pop("n", None), "k": p.pop("k", None),
            "d": p.pop("d", None), "dtype": p.pop("dtype", None), "value": float(value), "unit": unit,
            "q25": stat.get("q_25"), "q75": stat.get("q_75"), "machine": machine,
            "commit": (res.commit_hash or "")[:8], "date": date, "source": "asv",
            "params": json.dumps(p, sort_keys=True, default=str) if p else "", "family": family_of(key),
        })
    return out


def load_jsonl(path, source: str) -> pd.DataFrame:
    """Rows written one JSON object a line (``kmbench sweep``, recommend's trials) as a tidy table.

    Each line with ``status == "ok"`` (or no status) gives a ``per_iter`` row (sweep's
    ``per_iter_median``), and rows for ``warmup``, ``prepare``, ``per_call`` (a trial's), ``peakmem`` (sweep's
    ``peak_rss_mb``), ``inertia_error``, ``ari`` and ``gflops`` where present. Lines
    that are not JSON are skipped (a writer killed mid-line leaves half a line).
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        return empty()
    rows = []
    fields = {"per_iter": ("s", ("per_iter", "per_iter_median")), "warmup": ("s", ("warmup",)),
              "prepare": ("s", ("prepare",)), "per_call": ("s", ("per_call",)), "peakmem": ("bytes", ("peakmem",)),
              "gflops": ("GFLOP/s", ("gflops",)), "inertia_error": ("", ("inertia_error",)),
              "ari": ("", ("ari",))}
    with open(path) as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(rec, dict) or rec.get("status", "ok") != "ok":
                continue
            timings = rec.get("timings") or {}
            if isinstance(rec.get("peak_rss_mb"), (int, float)):
                rec.setdefault("peakmem", rec["peak_rss_mb"] * 2 ** 20)
            machine = rec.get("machine")
            if isinstance(machine, dict):  # the sweep stores the host's description
                machine = machine.get("hostname")
            when = rec.get("date") or rec.get("time")
            base = {
                "benchmark": f"{source}:{rec.get('backend')}", "kind": source,
                "backend": rec.get("backend"), "n": rec.get("n"), "k": rec.get("k"), "d": rec.get("d"),
                "dtype": rec.get("dtype"), "q25": None, "q75": None, "machine": machine,
                "commit": rec.get("commit", ""),
                "date": pd.to_datetime(when, utc=True) if when else pd.NaT, "source": source,
                "params": json.dumps({key: rec[key] for key in ("threads", "device", "max_iter") if key in rec},
                                     sort_keys=True),
                "family": "kmeans",
            }
            for metric, (unit, names) in fields.items():
                value = next((rec.get(name, timings.get(name)) for name in names
                              if rec.get(name, timings.get(name)) is not None), None)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
                    rows.append({**base, "metric": metric, "value": float(value), "unit": unit})
    if not rows:
        return empty()
    return _typed(pd.DataFrame(rows, columns=COLUMNS))


def empty() -> pd.DataFrame:
    import pandas as pd

    return _typed(pd.DataFrame({c: [] for c in COLUMNS}))


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    for col in ("n", "k", "d"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    for col in ("value", "q25", "q75"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df["date"] = pd.to_datetime(df["date"], utc=True)
    return df


def default_sweep_paths(results_dir=None) -> list[Path]:
    """``kmbench sweep``'s default output (``results/*.jsonl``) in the project root and the working directory."""
    found = []
    for folder in (Path(__file__).resolve().parents[2] / "results", Path.cwd() / "results"):
        if folder.is_dir():
            found.extend(p.resolve() for p in sorted(folder.glob("*.jsonl")))
    return list(dict.fromkeys(found))


def tidy(results_dir=None, *, machine: str | None = None, sweeps=None, trials: bool = True,
         family: str | None = "kmeans") -> pd.DataFrame:
    """Every recorded number: asv first, then sweeps, then recommend's trials; one table.

    Parameters
    ----------
    results_dir : path, optional
        asv's results folder; :func:`default_results_dir` when None.
    machine : str, optional
        Only this machine's rows (sweep and trial rows without a machine are kept).
    sweeps : list of paths, optional
        Sweep JSONL files; :func:`default_sweep_paths` when None.
    trials : bool
        Include the cached ``kmbench recommend --measure`` trials.
    family : str or None
        Only this family's rows ("kmeans", "linkage"; its backends share names with the other's);
        None keeps every family.
    """
    import pandas as pd

    frames = [load_asv(results_dir, machine)]
    for path in (default_sweep_paths(results_dir) if sweeps is None else sweeps):
        frames.append(load_jsonl(path, "sweep"))
    if trials:
        frames.append(load_jsonl(trial_cache_path(), "trial"))
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty()
    df = pd.concat(frames, ignore_index=True)
    if machine:
        import platform

        # sweeps and trials name the host; asv may name the same machine otherwise
        names = {machine} | ({platform.node()} if machine == this_machine(results_dir) else set())
        df = df[df["machine"].isin(names) | df["machine"].isna()]
    if family is not None:
        df = df[df["family"] == family]
    return df.reset_index(drop=True)


def latest(df: pd.DataFrame) -> pd.DataFrame:
    """The newest value per (source, metric, backend, shape, dtype, machine, other params)."""
    if not len(df):
        return df
    keys = ["source", "metric", "backend", "n", "k", "d", "dtype", "machine", "params", "benchmark"]
    ordered = df.sort_values("date", kind="stable", na_position="first")
    return ordered.drop_duplicates(subset=keys, keep="last").reset_index(drop=True)


def machine_archives(out: Path) -> tuple[dict, dict]:
    """``({machine: tidy table}, {machine: description})`` of every machine archived under ``out/machines``.

    ``kmbench report`` keeps each machine's numbers there (``<machine>/results.csv``, this
    module's table) with its description (``<machine>/machine.json``), so the published
    report can compare machines and a machine with no records can rank from another's.
    """
    import json

    import pandas as pd

    tables, descriptions = {}, {}
    for folder in sorted((Path(out) / "machines").glob("*/")):
        csv = folder / "results.csv"
        if not csv.is_file():
            continue
        tables[folder.name] = _typed(pd.read_csv(csv).reindex(columns=COLUMNS))
        desc = folder / "machine.json"
        descriptions[folder.name] = json.loads(desc.read_text()) if desc.is_file() else {}
    return tables, descriptions
