"""``kmbench recommend``: rank the backends for one shape on this machine.

Two ways to rank, same output:

* :func:`rank_recorded` reads what was measured here before (asv results, ``kmbench
  sweep`` rows, cached trials of ``--measure``) and predicts each backend's time per
  iteration at the requested shape with a cost model fitted to all of them
  (:mod:`kmbench.advise.costmodel`), with an interval.
* :func:`rank_measured` times a few fixed Lloyd iterations of every available
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

import numpy as np

#: a trial's n*k*d cap: at a few GFLOP/s a fast backend's iteration stays well under a second
TRIAL_WORK = 2e8
#: seconds one trial iteration of one backend may take; slow backends get a smaller subsample
TRIAL_BUDGET = 0.25
#: sources in order of trust: a backend's estimate uses the first that has its points
SOURCES = ("asv", "sweep", "trial")


def trial_cache_path() -> Path:
    """Where ``--measure`` trials are cached: ``$KMBENCH_CACHE/trials.jsonl`` or ``~/.cache/kmbench/``."""
    root = os.environ.get("KMBENCH_CACHE") or Path.home() / ".cache" / "kmbench"
    return Path(root) / "trials.jsonl"


def machine_name(results_dir=None) -> str:
    """This machine's name in recorded results (asv's naming where known, else the host name)."""
    from .results import this_machine

    return this_machine(results_dir) or platform.node()


# -- which backends may run this case ----------------------------------------------------------
def candidates(n: int, k: int, d: int, dtype: str, device=None, names=None) -> tuple[list[str], dict]:
    """Backends that can run this case here, and ``{name: reason}`` for those that cannot.

    A backend qualifies when it is available, supports ``dtype`` natively (``auto`` never
    changes the data's precision behind the caller's back), runs on ``device`` and its
    ``skip()`` accepts the shape.
    """
    import impls

    from .runner import backend_class

    ok, refused = [], {}
    for name in names or impls.REGISTRY:
        try:
            cls = backend_class(name)
        except (ImportError, ValueError) as exc:
            refused[name] = f"could not load: {exc}"
            continue
        reason = cls.unavailable()
        if reason is None and dtype not in cls.dtypes:
            reason = f"computes in {', '.join(cls.dtypes)}, not {dtype}"
        if reason is None and device is not None and device not in cls.devices:
            reason = f"does not run on device={device!r}"
        if reason is None:
            reason = cls(threads=1, device=device).skip(n, k, d, dtype)
        if reason is None:
            ok.append(name)
        else:
            refused[name] = reason
    return ok, refused


# -- ranking from recorded results -------------------------------------------------------------
def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


_TABLE_CACHE: dict = {}


def _signature(results_dir: Path) -> tuple:
    """Names, sizes and modification times of every file the table is read from."""
    from .results import default_sweep_paths

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
    from .results import default_results_dir, latest, tidy

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
        asv results folder (``kmbench.results.default_results_dir()`` when None).
    table : DataFrame, optional
        A tidy table (``kmbench.results.tidy``) to rank from instead of reading files.
    names : list of str, optional
        Only these backends.
    max_iter : int, optional
        Rank by a whole fit of this many iterations instead of by one iteration.

    Returns
    -------
    list of dict
        Empty when nothing usable is recorded for this machine and dtype.
    """
    from .advise import predict

    n, k, d = int(n), int(k), int(d)
    machine = None
    if table is None:
        from .results import default_results_dir

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
    return predict.rank_table(table, n, k, d, dtype, ok, quality=_quality_failures(table, dtype),
                              max_iter=max_iter, machine=machine, gemm_gflops=_gemm_rate(results_dir, machine))


def _gemm_rate(results_dir, machine) -> float | None:
    """The recording machine's measured float32 GEMM rate (GFLOP/s), where its description is stored."""
    from .machine import load_machine

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
    from . import machine as machine_mod

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
    return Path(os.environ.get("KMBENCH_ARCHIVES") or Path(__file__).resolve().parent.parent / "reports")


_ARCHIVES: dict = {}


def _archives(root: Path):
    """``kmbench.report.machine_archives(root)``, read again only when a file there changes (auto ranks in every fit)."""
    from .report import machine_archives

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
    from .advise import machines as compare
    from .advise import predict
    from .machine import machine_id

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
    return predict.rank_table(table, n, k, d, dtype, ok, quality=_quality_failures(table, dtype),
                              max_iter=max_iter, machine=machine_id(), scaled_from=f"{name} ({how})",
                              factors=factors,
                              gemm_gflops=((descriptions.get(name) or {}).get("gemm_peak") or {}).get("float32"))


def _quality_failures(table, dtype: str) -> dict:
    """Backends whose recorded inertia error exceeds the contract's tolerance for ``dtype``."""
    from .crosscheck import TOLERANCES

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


# -- ranking by a short trial ------------------------------------------------------------------
def rank_measured(n: int, k: int, d: int, dtype: str = "float64", device=None, *, names=None, iters: int = 6,
                  max_work: float = TRIAL_WORK, budget: float = TRIAL_BUDGET, seed: int = 0,
                  threads=None, progress: bool = True, cache: bool = True) -> list[dict]:
    """Rank the backends that can run this case by a short timed trial now, fastest first.

    Each backend first runs one untimed iteration on a small pilot subsample (imports,
    JIT compilation), then one timed one; from its time the trial size is chosen so one
    iteration takes about ``budget`` seconds, at least a tenth of the cap, at most ``n``
    rows and at most ``max_work`` for n*k*d. The trial then times ``run`` at 1 and at
    ``iters`` fixed iterations (``tol < 0``), twice each, interleaved, in one prepared
    session (:func:`kmbench.advise.counts.time_counts`), from the same centres on the
    same synthetic blobs (``kmbench.data.blobs``): the line through those timings
    separates the per-call part of a fit from the per-iteration part. ``per_iter`` is
    reported as the suites record it (a run of 10 iterations over 10). Where the trial
    used fewer than ``n`` rows, both parts are extrapolated linearly in n: the
    per-iteration part through the pilot's and the trial's timings (a fixed cost plus a
    cost per row), or scaled by ``n / rows`` where those do not give a positive slope,
    and the per-call part by ``n / rows``; the entry's ``how`` says which.

    Parameters
    ----------
    n, k, d : int
        Samples, clusters, features of the case to rank for.
    dtype : {"float32", "float64"}
    device : str, optional
    names : list of str, optional
        Only these backends.
    iters : int
        The larger of the two iteration counts timed (>= 2).
    max_work, budget : float
        Caps on the trial size (n*k*d) and on one iteration's time (seconds).
    seed : int
    threads : int, optional
        Threads for every backend (the harness default when None).
    progress : bool
        Show a progress bar.
    cache : bool
        Append each trial to :func:`trial_cache_path` for ``backend="auto"``.

    Returns
    -------
    list of dict
    """
    from tqdm import tqdm

    from .advise.counts import time_counts
    from .data import blobs
    from .runner import BackendUnavailable, create, execute
    from .seeding import initial_centers
    from .validation import check_int

    n, k, d = (check_int(name, v, 1) for name, v in (("n", n), ("k", k), ("d", d)))
    if k > n:
        raise ValueError(f"k={k} must be <= n={n}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    iters = check_int("iters", iters, 2)
    ok, _ = candidates(n, k, d, dtype, device, names)
    # Rows enough for every cluster to be seeded; capped by work and by ~1 GiB of data.
    cap = int(min(n, max(k, max_work // (k * d)), max(k, (1 << 30) // (8 * d))))
    pilot = int(min(cap, max(k, 2 * k, 20000 // max(1, d))))
    X, _ = blobs(cap, d, k, seed=seed, dtype=dtype)
    centers = initial_centers(X[:pilot], k, "random", seed).astype(dtype)
    machine = machine_name()
    host = platform.node()
    ranking = []
    bar = tqdm(ok, desc=f"trial n={n} k={k} d={d}", unit="backend", disable=not progress, leave=False)
    for name in bar:
        bar.set_postfix_str(name)
        try:
            def single(rows):
                backend = create(name, n=rows, k=k, d=d, dtype=dtype, device=device, threads=threads)
                res = execute(backend, X[:rows], centers, max_iter=1, tol=-1.0)
                return res.timings["fit"] / max(res.n_iter, 1)
            single(pilot)  # first call: imports, JIT compilation, thread pools; not counted
            small = min(single(pilot) for _ in range(2))  # one short iteration is noisy: best of two
            rows = pilot
            if pilot < cap:
                # large enough that per-call overheads do not dominate, small enough for the budget
                rows = int(min(cap, max(pilot, cap // 10, pilot * budget / max(small, 1e-9))))
            backend = create(name, n=rows, k=k, d=d, dtype=dtype, device=device, threads=threads)
            t = time_counts(backend, X[:rows], centers, counts=(1, iters), repeats=2)
        except BackendUnavailable as exc:
            bar.write(f"  {name}: skipped: {exc}")
            continue
        per_iter, per_call = t["per_iter"], t["per_call"]
        how = (f"measured now: run timed at 1 and {iters} iterations on {rows} x {d} synthetic blobs "
               f"({fmt_time(t['slope'])} per iteration + {fmt_time(per_call)} per call)")
        estimate, call_estimate = per_iter, per_call
        if rows < n:
            slope = (per_iter - small) / (rows - pilot) if rows > pilot else 0.0
            fixed = per_iter - slope * rows
            call_estimate = per_call * n / rows
            if slope > 0 and fixed >= 0:
                # time = fixed + slope * rows, fitted through the pilot and the trial: a per-call
                # overhead is not multiplied up with the rows
                estimate = fixed + slope * n
                how += (f" (a subsample of n={n}; scaled linearly in n through timings at {pilot} and {rows} "
                        f"rows: {fmt_time(fixed)} fixed + {fmt_time(slope * 1000)} per 1000 rows)")
            else:
                estimate = per_iter * n / rows
                how += f" (a subsample of n={n}; time scaled x{n / rows:.3g}, linear in n)"
        ranking.append({"backend": name, "per_iter": estimate, "per_call": call_estimate, "basis": "measured",
                        "source": "trial", "points": [(rows, k, d, per_iter)], "how": how, "eligible": True,
                        "note": "", "machine": machine, "threads": t["threads"], "low": None, "high": None,
                        "total": None})
        if cache:
            _cache_trial(host, name, rows, k, d, dtype, per_iter, per_call, t)
    bar.close()
    ranking.sort(key=lambda r: r["per_iter"])
    _add_reasons(ranking, n, k, d, dtype)
    return ranking


def _cache_trial(host, name, rows, k, d, dtype, per_iter, per_call, res) -> None:
    import datetime

    path = trial_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(json.dumps({"machine": host, "backend": name, "n": rows, "k": k, "d": d,
                                 "dtype": dtype, "status": "ok", "per_iter": per_iter, "per_call": per_call,
                                 "threads": res["threads"], "device": res["device"],
                                 "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}) + "\n")
    except OSError:  # a read-only home must not break a recommendation
        pass


# -- the command ---------------------------------------------------------------------------------
def configure(parser):
    parser.add_argument("--n", type=int, default=None, help="number of samples")
    parser.add_argument("--k", type=int, default=None, help="number of clusters")
    parser.add_argument("--d", type=int, default=None, help="number of features")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--device", default=None, help="only backends that run there (cpu, cuda)")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="rank by a whole fit of this many iterations (per-call part included)")
    parser.add_argument("--measure", action="store_true",
                        help="time a short trial now instead of using recorded results")
    parser.add_argument("--validate", action="store_true",
                        help="leave each recorded shape out, predict it from the rest, and print per backend the "
                             "median and worst error and how often the pick would have been slower (no --n/--k/--d)")
    parser.add_argument("--json", action="store_true", help="print the ranking (or the validation) as JSON")
    parser.add_argument("--results", default=None,
                        help="asv results folder (default: .asv/default/results, else the newest "
                             ".asv/<profile>/results)")
    parser.add_argument("--backend", action="append", help="only these backends (repeatable)")
    parser.add_argument("--iters", type=int, default=6,
                        help="a trial times run at 1 and at this many iterations, to separate the per-call part")


def run(args) -> int:
    from .validation import check_int

    if args.validate:
        return _validate(args)
    missing = [f"--{name}" for name in ("n", "k", "d") if getattr(args, name) is None]
    if missing:
        raise ValueError(f"{', '.join(missing)} required (or --validate)")
    n, k, d = (check_int(name, getattr(args, name), 1) for name in ("n", "k", "d"))
    if k > n:
        raise ValueError(f"--k={k} must be <= --n={n}")
    max_iter = None if args.max_iter is None else check_int("--max-iter", args.max_iter, 1)
    ranking = [] if args.measure else rank_recorded(n, k, d, args.dtype, args.device, results_dir=args.results,
                                                    names=args.backend, max_iter=max_iter)
    why = "from recorded results"
    if not ranking and not args.measure:
        ranking = rank_scaled(n, k, d, args.dtype, args.device, names=args.backend, max_iter=max_iter,
                              results_dir=args.results, measure=True)
        if ranking:
            why = ("from another machine's records, scaled by the two machines' measured ceilings (none recorded "
                   "here: `make bench` records this machine's own)")
    if not ranking:
        if not args.measure and not args.json:
            print("No recorded results for this machine and dtype; measuring a short trial instead.")
        ranking = rank_measured(n, k, d, args.dtype, args.device, names=args.backend, iters=args.iters,
                                progress=not args.json)
        why = "from a short trial just now"
        if max_iter is not None:
            for r in ranking:
                r["total"] = r["per_iter"] * max_iter + (r["per_call"] or 0.0)
            ranking.sort(key=lambda r: r["total"])
    if args.json:
        from .advise.predict import as_json

        print(json.dumps(dict(as_json(ranking, n, k, d, args.dtype, max_iter), why=why), indent=1))
        return 0 if ranking else 1
    _, refused = candidates(n, k, d, args.dtype, args.device, args.backend)
    print(format_ranking(ranking, refused, n, k, d, args.dtype, why, max_iter))
    return 0 if ranking else 1


def validation(results_dir=None, table=None) -> dict:
    """Leave-one-out figures of the cost models on this machine's records (:func:`kmbench.advise.costmodel.validate`)."""
    from .advise import costmodel, predict

    machine = None
    if table is None:
        table, machine = recorded_table(results_dir)
    return costmodel.validate(predict.records(table), gemm_gflops=_gemm_rate(results_dir, machine))


def _validate(args) -> int:
    from .advise.predict import format_validation

    table, machine = recorded_table(args.results)
    result = validation(table=table)
    if args.json:
        print(json.dumps({"machine": machine,
                          "backends": [dict(backend=b, dtype=dt, **{k: v for k, v in s.items() if k != "errors"})
                                       for (b, dt), s in sorted(result["backends"].items())],
                          "picks": {dt: {k: v for k, v in p.items() if k != "details"}
                                    for dt, p in result["picks"].items()}}, indent=1))
    else:
        print(format_validation(result, machine))
    return 0 if result["backends"] else 1


def format_ranking(ranking, refused, n, k, d, dtype, why: str, max_iter=None) -> str:
    where = next((r["machine"] for r in ranking if r.get("machine")), None) or machine_name()
    lines = [f"Backends for n={n}, k={k}, d={d}, {dtype} on {where}, {why}:", ""]
    header = ("rank", "backend", "per iteration", "likely within", "per call", "vs best", "basis")
    if max_iter is not None:
        header = header[:5] + (f"{max_iter} iterations",) + header[5:]
    key = "total" if max_iter is not None else "per_iter"
    body = []
    for i, r in enumerate(ranking, 1):
        interval = (f"{fmt_time(r['low'])} - {fmt_time(r['high'])}" if r.get("low") is not None
                    else "(measured)")
        call = fmt_time(r["per_call"]) if r.get("per_call") is not None else "?"
        row = [str(i), r["backend"], fmt_time(r["per_iter"]), interval, call]
        if max_iter is not None:
            row.append(fmt_time(r["total"]))
        row += [f"{r[key] / ranking[0][key]:.2f}x", r["how"] + (f" [{r['note']}]" if r["note"] else "")]
        body.append(tuple(row))
    widths = [max(len(row[j]) for row in body + [header]) for j in range(len(header) - 1)]
    for row in [header] + body:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[-1])
    if not ranking:
        lines.append("(no backend could run this case)")
    if refused:
        lines += ["", "Not ranked:"] + [f"  {name}: {reason}" for name, reason in refused.items()]
    if ranking:
        lines += ["", f"Recommendation: {ranking[0]['backend']}: {ranking[0]['reason']}"]
        if any("extrapolated" in r["how"] for r in ranking):
            lines.append("Some predictions extrapolate beyond the recorded shapes (their intervals are wider); "
                         "--measure times a short trial at this shape instead.")
        if any(r.get("low") is not None for r in ranking):
            lines.append("'likely within': the model's leave-one-out error on this machine's records (90% of "
                         "them), widened with the distance to the nearest recorded shape; "
                         "`kmbench recommend --validate` shows the figures.")
    return "\n".join(lines)
