"""Rank the backends for one shape on this machine (what ``kmbench recommend`` prints and ``auto`` reads).

Two ways to rank, same output:

* :func:`rank_recorded` reads what was measured here before (asv results, ``kmbench
  sweep`` rows, cached trials of ``--measure``) and predicts each backend's time per
  iteration at the requested shape with a cost model fitted to all of them
  (:mod:`kmbench.advise.costmodel`), with an interval; :func:`rank_scaled` does the same
  from another machine's records, scaled by the two machines' measured ceilings.
* :func:`kmbench.advise.trials.rank_measured` times a few fixed Lloyd iterations of every available
  backend on synthetic blobs of that shape now; a shape too large for a short trial
  is subsampled in n and the time scaled linearly, and the ranking says so. Each
  trial is cached, so ``backend="auto"`` can use it later without measuring.

Every entry of a ranking is a dict: ``backend``, ``per_iter`` (seconds, expected),
``low``/``high`` (its interval), ``per_call`` (seconds a call pays once, or None),
``total`` (a whole fit, when ranked for ``max_iter``),
``basis`` ("recorded", "model" or "measured"), ``source``, ``points`` (the shapes it rests on),
``reason`` (a sentence), ``eligible`` (False where recorded quality fails the
contract's tolerance: shown, but never picked by ``auto``) and ``note``.
"""
from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path

from kmbench.advise.predict import fmt_time
from kmbench.bench.records import trial_cache_path
from kmbench.core import registry



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
                  names=None, max_iter=None) -> list[dict]:
    """Rank the backends that can run this case by predicted time per iteration, fastest first.

    Each backend's cost model (:mod:`kmbench.advise.costmodel`) is fitted to every
    time per iteration recorded for it on this machine at this dtype (asv suites, sweep
    rows, ``--measure`` trials), so the ranking holds between and beyond the recorded
    shapes; at a recorded shape the recorded time is used. Each entry carries its
    interval (``low``, ``high``: the model's leave-one-out error, widened with the
    distance to the nearest recorded shape), the per-call part where recorded, and, with
    ``max_iter``, the whole fit's time (``total``), by which the ranking is then ordered.

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
    max_iter : int, optional
        Rank by a whole fit of this many iterations instead of by one iteration.

    Returns
    -------
    list of dict
        Empty when nothing usable is recorded for this machine and dtype.
    """
    from kmbench.advise import predict

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
    return predict.rank_table(table, n, k, d, dtype, ok, quality=quality_failures(table, dtype),
                              max_iter=max_iter, machine=machine, gemm_gflops=_gemm_rate(results_dir, machine))


def _gemm_rate(results_dir, machine) -> float | None:
    """The recording machine's measured float32 GEMM rate (GFLOP/s), where its description is stored."""
    from kmbench.bench.machine import load_machine

    try:
        stored = load_machine(results_dir) or {}
    except (OSError, ValueError):
        return None
    if machine is not None and stored.get("machine") not in (machine, None):
        return None
    return (stored.get("gemm_peak") or {}).get("float32")


def this_machine_ceilings(results_dir=None, *, measure: bool = False) -> dict | None:
    """This machine's description with its ceilings: stored beside the results, else cached, else measured.

    The cache (``$KMBENCH_CACHE/machine.json``) holds what :func:`rank_scaled` measured
    once, so ``backend="auto"`` can rank from other machines' records without measuring
    inside a fit. None when nothing is stored and ``measure`` is False.
    """
    from kmbench.bench import machine as machine_mod

    try:
        stored = machine_mod.load_machine(results_dir)
    except (OSError, ValueError):
        stored = None
    if stored and stored.get("machine") == machine_mod.machine_id() and stored.get("memory_bandwidth"):
        return stored
    cache = trial_cache_path().parent / "machine.json"
    try:
        cached = json.loads(cache.read_text())
        if cached.get("machine") == machine_mod.machine_id():
            return cached
    except (OSError, ValueError):
        pass
    if not measure:
        return None
    info = machine_mod.describe_machine(measure=True)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(info, indent=2, sort_keys=True))
    except OSError:  # a read-only home: measured again next time
        pass
    return info


def archives_dir() -> Path:
    """Where other machines' records are kept: ``KMBENCH_ARCHIVES``, else the project's ``reports/``."""
    return Path(os.environ.get("KMBENCH_ARCHIVES") or Path(__file__).resolve().parents[2] / "reports")


_ARCHIVES: dict = {}


def _archives(root: Path):
    """``kmbench.bench.records.machine_archives(root)``, read again only when a file there changes (auto ranks in
    every fit)."""
    from kmbench.bench.records import machine_archives

    files = sorted((root / "machines").glob("*/*")) if (root / "machines").is_dir() else []
    key = (str(root), tuple((str(f), f.stat().st_mtime_ns) for f in files))
    if key not in _ARCHIVES:
        _ARCHIVES.clear()
        _ARCHIVES[key] = machine_archives(root)
    return _ARCHIVES[key]


def rank_scaled(n: int, k: int, d: int, dtype: str, device=None, *, names=None, max_iter=None, results_dir=None,
                measure: bool = False) -> list[dict]:
    """Rank from another machine's records, moved here by the two machines' measured ceilings.

    For a machine with no records of its own. Each archived machine (``reports/machines/
    <machine>/``: ``results.csv`` and ``machine.json``) whose ceilings allow it is a
    candidate; the one whose GEMM rate is closest to this machine's is used. Its cost
    models are scaled term by term (:func:`kmbench.advise.machines.scale_factors`) and
    every entry's ``how`` says whose records and which ratios. Empty when no archive
    can be scaled, or when this machine's ceilings are unknown and ``measure`` is False.
    """
    from kmbench.advise import machines as compare
    from kmbench.advise import predict
    from kmbench.bench.machine import machine_id

    here = this_machine_ceilings(results_dir, measure=measure)
    if not here:
        return []
    tables, descriptions = _archives(archives_dir())
    best = None
    for name, table in tables.items():
        if name == here.get("machine"):
            continue
        factors, how = compare.scale_factors(descriptions.get(name) or {}, here)
        rows = table[(table["metric"] == "per_iter") & (table["dtype"] == dtype)]
        if factors is None or not len(rows):
            continue
        distance = abs(math.log(factors["nkd"]))
        if best is None or distance < best[0]:
            best = (distance, name, table, factors, how)
    if best is None:
        return []
    _, name, table, factors, how = best
    rows = table[(table["metric"] == "per_iter") & (table["dtype"] == dtype)]
    recorded = [b for b in dict.fromkeys(rows["backend"].dropna()) if names is None or b in names]
    ok, _ = candidates(n, k, d, dtype, device, recorded)
    return predict.rank_table(table, n, k, d, dtype, ok, quality=quality_failures(table, dtype),
                              max_iter=max_iter, machine=machine_id(), scaled_from=f"{name}'s records, scaled by the two machines' measured ceilings: {how}",
                              factors=factors,
                              gemm_gflops=((descriptions.get(name) or {}).get("gemm_peak") or {}).get("float32"))


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
        basis = r["how"]
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


def validation(results_dir=None, table=None, machine=None) -> dict:
    """Leave-one-out figures of the cost models on this machine's records (:func:`kmbench.advise.costmodel.validate`)."""
    from kmbench.advise import costmodel, predict

    if table is None:
        table, machine = recorded_table(results_dir)
    return costmodel.validate(predict.records(table), gemm_gflops=_gemm_rate(results_dir, machine))
