"""Side by side: ms per Lloyd iteration of every project backend and of scikit-learn, scikit-learn-intelex and faiss.

Run it as a script (asv imports this directory, so nothing runs on import)::

    python benchmarks/side_by_side.py [--shapes 100000,32,64 ...] [--repeats 5] [--threads N] [--quick]

Every contender gets the same float32 data, the same initial centres and 10 fixed
iterations at the same thread count. Project backends run through ``kmbench.fit``;
scikit-learn, scikit-learn-intelex and faiss are called directly as users call them. The main table divides
each whole call, as a user's stopwatch sees it (validation, copies, the final
assignment and inertia included), by the iterations it ran; a second table shows the
project's ``timings["per_iter"]``, the timed iterations alone. Cells are medians of the
repeats (so the first call's JIT compile drops out); a backend that cannot serve a
shape shows its skip reason. The arithmetic floor is ``2 n k d`` flops at the sgemm rate
measured in the same run.
Shapes measured while other processes or the hypervisor took a quarter of a CPU or more
(``kmbench.bench.machine.OtherLoad``) are named at the end: their ratios are suspect.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

#: the shapes of issue 6: (n, d, k)
SHAPES = [(100_000, 32, 64), (200_000, 64, 256), (1_000_000, 16, 16), (50_000, 128, 1024)]
QUICK_SHAPES = [(20_000, 16, 16), (20_000, 64, 256)]
ITERATIONS = 10
#: project backends that wrap a peer library: shown, but not counted as "project best"
WRAPPERS = ("sklearn", "sklearnex", "faiss", "dask-ml")
#: extra rows beside a backend's default: numba's two strategies forced (beside the plan's choice),
#: torch-cuda's sums in a fixed order (beside index_add_'s atomics)
VARIANTS = {"numba[fused]": ("numba", {"strategy": "fused"}), "numba[gemm]": ("numba", {"strategy": "gemm"}),
            "torch-cuda[deterministic]": ("torch-cuda", {"deterministic": True})}


def parse_shape(text: str):
    try:
        n, d, k = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {text!r} should be n,d,k (e.g. 100000,32,64)") from None
    if min(n, d, k) < 1 or k > n:
        raise argparse.ArgumentTypeError(f"shape {text!r} needs n, d, k >= 1 and k <= n")
    return n, d, k


def sgemm_rate(threads: int, size: int = 4096, repeats: int = 5) -> float:
    """Median float32 matmul rate (flop/s) of ``size``-square matrices at ``threads`` BLAS threads."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(1)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    out = np.empty_like(a)
    with threadpool_limits(threads):
        np.matmul(a, b, out=out)
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            runs.append(time.perf_counter() - t0)
    return 2 * size ** 3 / statistics.median(runs)


def project_run(name, options, X, C, threads):
    """ms per iteration of the whole kmbench.fit call, its iterations, dtype, and its
    ``timings["per_iter"]`` in ms; or the reason the backend cannot run."""
    import kmbench
    from kmbench.core.kmeans import BackendUnavailable

    try:
        t0 = time.perf_counter()
        result = kmbench.fit(X, C.shape[0], backend=name, init=C, max_iter=ITERATIONS, tol=-1.0,
                             threads=threads, **options)
        elapsed = time.perf_counter() - t0
    except BackendUnavailable as exc:
        return str(exc).split(": ", 1)[-1]
    return 1e3 * elapsed / result.n_iter, result.n_iter, result.dtype, 1e3 * result.timings["per_iter"]


def sklearn_run(X, C, threads):
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    model = KMeans(n_clusters=C.shape[0], init=C, n_init=1, max_iter=ITERATIONS, tol=0.0, algorithm="lloyd")
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        model.fit(X)
        elapsed = time.perf_counter() - t0
    # scikit-learn stops once labels repeat, even at tol=0: divide by the iterations it ran.
    return 1e3 * elapsed / model.n_iter_, int(model.n_iter_), "float32"


def sklearnex_run(X, C, threads):
    """scikit-learn-intelex's KMeans (oneDAL) as its users call it; it stops once labels repeat."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearnex.cluster import KMeans
    from threadpoolctl import threadpool_limits

    # oneDAL runs on TBB, whose pool threadpoolctl does not limit: sklearnex's n_jobs does.
    model = KMeans(n_clusters=C.shape[0], init=C, n_init=1, max_iter=ITERATIONS, tol=0.0, algorithm="lloyd",
                   n_jobs=threads)
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        model.fit(X)
        elapsed = time.perf_counter() - t0
    return 1e3 * elapsed / model.n_iter_, int(model.n_iter_), str(X.dtype)


def faiss_run(X, C, threads):
    import faiss

    faiss.omp_set_num_threads(threads)
    n, d = X.shape
    # max_points_per_centroid=n: no subsampling, every point in every iteration.
    km = faiss.Kmeans(d, C.shape[0], niter=ITERATIONS, max_points_per_centroid=n, min_points_per_centroid=1,
                      seed=0, verbose=False)
    t0 = time.perf_counter()
    km.train(X, init_centroids=C)
    elapsed = time.perf_counter() - t0
    return 1e3 * elapsed / ITERATIONS, ITERATIONS, "float32"


def contenders(names):
    """(row label, callable(X, C, threads)) for every project backend, variant and peer."""
    import importlib.util

    rows = []
    for name in names:
        rows.append((name, lambda X, C, t, name=name: project_run(name, {}, X, C, t)))
        for label, (base, options) in VARIANTS.items():
            if base == name:
                rows.append((label, lambda X, C, t, base=base, options=options: project_run(base, options, X, C, t)))
    rows.append(("scikit-learn (direct)", sklearn_run))
    if importlib.util.find_spec("sklearnex") is not None:
        rows.append(("scikit-learn-intelex (direct)", sklearnex_run))
    if importlib.util.find_spec("faiss") is not None:
        rows.append(("faiss (direct)", faiss_run))
    return rows


def fmt(cell) -> str:
    if isinstance(cell, str):
        return "skip: " + (cell if len(cell) <= 60 else cell[:57] + "...")
    ms, n_iter, dtype = cell[:3]
    extra = "" if n_iter == ITERATIONS else f" ({n_iter} it)"
    extra += "" if dtype == "float32" else f" [{dtype}]"
    return f"{ms:.1f}{extra}"


def main(argv=None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import impls
    import kmbench
    from kmbench.bench.machine import OtherLoad
    from kmbench.core.cpu import describe as describe_cpu
    from kmbench.core.seeding import initial_centers
    from kmbench.core.threads import default_threads

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", type=parse_shape, help="n,d,k triples (default: issue 6's four)")
    parser.add_argument("--quick", action="store_true", help="add two small shapes (seconds, for a smoke run)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="threads for everyone (default: all cores)")
    parser.add_argument("--backends", nargs="+", help="only these project backends (peers always run)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats} should be >= 1")
    threads = args.threads or default_threads()
    shapes = list(args.shapes or SHAPES) + (QUICK_SHAPES if args.quick else [])
    names = args.backends or list(impls.REGISTRY)
    unknown = [name for name in names if name not in impls.REGISTRY]
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(impls.REGISTRY)}")

    print(f"machine: {describe_cpu()}, {os.cpu_count()} logical CPUs; threads: {threads}; repeats: {args.repeats}; "
          f"load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    rate = sgemm_rate(threads)
    print(f"sgemm rate: {rate / 1e9:.0f} GFLOP/s (4096^3 float32, median of 5)", flush=True)

    rows = contenders(names)
    table = {label: {} for label, _ in rows}
    timed = {label: {} for label, _ in rows}
    loads = {}
    for n, d, k in shapes:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n, d), dtype=np.float32)
        C = initial_centers(X, k, "random", seed=0).astype(np.float32)
        # what other processes took of the CPUs meanwhile: a busy machine's timings are flagged
        with OtherLoad() as loads[(n, d, k)]:
            for label, run in rows:
                runs = []
                for _ in range(args.repeats):
                    cell = run(X, C, threads)
                    if isinstance(cell, str):
                        runs = cell
                        break
                    runs.append(cell)
                if isinstance(runs, str):
                    table[label][(n, d, k)] = runs
                else:
                    table[label][(n, d, k)] = (statistics.median(r[0] for r in runs), runs[0][1], runs[0][2])
                    if len(runs[0]) > 3:
                        timed[label][(n, d, k)] = statistics.median(r[3] for r in runs)
                print(f"  {n}x{d} k={k} {label}: {fmt(table[label][(n, d, k)])}", file=sys.stderr, flush=True)

    heads = [f"{n // 1000}k, {d}, {k}" for n, d, k in shapes]
    print("\nms per iteration of the whole call (median of repeats), float32 unless marked:\n")
    print("| backend | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(shapes))
    for label, _ in rows:
        print(f"| {label} | " + " | ".join(fmt(table[label][s]) for s in shapes) + " |")
    timed_rows = [label for label, _ in rows if timed[label]]
    if timed_rows:
        print("\nthe project's timed iterations alone (timings['per_iter'], median of repeats):\n")
        print("| backend | " + " | ".join(heads) + " |")
        print("|---|" + "---|" * len(shapes))
        for label in timed_rows:
            cells = [f"{timed[label][s]:.1f}" if s in timed[label] else fmt(table[label][s]) for s in shapes]
            print(f"| {label} | " + " | ".join(cells) + " |")

    devices = {row["name"]: row["devices"] for row in kmbench.backends()}
    ratios, summary = [], {"project best": [], "peer best": [], "peer best / project best": [],
                           "arithmetic floor (2nkd at sgemm rate)": [], "project best, % of sgemm rate": []}
    peers = ("scikit-learn (direct)", "scikit-learn-intelex (direct)", "faiss (direct)")
    for shape in shapes:
        n, d, k = shape

        def best(labels):
            cells = [(table[lab][shape][0], lab) for lab in labels
                     if lab in table and not isinstance(table[lab][shape], str)
                     and table[lab][shape][2] == "float32"]
            return min(cells) if cells else (math.nan, "-")

        mine = best([lab for lab, _ in rows if lab not in peers and lab.split("[")[0] not in WRAPPERS])
        theirs = best(peers)
        floor = 1e3 * 2 * n * k * d / rate
        ratios.append(theirs[0] / mine[0])
        summary["project best"].append(f"{mine[0]:.1f} ({mine[1]})")
        summary["peer best"].append(f"{theirs[0]:.1f} ({theirs[1].removesuffix(' (direct)')})")
        summary["peer best / project best"].append(f"{ratios[-1]:.2f}x")
        summary["arithmetic floor (2nkd at sgemm rate)"].append(f"{floor:.1f}")
        # The floor is the CPU's: a GPU backend's share of it means nothing.
        on_gpu = "cpu" not in devices.get(mine[1].split("[")[0], ["cpu"])
        summary["project best, % of sgemm rate"].append("- (GPU)" if on_gpu else f"{100 * floor / mine[0]:.0f}%")
    print()
    print("| | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(shapes))
    for key, cells in summary.items():
        print(f"| {key} | " + " | ".join(cells) + " |")
    finite = [r for r in ratios if r > 0 and math.isfinite(r)]
    if finite:
        geo = math.exp(sum(math.log(r) for r in finite) / len(finite))
        print(f"\ngeometric mean of peer best / project best: {geo:.2f}x over {len(finite)} shapes")
    note = OtherLoad.busy_note({f"{n}x{d} k={k}": loads[n, d, k] for n, d, k in shapes})
    if note:
        print(note)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
