"""The wider side by side: numba against scikit-learn, scikit-learn-intelex and faiss across shape classes.

Run it as a script (asv imports this directory, so nothing runs on import)::

    python benchmarks/wide_side_by_side.py [--quick] [--repeats 3] [--threads N] [--shapes n,d,k[,float64] ...]
    python benchmarks/wide_side_by_side.py --random 16 --seed 11    # shapes drawn from the classes
    python benchmarks/wide_side_by_side.py --as-avx2                # everyone limited to AVX2

Shapes cover d from 2 to 512 (d <= 4 included), k from 2 to 4096, n from 20k to 2M, float32
and float64, and a real photo's pixels (colour quantisation of scikit-learn's bundled
``china.jpg``, 273,280 x 3). Every contender gets the same data, the same initial centres
and 10 iterations (scikit-learn and scikit-learn-intelex stop earlier if the labels repeat:
their cells divide by the iterations they ran) at the same thread count, interleaved
within each repeat so load on the machine hits everyone alike, after one untimed call each
(numba measures its plan for a new shape class there, once per machine), with a pause
before each call so the previous library's spinning worker threads do not slow the next. The first table is the whole
call as a user's stopwatch sees it, per iteration; then the project's timed iterations
(``timings["per_iter"]``) and the plan numba used. faiss computes in float32 only and is
left out of float64 shapes.

Ratios are peer / numba (above 1: numba is faster). The closing lines give the geometric
mean, the worst shapes, and numba's pass against two floors: its share of the sgemm rate
where the pass is compute-bound (2 n k d flops take longer at that rate than reading X at the
measured read rate), and its distance from the memory floor (reading X once at that rate)
where it is memory-bound. A pass is the fit's time over its passes: one per iteration and the
final assignment of the fitted centres (a timed iteration counts that last pass in too).
At small d the "compute" floor is out of reach: a pass there does as many compares and
selects, k per row, as multiply-adds, which the 2 n k d flops do not count.

Each shape's measurement also records what other processes and the hypervisor took of the
CPUs meanwhile (``kmbench.bench.machine.OtherLoad``); shapes measured while they took a
quarter of a CPU or more are named at the end of the table: on a shared machine such a
shape's ratio says as much about the neighbours as about the code (one run of this session,
next to a profiling script, put numba at 0.94x at 20946 x 211, k=461; alone it ran 1.37x).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from side_by_side import faiss_run, sgemm_rate, sklearn_run, sklearnex_run  # noqa: E402

#: (label, n, d, k, dtype); "photo" rows are the pixels of china.jpg, n ignored
SHAPES = [
    ("2M,2,8", 2_000_000, 2, 8, "float32"),
    ("2M,3,5", 2_000_000, 3, 5, "float32"),
    ("1M,4,64", 1_000_000, 4, 64, "float32"),
    ("photo,3,64", 0, 3, 64, "float32"),
    ("500k,8,32", 500_000, 8, 32, "float32"),
    ("1M,16,16", 1_000_000, 16, 16, "float32"),
    ("100k,32,64", 100_000, 32, 64, "float32"),
    ("200k,64,256", 200_000, 64, 256, "float32"),
    ("50k,128,1024", 50_000, 128, 1024, "float32"),
    ("100k,300,100", 100_000, 300, 100, "float32"),
    ("20k,256,2048", 20_000, 256, 2048, "float32"),
    ("20k,64,4096", 20_000, 64, 4096, "float32"),
    ("50k,512,2", 50_000, 512, 2, "float32"),
    ("1M,3,8 f64", 1_000_000, 3, 8, "float64"),
    ("photo,3,16 f64", 0, 3, 16, "float64"),
    ("200k,32,64 f64", 200_000, 32, 64, "float64"),
    ("50k,128,512 f64", 50_000, 128, 512, "float64"),
]
QUICK = ["2M,3,5", "photo,3,64", "100k,32,64", "200k,64,256", "20k,256,2048", "200k,32,64 f64"]
ITERATIONS = 10
#: seconds between two contenders' calls, for the last one's spinning threads to sleep
PAUSE = 0.3


def photo_pixels(dtype: str) -> np.ndarray:
    """china.jpg's pixels as (273280, 3) in [0, 1], as a colour-quantisation user would pass them."""
    from sklearn.datasets import load_sample_image

    image = load_sample_image("china.jpg")
    return (image.reshape(-1, 3) / 255.0).astype(dtype)


def numba_run(X, C, threads):
    import kmbench

    t0 = time.perf_counter()
    result = kmbench.fit(X, C.shape[0], backend="numba", init=C, max_iter=ITERATIONS, tol=-1.0, threads=threads)
    elapsed = time.perf_counter() - t0
    plan = result.info.get("plan", {})
    panels = ", from panels" if result.info.get("panels") else ""
    how = {"fused": f"{result.info.get('tile')}{panels}", "grouped": f"{result.info.get('tile')}, argmin by groups",
           "pruned": f"{result.info.get('tile')}, rows and centres in space",
           "gemm": "BLAS blocks", "rowdot": "rows four at a time",
           "stream": f"blocks of {result.info.get('block_rows')} rows"}
    return (1e3 * elapsed / result.n_iter, result.n_iter, result.dtype, 1e3 * result.timings["per_iter"],
            f"{result.info['strategy']} ({plan.get('source', '?').split(' ')[0]}), {how[result.info['strategy']]}")


def memory_rate(threads: int, megabytes: int = 512, repeats: int = 5) -> float:
    """Median bytes/s that numba's threads read summing a large float32 array: the rate at which
    a pass can stream X, the memory floor's rate."""
    from numba import njit, prange, set_num_threads

    @njit(parallel=True, fastmath=True)
    def total(a):
        s = 0.0
        for i in prange(a.shape[0]):
            s += a[i]
        return s

    set_num_threads(max(1, threads))
    a = np.ones(megabytes << 18, dtype=np.float32)
    total(a)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        total(a)
        runs.append(time.perf_counter() - t0)
    return a.nbytes / statistics.median(runs)


def isa() -> str:
    from impls.numba_plan import cpu_features, host_isa

    return f"numba tile for {host_isa(cpu_features())}"


def peer_kernels(peers) -> str:
    """The kernels the peers' libraries chose on this machine, and the variables that chose
    them: OpenBLAS picks by its own CPU table (``OPENBLAS_CORETYPE`` overrides it), faiss by
    its SIMD level. A peer's speed depends on them as much as on the CPU."""
    from threadpoolctl import threadpool_info

    if "faiss" in peers:
        import faiss  # loads its own OpenBLAS, for threadpoolctl to see
    import sklearn.cluster  # noqa: F401  (SciPy's OpenBLAS)

    blas = sorted({f"{i['internal_api']} {i.get('version')} {i.get('architecture')}" for i in threadpool_info()
                   if i["user_api"] == "blas"})
    parts = [", ".join(blas)]
    if "faiss" in peers:
        level = faiss.SIMDConfig.get_level_name() if hasattr(faiss, "SIMDConfig") else "its build's"
        parts.append(f"faiss {faiss.__version__} at {level}")
    chosen = [f"{name}={os.environ[name]}" for name in ("OPENBLAS_CORETYPE", "MKL_ENABLE_INSTRUCTIONS",
                                                        "FAISS_OPT_LEVEL", "FAISS_SIMD_LEVEL") if name in os.environ]
    return "kernels: " + "; ".join(parts) + (f" (set: {', '.join(chosen)})" if chosen else "")


def parse_shape(text: str):
    """``n,d,k[,float64]``, or ``photo,k[,float64]``: the photo's pixels quantised to k colours."""
    parts = text.split(",")
    photo = parts[0] == "photo"
    if photo:  # n = 0, as in SHAPES: the photo's pixels
        parts = ["0", "3"] + parts[1:]
    try:
        n, d, k = (int(v) for v in parts[:3])
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {text!r} should be n,d,k[,float64] or photo,k[,float64]") from None
    dtype = parts[3] if len(parts) > 3 else "float32"
    if dtype not in ("float32", "float64") or min(d, k) < 1 or (not photo and not 1 <= k <= n):
        raise argparse.ArgumentTypeError(f"shape {text!r} needs n, d, k >= 1, k <= n, dtype float32 or float64")
    return (text, n, d, k, dtype)


#: the classes random shapes are drawn from (log-uniform): the ranges the fixed shapes cover
RANDOM_N, RANDOM_D, RANDOM_K = (20_000, 2_000_000), (2, 512), (2, 4096)
#: n x d x k at most this, so that one shape takes under a minute for all four libraries
RANDOM_MAX_WORK = 2e10
#: share of random shapes in float64
RANDOM_FLOAT64 = 0.25


def random_shapes(count: int, seed: int) -> list[tuple]:
    """``count`` shapes drawn log-uniformly from the classes, none of them tuned on: the check
    that the numbers above hold beyond the shapes they were measured at."""
    rng = np.random.default_rng(seed)
    shapes = []
    while len(shapes) < count:
        n = int(math.exp(rng.uniform(math.log(RANDOM_N[0]), math.log(RANDOM_N[1]))))
        d, k = (round(math.exp(rng.uniform(math.log(lo), math.log(hi)))) for lo, hi in (RANDOM_D, RANDOM_K))
        if n * d * k > RANDOM_MAX_WORK or k >= n:
            continue
        dtype = "float64" if rng.uniform() < RANDOM_FLOAT64 else "float32"
        label = f"{n},{d},{k}" + (",float64" if dtype == "float64" else "")
        shapes.append((label, n, d, k, dtype))
    return shapes


#: set in the process ``--as-avx2`` runs itself again in
AS_AVX2 = "KMBENCH_AS_AVX2"


def avx2_environment() -> dict[str, str]:
    """Variables under which every contender computes as on a CPU without AVX-512: Numba for
    x86-64-v3 with this CPU's features less AVX-512 and AMX, oneDAL's MKL dispatching AVX2 (its
    KMeans took 72 -> 115 ms per iteration at 50k x 128 x 1024 under it, Emerald Rapids),
    OpenBLAS (NumPy's, SciPy's, scikit-learn's, faiss's) its Haswell kernels, faiss its AVX2
    code (``FAISS_OPT_LEVEL`` picks the build of faiss before 1.12; ``FAISS_SIMD_LEVEL`` the
    level of the one dynamically dispatching build since: at 146213 x 13 x 4049 on Zen 5 it
    took 93 ms per iteration under AVX2, 48 under AVX-512). Caches and timings stay this CPU's: a stand-in for another instruction set, not
    for another microarchitecture."""
    import llvmlite.binding as ll

    wide = ("avx512", "amx", "avx10", "evex512")
    features = ",".join(("+" if on and not name.startswith(wide) else "-") + name
                        for name, on in ll.get_host_cpu_features().items())
    return {"NUMBA_CPU_NAME": "x86-64-v3", "NUMBA_CPU_FEATURES": features, "MKL_ENABLE_INSTRUCTIONS": "AVX2",
            "OPENBLAS_CORETYPE": "Haswell", "FAISS_OPT_LEVEL": "avx2", "FAISS_SIMD_LEVEL": "AVX2", AS_AVX2: "1"}


def main(argv=None) -> int:
    import importlib.util

    from kmbench.bench.machine import OtherLoad
    from kmbench.core.cpu import describe as describe_cpu
    from kmbench.core.seeding import initial_centers
    from kmbench.core.threads import default_threads

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--shapes", nargs="+", type=parse_shape, help="n,d,k[,float64] or photo,k[,float64] (default: the classes above)")
    parser.add_argument("--random", type=int, metavar="COUNT",
                        help="COUNT shapes drawn at random from the classes (see --seed) instead")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random (default 0)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="threads for everyone (default: all cores)")
    parser.add_argument("--as-avx2", action="store_true",
                        help="every contender limited to AVX2, as on a CPU without AVX-512 (runs itself again)")
    args = parser.parse_args(argv)
    if args.as_avx2 and os.environ.get(AS_AVX2) != "1":
        # the libraries read these as they load, and NumPy's OpenBLAS is loaded already
        rest = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--as-avx2"]
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), "--as-avx2", *rest],
                  {**os.environ, **avx2_environment()})
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats} should be >= 1")
    threads = args.threads or default_threads()
    if args.random is not None and (args.random < 1 or args.shapes or args.quick):
        parser.error(f"--random={args.random} should be >= 1, without --shapes or --quick")
    shapes = (random_shapes(args.random, args.seed) if args.random
              else args.shapes or [s for s in SHAPES if not args.quick or s[0] in QUICK])

    peers = [("scikit-learn", sklearn_run)]
    if importlib.util.find_spec("sklearnex") is not None:
        peers.append(("sklearnex", sklearnex_run))
    if importlib.util.find_spec("faiss") is not None:
        peers.append(("faiss", faiss_run))
    names = ["numba"] + [name for name, _ in peers]
    runners = dict([("numba", numba_run)] + peers)

    if args.as_avx2:
        print("as a CPU without AVX-512: " + ", ".join(f"{k}={v}" for k, v in avx2_environment().items()
                                                        if k not in ("NUMBA_CPU_FEATURES", AS_AVX2)))
    print(f"machine: {describe_cpu()}, {os.cpu_count()} logical CPUs; {isa()}; threads: {threads}; repeats: {args.repeats}; "
          f"load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    print(peer_kernels(names), flush=True)
    rate = sgemm_rate(threads)
    memory = memory_rate(threads)
    print(f"sgemm rate: {rate / 1e9:.0f} GFLOP/s (4096^3 float32, median of 5); memory read rate: "
          f"{memory / 1e9:.1f} GB/s (parallel sum of 512 MiB, median of 5)", flush=True)

    cells, timed, passes, plans, loads = {}, {}, {}, {}, {}
    for label, n, d, k, dtype in shapes:
        X = photo_pixels(dtype) if label.startswith("photo") else \
            np.random.default_rng(0).standard_normal((n, d)).astype(dtype)
        C = initial_centers(X, k, "random", seed=0).astype(dtype)
        runs = {name: [] for name in names}
        # what other processes took of the CPUs meanwhile: a busy machine's timings are flagged
        with OtherLoad() as loads[label]:
            for repeat in range(-1, args.repeats):
                for name in names:
                    if name == "faiss" and dtype != "float32":
                        continue
                    # The peers' OpenMP and TBB workers spin for a while after a call, on the
                    # cores the next contender needs; a user runs one library, not four in turn.
                    time.sleep(PAUSE)
                    result = runners[name](X, C, threads)
                    if repeat >= 0:  # repeat -1: one untimed call each (numba's plan, lazy set-up)
                        runs[name].append(result)
        for name in names:
            if runs[name]:
                cells[label, name] = (statistics.median(r[0] for r in runs[name]), runs[name][0][1])
        timed[label] = statistics.median(r[3] for r in runs["numba"])
        # the fit's passes: one per iteration and the final assignment of the fitted centres
        passes[label] = statistics.median(r[3] * r[1] / (r[1] + 1) for r in runs["numba"])
        plans[label] = runs["numba"][-1][4]
        print(f"  {label}: " + ", ".join(f"{name} {cells[label, name][0]:.2f}" for name in names
                                         if (label, name) in cells)
              + (f" (busy: {loads[label]})" if loads[label].busy else ""), file=sys.stderr, flush=True)

    print("\nms per iteration of the whole call (median of repeats; (it) = iterations run when fewer than 10):\n")
    print("| shape (n, d, k) | dtype | " + " | ".join(names) + " | best peer / numba | numba timed iter | numba plan |")
    print("|---|---|" + "---|" * (len(names) + 3))
    ratios, rows = {}, []
    for label, n, d, k, dtype in shapes:
        n = n or photo_pixels("float32").shape[0]
        row = []
        for name in names:
            if (label, name) not in cells:
                row.append("-")
                continue
            ms, it = cells[label, name]
            row.append(f"{ms:.2f}" + ("" if it == ITERATIONS else f" ({it} it)"))
        best = min((cells[label, p][0], p) for p, _ in peers if (label, p) in cells)
        ratios[label] = best[0] / cells[label, "numba"][0]
        print(f"| {label} | {dtype} | " + " | ".join(row) + f" | {ratios[label]:.2f}x ({best[1]}) | "
              f"{timed[label]:.2f} | {plans[label]} |")
        rows.append((label, n, d, k, dtype))

    note = OtherLoad.busy_note(loads)
    if note:
        print("\n" + note)

    # Measured again at the end: on a shared machine the faster of the two is nearer the truth.
    rate = max(rate, sgemm_rate(threads))
    memory = max(memory, memory_rate(threads))
    print(f"\nsgemm and memory rates, the faster of the start and the end: {rate / 1e9:.0f} GFLOP/s, "
          f"{memory / 1e9:.1f} GB/s")
    geo = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios))
    worst = sorted(ratios.items(), key=lambda kv: kv[1])[:3]
    print(f"\ngeometric mean of best peer / numba (whole calls): {geo:.2f}x over {len(ratios)} shapes; "
          f"numba at or under the best peer at {sum(r >= 1 for r in ratios.values())} of {len(ratios)}")
    print("worst: " + "; ".join(f"{label} {r:.2f}x" for label, r in worst))
    print("\nnumba's pass against the floors (a pass: the fit's time over its iterations and its final "
          "assignment):\n")
    print("| shape | bound | floor (ms) | numba timed iter (ms) | numba pass (ms) | share |")
    print("|---|---|---|---|---|---|")
    for label, n, d, k, dtype in rows:
        itemsize = np.dtype(dtype).itemsize
        compute = 2 * n * k * d / rate * (2 if dtype == "float64" else 1)
        stream = n * d * itemsize / memory
        if compute > stream:
            print(f"| {label} | compute ({'dgemm ~ sgemm/2' if dtype == 'float64' else 'sgemm'}) | {1e3 * compute:.2f} "
                  f"| {timed[label]:.2f} | {passes[label]:.2f} | {100 * 1e3 * compute / passes[label]:.0f}% of the rate |")
        else:
            print(f"| {label} | memory (read X once) | {1e3 * stream:.2f} | {timed[label]:.2f} | {passes[label]:.2f} "
                  f"| {passes[label] / (1e3 * stream):.1f}x the floor |")
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
