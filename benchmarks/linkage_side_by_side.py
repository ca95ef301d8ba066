"""Side by side: seconds per linkage of the project's numba backend against fastcluster (and SciPy).

Run it as a script (asv imports this directory, so nothing runs on import)::

    python benchmarks/linkage_side_by_side.py [--n 20000] [--d 16] [--methods single,ward,complete,average]
        [--repeats 3] [--scipy] [--memory-n 50000]

Every contender gets the same float64 data (Gaussian blobs). fastcluster is called as its users
call it: ``linkage_vector`` for single and ward, ``linkage`` for complete and average; SciPy is
``scipy.cluster.hierarchy.linkage``. Both go through the same timed cycle as the project's
backends, so every row times the same span (the backend's ``run()``: the whole linkage, Z
included). Contenders are interleaved in rotating order within each repeat, so a burst of load
from other processes hits them alike; the table shows medians and, in brackets, min-max. The
ratio column divides fastcluster's median by the row's. Peak memory is the peak resident set of
a fresh child process running one fit (data, libraries and interpreter included).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

METHODS = ("single", "ward", "complete", "average")


def blobs(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((32, d)) * 6
    return centers[rng.integers(0, 32, n)] + rng.standard_normal((n, d))


def one_fit(name: str, X, method: str, threads: int) -> float:
    """One fit of backend ``name`` on X, through the harness; returns the timed seconds.

    numba's rows are forced to their thread count (``parallel=``), so that a row labelled
    numba@2 does run two threads whatever its warm-up probe would choose.
    """
    import kmbench

    options = {"parallel": threads > 1} if name == "numba" else {}
    result = kmbench.linkage(X, method, backend=name, threads=threads, **options)
    return result.timings["fit"]


def peak_memory(name: str, n: int, d: int, method: str, threads: int) -> float:
    """Peak resident MiB of a fresh process that makes the data and runs one fit."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent (which may have
    # held a matrix); VmHWM belongs to the new address space.
    code = (
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from benchmarks.linkage_side_by_side import blobs, one_fit\n"
        f"X = blobs({n}, {d})\n"
        f"one_fit({name!r}, X, {method!r}, {threads})\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(int(hwm.split()[1]) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="1,2", help="thread counts for the numba rows (fastcluster is serial)")
    parser.add_argument("--scipy", action="store_true", help="add SciPy's linkage (slow: 20 s for ward at n=20000)")
    parser.add_argument("--memory-n", type=int, default=50_000,
                        help="n for the peak-memory table (single and ward, O(n*d) backends); 0 skips it")
    parser.add_argument("--json", type=Path, help="also write the medians here")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    threads = [int(t) for t in args.threads.split(",")]

    from kmbench.core.cpu import describe as describe_cpu

    X = blobs(args.n, args.d)
    print(f"# linkage side by side: n={args.n}, d={args.d}, float64, {args.repeats} repeats, interleaved")
    print(f"# CPU: {describe_cpu()}; {len(__import__('os').sched_getaffinity(0))} cores available; "
          f"load average {' '.join(f'{v:.1f}' for v in __import__('os').getloadavg())}")
    contenders = [(f"numba@{t}", "numba", t) for t in threads] + [("fastcluster", "fastcluster", 1)]
    if args.scipy:
        contenders.append(("scipy", "scipy", 1))
    # A first small fit per contender pays imports and JIT compilation outside the table.
    for _, name, t in contenders:
        for method in methods:
            one_fit(name, X[:50], method, t)
    summary = {}
    for method in methods:
        times = {label: [] for label, _, _ in contenders}
        for rep in range(args.repeats):
            order = contenders[rep % len(contenders):] + contenders[:rep % len(contenders)]
            for label, name, t in order:
                times[label].append(one_fit(name, X, method, t))
        base = statistics.median(times["fastcluster"])
        print(f"\n{method:>8}  {'median s':>9}  {'[min-max]':>15}  {'fastcluster / row':>18}")
        for label, _, _ in contenders:
            med = statistics.median(times[label])
            print(f"{'':>8}  {label:<12} {med:8.3f}  [{min(times[label]):.3f}-{max(times[label]):.3f}]  {base / med:8.2f}x")
            summary.setdefault(method, {})[label] = {"median": med, "min": min(times[label]), "max": max(times[label])}
    if args.memory_n:
        print(f"\n# peak resident memory of one fit, n={args.memory_n}, d={args.d} (fresh process; "
              f"includes interpreter, libraries and data of {args.memory_n * args.d * 8 / 2**20:.1f} MiB)")
        for method in ("single", "ward"):
            for label, name, t in contenders:
                if name == "scipy":
                    continue
                mib = peak_memory(name, args.memory_n, args.d, method, t)
                print(f"{method:>8}  {label:<12} {mib:8.0f} MiB")
                summary.setdefault("peak_mib", {}).setdefault(method, {})[label] = mib
    if args.json:
        args.json.write_text(json.dumps({"n": args.n, "d": args.d, "cpu": describe_cpu(), "results": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
