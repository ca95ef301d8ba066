"""``kmbench sweep``: time backends over a grid of shapes, each case in its own process, resumably."""
from __future__ import annotations

import argparse
import sys

from kmbench.bench.store import DEFAULT_OUT
from kmbench.bench.sweep import sweep
from kmbench.cli.args import backend_list, dtype_list, int_list, one_int, positive_number, thread_count


def configure(parser):
    # Values are parsed in run(), not by argparse types, so a bad one is a one-line error naming it.
    parser.add_argument("--backends", default=None,
                        help="comma-separated registry names or 'module:Class' specs (default: every available one)")
    parser.add_argument("--n", default="1000,10000", help="comma-separated sample counts")
    parser.add_argument("--k", default="8,64", help="comma-separated cluster counts")
    parser.add_argument("--d", default="4,32", help="comma-separated feature counts")
    parser.add_argument("--dtype", default="float64", help="comma-separated: float32, float64")
    parser.add_argument("--max-iter", default="10", help="Lloyd iterations per fit (tol=-1: fixed work)")
    parser.add_argument("--repeats", default="3", help="timed fits per case; the median is reported")
    parser.add_argument("--timeout", default="120", help="seconds per case, data generation and imports included")
    parser.add_argument("--threads", default=None,
                        help="threads for every pool (BLAS, OpenMP, Numba, torch); default KMBENCH_THREADS or all cores")
    parser.add_argument("--seed", default="0", help="seed of the data and of the random initial centres")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"JSONL file to append to (default {DEFAULT_OUT})")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="skip cases already in --out (default); --no-resume moves the old file to OUT.bak")


def plan(args) -> tuple[list[dict], dict]:
    """Every case of the grid, in shape-major order so backends at one shape run close together in time."""
    backends = backend_list(args.backends)
    ns = int_list("--n", args.n)
    ks = int_list("--k", args.k)
    ds = int_list("--d", args.d)
    dtypes = dtype_list(args.dtype)
    settings = {
        "max_iter": one_int("--max-iter", args.max_iter),
        "repeats": one_int("--repeats", args.repeats),
        "timeout": positive_number("--timeout", args.timeout),
        "threads": thread_count(args.threads),
        "seed": one_int("--seed", args.seed, minimum=0),
    }
    cases = [{"backend": b, "n": n, "k": k, "d": d, "dtype": dt, "max_iter": settings["max_iter"],
              "threads": settings["threads"], "repeats": settings["repeats"], "seed": settings["seed"]}
             for n in ns for k in ks for d in ds for dt in dtypes for b in backends]
    return cases, settings


def run(args) -> int:
    cases, settings = plan(args)
    out = args.out
    try:
        counts = sweep(cases, out=out, timeout=settings["timeout"], resume=args.resume)
    except KeyboardInterrupt:
        print(f"kmbench sweep: interrupted; finished cases are in {out}; run the same command to resume",
              file=sys.stderr)
        raise
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    print(f"{len(cases)} cases ({summary}) -> {out}")
    bad = sum(counts.get(s, 0) for s in ("failed", "timeout", "crashed"))
    return 1 if bad else 0
