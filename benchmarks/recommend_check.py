"""Does ``kmbench recommend`` hold at shapes it never saw?  Measure it.

For each shape of a seeded space-filling set (none of them a shape any profile records,
unless ``--shapes`` names some), every available backend is timed here, as the harness
times it (``kmbench.core.engine.session``: prepare and warm-up untimed, then ``run`` timed),
at two iteration counts, so the per-call part of a fit is separated from the
per-iteration part. Then the recommendation for that shape, made from what is recorded
(``--results``; the newest asv results by default), is compared with the measurement:

* **pick regret**: the recommended backend's measured time over the fastest one's;
  the goal is within 10% at all but one shape in six;
* **prediction error**: predicted over measured time per iteration (a run of 10
  iterations divided by 10, what the asv suites record); the goal is within 1.5x at the
  median and 2x at worst;
* whether ``backend="auto"`` picks the same backend.

Run from the project root after ``make bench`` (or any recorded results)::

    python benchmarks/recommend_check.py                      # 12 unseen shapes, float32
    python benchmarks/recommend_check.py --shapes 2000000x5x3,20000x2048x256
    python benchmarks/recommend_check.py --record out.jsonl   # only measure, append rows
    python benchmarks/recommend_check.py --measured out.jsonl --results DIR   # judge those rows again

Each (shape, backend) is measured in a process of its own, after a pause: in one process,
backends measured in turn inherited each other's state (freed and re-mapped memory, other
libraries' spinning worker threads), and numba's time per iteration at 388,105 x 11 x 103
read 48.7 ms there against 21.0 ms alone. ``--in-process`` measures in this process instead.
Timings are taken on whatever else runs on the machine; repeat and read the spread.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: iteration counts timed at each shape: t(m) = per_call + m * per_iter
COUNTS = (2, 10)
#: the range of the unseen shapes: wider than the default profile records
RANGE = {"n": (2_000, 2_000_000), "k": (2, 2048), "d": (2, 512)}
#: shapes from the issue that first showed the old estimate's errors
ISSUE_SHAPES = [(2_000_000, 5, 3), (100_000, 100, 300), (20_000, 2048, 256), (500_000, 8, 8), (1_000_000, 64, 2)]
#: seconds between two measurements, for the last one's worker threads to go to sleep
PAUSE = 0.5


def unseen_shapes(count: int, seed: int, work_cap: float) -> list[tuple[int, int, int]]:
    from kmbench.advise.design import latin_shapes

    # a seed no profile uses, so the shapes are not the recorded ones
    return latin_shapes(count, **RANGE, work_cap=work_cap, rows_cap=4e7, seed=1000 + seed)


def measure(name: str, X: np.ndarray, C: np.ndarray, *, repeats: int = 3, budget: float = 20.0,
            threads=None, clock=time.perf_counter) -> dict:
    """Time ``run(m)`` for each m in :data:`COUNTS`, interleaved, after prepare and warm-up.

    Returns per_iter (seconds, the slope of time over iterations run), per_call (the
    intercept: what every ``run`` pays once, e.g. the final assignment), prepare
    (seconds), per_iter_10 (``run(10)`` over its iterations: what the suites record),
    and the raw timings. ``clock=time.process_time`` with ``threads=1`` counts the CPU time
    this process spent, which other load on a shared machine barely changes.
    """
    from kmbench.advise.counts import time_counts
    from kmbench.core.kmeans import create

    n, d = X.shape
    backend = create(name, n=n, k=C.shape[0], d=d, dtype=str(X.dtype), threads=threads)
    t = time_counts(backend, X, C, counts=COUNTS, repeats=repeats, budget=budget, clock=clock)
    ten = [s / i for m, i, s in t["runs"] if m == max(COUNTS)]
    return {"per_iter": t["slope"], "per_call": t["per_call"], "prepare": t["prepare"],
            "per_iter_10": statistics.median(ten), "runs": t["runs"]}


def record(shapes, backends, dtype: str, out, repeats: int, threads=None, clock=time.perf_counter,
           isolate: bool = True) -> list[dict]:
    """Measure every backend at every shape; each in a fresh process unless ``isolate`` is false.

    A row per measurement is appended to ``out`` (JSON lines) as soon as it is taken.
    """
    rows = []
    for n, k, d in shapes:
        for name in backends:
            time.sleep(PAUSE)
            try:
                m = (_measure_in_child if isolate else _measure_here)(name, n, k, d, dtype, repeats, threads, clock)
            except Unavailable as exc:
                print(f"  {name} n={n} k={k} d={d}: skipped: {exc}", file=sys.stderr)
                continue
            row = {"machine": platform.node(), "backend": name, "n": n, "k": k, "d": d, "dtype": dtype,
                   "threads": threads, "clock": clock.__name__, "process": "own" if isolate else "shared", **m}
            rows.append(row)
            print(f"  {name:9s} n={n:>8} k={k:>5} d={d:>4}: {m['per_iter'] * 1e3:9.3f} ms/iter, "
                  f"{m['per_call'] * 1e3:8.3f} ms/call, prepare {m['prepare'] * 1e3:8.3f} ms", file=sys.stderr)
            if out:
                with open(out, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
    return rows


class Unavailable(Exception):
    """The backend cannot run here (its reason is the message)."""


@functools.lru_cache(maxsize=1)  # in one process, every backend of a shape gets the same arrays
def _data(n, k, d, dtype):
    from kmbench.check.data import blobs
    from kmbench.core.seeding import initial_centers

    X, _ = blobs(n, d, k, seed=0, dtype=dtype)
    return X, initial_centers(X, k, "random", 0).astype(dtype)


def _measure_here(name, n, k, d, dtype, repeats, threads, clock) -> dict:
    from kmbench.core.kmeans import BackendUnavailable

    X, C = _data(n, k, d, dtype)
    try:
        return measure(name, X, C, repeats=repeats, threads=threads, clock=clock)
    except BackendUnavailable as exc:
        raise Unavailable(str(exc)) from None


def _measure_in_child(name, n, k, d, dtype, repeats, threads, clock) -> dict:
    """``_measure_here`` in a new Python process: the same data (seeded), nothing inherited."""
    args = [sys.executable, __file__, "--child", json.dumps([name, n, k, d, dtype, repeats, threads, clock.__name__])]
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {name} at n={n} k={k} d={d} failed:\n{done.stderr[-2000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if "unavailable" in answer:
        raise Unavailable(answer["unavailable"])
    return answer


def _child(spec: str) -> int:
    name, n, k, d, dtype, repeats, threads, clock = json.loads(spec)
    try:
        m = _measure_here(name, n, k, d, dtype, repeats, threads, getattr(time, clock))
    except Unavailable as exc:
        m = {"unavailable": str(exc)}
    print(json.dumps(m))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=12, help="unseen shapes (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="which set of unseen shapes")
    parser.add_argument("--shapes", default=None, help="NxKxD,... instead of a generated set")
    parser.add_argument("--issue-shapes", action="store_true", help="add the shapes named in issue 15")
    parser.add_argument("--work-cap", type=float, default=3e9, help="largest n*k*d of a generated shape")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--backends", default=None, help="comma-separated (default: every available one "
                        "the suites run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", default=None, help="recorded results to recommend from")
    parser.add_argument("--record", default=None, metavar="OUT.jsonl", help="only measure; append rows here")
    parser.add_argument("--record-too", default=None, metavar="OUT.jsonl", help="check, and keep the measurements")
    parser.add_argument("--json", default=None, metavar="OUT.json", help="also write every figure here")
    parser.add_argument("--in-process", action="store_true", help="measure every backend in this process "
                        "(faster to run; backends then disturb each other's timings)")
    parser.add_argument("--measured", default=None, metavar="IN.jsonl", help="check against rows measured before "
                        "(--record's or --record-too's file) instead of measuring now")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child)

    if args.shapes:
        shapes = [tuple(int(v) for v in s.lower().split("x")) for s in args.shapes.split(",") if s.strip()]
        bad = [s for s in shapes if len(s) != 3]
        if bad:
            parser.error(f"--shapes={args.shapes!r}: each shape is NxKxD")
    else:
        shapes = unseen_shapes(args.count, args.seed, args.work_cap)
    if args.issue_shapes:
        shapes += [s for s in ISSUE_SHAPES if s not in shapes]
    if args.backends:
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    else:
        from benchmarks.common import BACKENDS
        from kmbench.core.kmeans import backends as listing

        available = {row["name"] for row in listing() if row["available"]}
        backends = [b for b in BACKENDS if b in available and b not in ("loop", "broadcast")]
    if args.record:
        record(shapes, backends, args.dtype, args.record, args.repeats, isolate=not args.in_process)
        return 0
    if args.results:  # backend="auto" reads the same records as the ranking
        os.environ["KMBENCH_RESULTS"] = args.results
    return check(shapes, backends, args)


def check(shapes, backends, args) -> int:
    from kmbench.advise.ranking import rank_recorded

    if args.measured:
        rows = [json.loads(line) for line in Path(args.measured).read_text().splitlines() if line.strip()]
        wanted = set(shapes)
        measured = [r for r in rows if (r["n"], r["k"], r["d"]) in wanted and r["backend"] in backends
                    and r["dtype"] == args.dtype]
    else:
        measured = record(shapes, backends, args.dtype, args.record_too, args.repeats, isolate=not args.in_process)
    by_shape: dict = {}
    for row in measured:
        by_shape.setdefault((row["n"], row["k"], row["d"]), {})[row["backend"]] = row
    figures = []
    for shape, rows in by_shape.items():
        n, k, d = shape
        ranking = rank_recorded(n, k, d, args.dtype, results_dir=args.results, names=list(rows))
        eligible = [r for r in ranking if r.get("eligible", True)]
        if not eligible:
            print(f"n={n} k={k} d={d}: nothing recorded to rank from", file=sys.stderr)
            continue
        pick = eligible[0]["backend"]
        time_of = {b: rows[b]["per_iter_10"] for b in rows}
        fastest = min((r["backend"] for r in eligible), key=time_of.get)
        fastest_any = min(time_of, key=time_of.get)
        predicted = {r["backend"]: r for r in ranking if r["backend"] in rows}
        errors = {b: r["per_iter"] / time_of[b] for b, r in predicted.items()}
        inside = {b: r["low"] <= time_of[b] <= r["high"] for b, r in predicted.items() if r.get("low") is not None}
        figures.append({"shape": shape, "pick": pick, "fastest": fastest, "fastest_any": fastest_any,
                        "regret": time_of[pick] / time_of[fastest], "regret_any": time_of[pick] / time_of[fastest_any],
                        "pick_error": errors.get(pick), "errors": errors, "inside": inside,
                        "auto": _auto_choice(n, k, d, args.dtype), "measured": time_of})
    return report(figures, args)


def _auto_choice(n, k, d, dtype):
    from kmbench.advise.auto import choose

    try:
        return choose(n, k, d, dtype)[0]
    except Exception as exc:  # noqa: BLE001 -- the check reports, it does not stop
        return f"error: {exc}"


def report(figures, args) -> int:
    if not figures:
        print("no shape could be checked")
        return 1
    print(f"\nUnseen shapes on {platform.node()} ({args.dtype}); per iteration = run(10) / 10, measured now, "
          "against the ranking from recorded results")
    print(f"{'n':>9} {'k':>5} {'d':>4}  {'picked':10} {'fastest':10} {'regret':>7} {'pred/meas':>9}  "
          f"{'in interval':11}  auto")
    for f in figures:
        n, k, d = f["shape"]
        err = f["pick_error"]
        fastest = f["fastest"] + ("" if f["fastest_any"] == f["fastest"] else f" ({f['fastest_any']}*)")
        print(f"{n:>9} {k:>5} {d:>4}  {f['pick']:10} {fastest:10} {f['regret']:7.3f} "
              f"{err:9.2f}  {str(f['inside'].get(f['pick'], '-')):11}  {f['auto']}")
    if any(f["fastest_any"] != f["fastest"] for f in figures):
        print("* faster still, but its recorded quality fails the contract, so it is never recommended")
    regrets = np.array([f["regret"] for f in figures])
    ratios = np.array([max(v, 1 / v) for f in figures for v in f["errors"].values()])
    pick_ratios = np.array([max(f["pick_error"], 1 / f["pick_error"]) for f in figures])
    inside = [v for f in figures for v in f["inside"].values()]
    within = int((regrets <= 1.10).sum())
    autos = [f for f in figures if f["auto"] is not None]
    same = sum(f["auto"] == f["pick"] for f in autos)
    need = len(figures) - len(figures) // 6
    print(f"\npick within 10% of the fastest: {within} of {len(figures)} (goal: all but one in six, >= {need}); "
          f"worst {regrets.max():.2f}x")
    print(f"prediction error of the picked backend: median {np.median(pick_ratios):.2f}x, worst "
          f"{pick_ratios.max():.2f}x (goal 1.5x / 2x); of every backend: median {np.median(ratios):.2f}x, "
          f"worst {ratios.max():.2f}x")
    print(f"measurements inside the stated interval: {sum(inside)} of {len(inside)}")
    print(f"backend='auto' made the same choice at {same} of {len(autos)} shapes")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
