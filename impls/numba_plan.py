"""How ``impls.numba_fused`` runs on this machine: the tile for the CPU, and the strategy per shape class.

Two decisions, neither made by a machine's name:

tile
    From the instruction set Numba compiles for (``NUMBA_CPU_FEATURES`` if set, else the host
    CPU's features as LLVM reads them): ``avx512`` (32 vector registers of 512 bits) where the
    CPU has AVX-512F and VL, else ``avx2`` (16 registers; also the safe shape for older CPUs,
    since every tile is plain code that Numba compiles for the host).
plan
    ``fused``, ``grouped``, ``pruned``, ``gemm``, ``rowdot`` or ``stream`` for a (dtype, n class,
    d class, k class) on this machine and thread count, measured once, briefly, on the first
    call's own rows, and kept on disk in ``$KMBENCH_CACHE/numba-plans.json`` (default
    ``~/.cache/kmbench``) like FFTW's wisdom; later calls with the same kernels (their source's
    hash is part of the key) reuse it. Only classes where another strategy can win are measured:
    BLAS where d >= 64 or k >= 512 (and at k >= 512 the grouped tile up to d = 64, the pruned
    tile up to d = 8), the stream pass where d <= 16 and k <= 128, and small shapes (n x d x k <= ``SMALL_WORK``), whose
    plan also times its winner on one thread (see ``wake_seconds``); elsewhere the fused tile is
    taken without measuring (BLAS blocks of a thin product lose to it by 1.2-10x). In a measured
    class with k <= 128 and d > 8 the fused tile from panels, a transposed copy of X, races the
    tile without. A race
    times each strategy's first pass (every row added to the sums), a later pass where the
    strategy moves only rows whose label changed (here none: after a fit's first passes few
    are), and any copy of X it makes once per fit, and picks the least cost of a fit of
    ``PLAN_PASSES`` passes; where the two best are close, a longer runoff between them decides
    (``runoff``). Plans are made in ``prepare``, never inside the timed ``run``.
"""
from __future__ import annotations

import functools
import json
import os
import statistics
import time
from pathlib import Path

#: classes where the BLAS strategy is measured against the fused tile
MEASURE_MIN_D = 64
MEASURE_MIN_K = 512
#: arithmetic a measurement's sample aims at (2 n k d flops): ~10-50 ms per pass on a 2-core machine
SAMPLE_FLOP = 2e9
MIN_SAMPLE_ROWS = 4096
#: n x d x k up to which the fused tile's class is measured too, though no other strategy can
#: win there: a pass this small may be faster on one thread than the wake-up of the others
SMALL_WORK = 1 << 25
#: seconds of idleness before the wake-up is measured: long enough for idle CPUs to sleep
WAKE_IDLE_S = 0.25
WAKE_TRIALS = 8
#: regions timed in a row after each idle spell. One: four counted a late second region too
#: (6.9 + 4.0 ms after 300 ms idle, Emerald Rapids VM), which took one thread for the photo at
#: k = 16 in float64, and its whole fits went from 1.24 to 1.93 ms per iteration in runs where
#: the second region was not late; the stall comes and goes on this VM
WAKE_REGIONS = 1
#: passes a plan chooses for: a fit of 10 iterations and its final assignment. A strategy
#: that first copies X (the fused tile's panels, the stream pass's blocks) pays the copy once
#: per fit, so its race time is its pass plus 1/PLAN_PASSES of its copy (at 395740 x 84, k=3
#: the fused tile's pass was 15% faster than rowdot's on some runs and lost the whole fit:
#: its panels took 14 ms, more than a pass, Zen 4)
PLAN_PASSES = 11
#: class bounds: a shape belongs to the first bound >= its d (or k). Up to 16 features each d is
#: a class of its own: there which strategy wins changes from one d to the next (the tile copies
#: its rows by vector blocks only where they divide d, the stream pass's cost grows with d). Whole
#: fits, timed iterations, float32, 2 threads, Intel Xeon (AVX-512): the stream pass against the
#: fused tile 4.8 against 9.4 ms at 1M x 12, k=16 and 4.8 against 8.7 at 951944 x 11, k=20, but
#: the tile won at 1M x 16, k=16 (4.1 against 6.1 ms a pass in the plan's race), the shape that
#: had decided for the whole class of 9 <= d <= 16.
D_CLASSES = tuple(range(1, 17)) + (32, 64, 128, 256, 512)
K_CLASSES = (8, 32, 128, 512, 2048, 8192)
#: n classes: a sample of a few thousand rows runs from the caches and pays each call's
#: overhead, so it must not decide for a pass that streams X from memory (a plan measured
#: at n=1,000 chose the fused tile at 388k x 103, k=11, where it ran 1.5x slower)
N_CLASSES = (16_384, 262_144)
_wide_slp = False
_stamp = None


@functools.lru_cache(maxsize=1)
def cpu_features() -> dict[str, bool]:
    """The features Numba compiles for: ``NUMBA_CPU_FEATURES`` if set, else the host's (read once:
    asking LLVM takes a quarter of a millisecond)."""
    from numba.core import config

    if config.CPU_FEATURES:
        return {f[1:]: f[0] == "+" for f in config.CPU_FEATURES.split(",") if f}
    import llvmlite.binding as ll

    return dict(ll.get_host_cpu_features())


#: bytes of one vector register, by instruction set
VECTOR_BYTES = {"avx2": 32, "avx512": 64}


def host_isa(features: dict[str, bool] | None = None) -> str:
    """``"avx512"`` where the compile target has AVX-512F and VL (and 512-bit EVEX), else ``"avx2"``."""
    features = cpu_features() if features is None else features
    wide = features.get("avx512f") and features.get("avx512vl") and features.get("evex512", True)
    return "avx512" if wide else "avx2"


def use_wide_vectors(isa: str) -> None:
    """Let LLVM's SLP vectoriser pack 512-bit vectors on AVX-512 hosts, once per process.

    LLVM's tuning for several AVX-512 cores (Intel server parts) prefers 256-bit vectors,
    which would split a 2-zmm-wide tile into four ymm registers and spill its accumulators.
    The option only affects the SLP vectoriser, which Numba runs only inside
    ``numba_kernels.slp_vectorize``, i.e. for these kernels.
    """
    global _wide_slp
    if isa != "avx512" or _wide_slp:
        return
    import llvmlite.binding as ll

    ll.set_option("kmbench", "-slp-max-reg-size=512")
    _wide_slp = True


def cache_path() -> Path:
    root = os.environ.get("KMBENCH_CACHE") or Path.home() / ".cache" / "kmbench"
    return Path(root) / "numba-plans.json"


def kernels_stamp() -> str:
    """A short hash of the kernels' source, Numba's version and the plan's rule: plans measured
    with other kernels, or chosen by another rule, are not reused."""
    global _stamp
    if _stamp is None:
        import hashlib

        import numba

        # the rule's inputs: the passes a fit is chosen for, and which strategies a race has
        digest = hashlib.sha1(f"{numba.__version__} passes={PLAN_PASSES} moved={MOVED_SHARE} raced=panels past d=8, later passes".encode())
        for name in ("numba_tiles.py", "numba_stream.py", "numba_rowdot.py", "numba_kernels.py", "numba_pruned.py"):
            digest.update((Path(__file__).parent / name).read_bytes())
        _stamp = digest.hexdigest()[:10]
    return _stamp


@functools.lru_cache(maxsize=None)
def machine_key(isa: str, threads: int) -> str:
    import llvmlite.binding as ll

    from kmbench.core.cpu import cpu_model

    return f"{cpu_model()}|{ll.get_host_cpu_name()}|{isa}|threads={threads}|kernels={kernels_stamp()}"


def shape_class(dtype: str, n: int, d: int, k: int) -> str:
    nc = next((f"n<={b}" for b in N_CLASSES if n <= b), f"n>{N_CLASSES[-1]}")
    dc = next((b for b in D_CLASSES if d <= b), D_CLASSES[-1] * 2)
    kc = next((b for b in K_CLASSES if k <= b), K_CLASSES[-1] * 2)
    return f"{dtype}|{nc}|d<={dc}|k<={kc}"


def needs_measuring(d: int, k: int) -> bool:
    return d >= MEASURE_MIN_D or k >= MEASURE_MIN_K


def small_work(n: int, d: int, k: int) -> bool:
    return n * d * k <= SMALL_WORK


def wake_seconds(isa: str, threads: int, region, pinned: bool) -> float:
    """What the first parallel regions after an idle spell cost beyond their work on this
    machine, measured once (about 2 seconds, mostly sleeping) and kept with the plans, apart
    for threads ``pinned`` or not (``impls.numba_placement``).

    On a bare machine it is tens of microseconds. On a VM it was 5-8 ms with the threads
    unpinned (Zen 4 and Emerald Rapids, 2 vCPUs: a 30 us region after 250 ms of idleness),
    more than a whole fit of a small shape, which is then faster on one thread
    (``NumbaKMeans`` decides per fit, from this and the plan's one-thread pass); pinned,
    0.2-0.3 ms (Emerald Rapids). The excess of ``WAKE_REGIONS`` regions in a row is counted.
    ``region()`` runs one small parallel region.
    """
    import numba

    from kmbench.core.threads import threading_layer

    # launches Numba's threads, running no region (which would wake them, the cost a
    # one-thread fit avoids), so that its layer, which decides what a late worker costs, is known
    numba.get_num_threads()
    key = (machine_key(isa, threads) + f"|wake over {WAKE_REGIONS} regions|{threading_layer()}"
           + ("|pinned" if pinned else ""))
    stored = load_plans().get(key)
    if isinstance(stored, dict) and isinstance(stored.get("wake_ms"), (int, float)):
        return stored["wake_ms"] / 1e3
    trials = []
    for _ in range(WAKE_TRIALS):
        warm = []
        for _ in range(3):
            t0 = time.perf_counter()
            region()
            warm.append(time.perf_counter() - t0)
        time.sleep(WAKE_IDLE_S)
        t0 = time.perf_counter()
        for _ in range(WAKE_REGIONS):
            region()
        trials.append(max(0.0, time.perf_counter() - t0 - WAKE_REGIONS * min(warm)))
    # the upper quartile: on a VM the cost comes and goes (0.1-0.6 ms in a process's first
    # second or in some spells, 5-8 ms in most, Zen 4 VM), and a fit called now and then meets
    # the larger; where waking is cheap, an outlier moves only fits shorter than itself
    wake = sorted(trials)[(3 * len(trials)) // 4]
    save_plan(key, {"wake_ms": round(1e3 * wake, 3)})
    return wake


_read: dict = {}


def load_plans() -> dict:
    """The wisdom file's plans, parsed again only when the file changed (a fit of a few
    milliseconds should not decode JSON each time)."""
    path = cache_path()
    try:
        stat = path.stat()
        stamp = (str(path), stat.st_mtime_ns, stat.st_size)
        if _read.get("stamp") != stamp:
            plans = json.loads(path.read_text())
            _read.update(stamp=stamp, plans=plans if isinstance(plans, dict) else {})
    except (OSError, ValueError):
        return {}
    return dict(_read["plans"])


def save_plan(key: str, plan: dict) -> None:
    """Add one plan to the wisdom file (read again just before writing, replaced atomically)."""
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        plans = load_plans()
        plans[key] = plan
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(plans, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs a measurement next time


def sample_rows(n: int, d: int, k: int) -> int:
    return int(min(n, max(MIN_SAMPLE_ROWS, SAMPLE_FLOP / (2 * k * d))))


#: what a later pass's moved rows cost, as a share of what adding every row costs a first pass
#: (its first pass less its later one, where none moved): a moved row is taken from one sum and
#: added to another, and a Lloyd fit from random rows moved 10% of the rows a pass on average
#: over passes 2-11 on Gaussian data (20k-200k rows, d 8-380, k 8-200), 2% on well-separated
#: blobs. Counted, the fused tile from panels, whose second pass over X adds the moved rows,
#: no longer won the race at 39948 x 380, k=31, float64 (12.1 against 13.2 ms per pass, none
#: moved) where its whole fits ran 1.2x slower than the broad tile's (float64, 2 threads,
#: Intel Xeon, AVX-512)
MOVED_SHARE = 0.1


def fit_cost(ms_per_pass: dict[str, float], copy_ms: dict[str, float],
             ms_first_pass: dict[str, float] | None = None) -> dict[str, float]:
    """Milliseconds per pass of a PLAN_PASSES-pass fit: each strategy's first pass (every row
    added to the sums; ``ms_first_pass``, default its later pass), PLAN_PASSES - 1 later passes
    (``ms_per_pass``, none moved, plus ``MOVED_SHARE`` of what its first pass spends adding rows)
    and its copy of X once."""
    first = ms_first_pass or {}
    cost = {}
    for name, ms in ms_per_pass.items():
        first_ms = first.get(name, ms)
        later = ms + MOVED_SHARE * max(0.0, first_ms - ms)
        cost[name] = (first_ms + (PLAN_PASSES - 1) * later + copy_ms.get(name, 0.0)) / PLAN_PASSES
    return cost


#: a race's two least costs within this share of each other: those two run again, longer.
#: A plan is kept for good, and a median of three on a VM whose speed comes and goes had
#: chosen the grouped tile at 41000 x 6, k=900 (4.40 against the fused tile's 4.69 ms), where
#: whole fits then ran 1.16x slower than with the fused tile (4.43 against 3.83 ms per
#: iteration, Zen 4); measured again, the race gave 3.05 against 3.81
RUNOFF_MARGIN = 0.15
RUNOFF_REPEATS = 7


def runoff(firsts: dict, laters: dict, ms_first_pass: dict[str, float], ms_per_pass: dict[str, float],
           copy_ms: dict[str, float]) -> list[str]:
    """Race again, ``RUNOFF_REPEATS`` times, the two strategies whose fit costs are within
    ``RUNOFF_MARGIN`` of each other (their first passes ``firsts`` and later ones ``laters``,
    where they differ), and put their new times in ``ms_first_pass`` and ``ms_per_pass``;
    returns their names (none if the race was clear)."""
    cost = fit_cost(ms_per_pass, copy_ms, ms_first_pass)
    close = sorted(cost, key=cost.get)[:2]
    if len(close) < 2 or cost[close[1]] > cost[close[0]] * (1 + RUNOFF_MARGIN):
        return []
    first = race({name: firsts[name] for name in close}, RUNOFF_REPEATS)
    later = race({name: laters[name] for name in close if name in laters}, RUNOFF_REPEATS)
    ms_first_pass.update({name: round(1e3 * t, 3) for name, t in first.items()})
    ms_per_pass.update({name: round(1e3 * later.get(name, t), 3) for name, t in first.items()})
    return close


def race(candidates: dict, repeats: int = 3) -> dict[str, float]:
    """Median seconds of each candidate (a pass, or a copy of X), run in turn (A, B, A, B, ...) after one untimed call."""
    for run in candidates.values():
        run()
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, run in candidates.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}
