"""Lloyd with Numba kernels: a fused distance+argmin+update pass, or BLAS blocks + a Numba argmin.

Six strategies, ``strategy="fused"``, ``"grouped"``, ``"pruned"``, ``"gemm"``, ``"rowdot"`` and
``"stream"``; by default a *plan* picks one per shape class on this machine (``impls.numba_plan``):

``fused``
    One parallel pass over X with rows in SIMD lanes, in a register tile shaped for the
    CPU's instruction set (``impls.numba_tiles``: 16 float32 rows x 6 centres for AVX2's
    16 registers, 32 x 8 for AVX-512's 32, where a broader tile of 32 x 10, and 16 x 12 in
    float64, races it: ``BROAD``): each thread takes a tile's rows as a transposed
    panel (kept at small d, filled by the first pass, else copied in the pass by vector shuffles),
    keeps their distances to a group of centres in registers, folds them into the rows'
    running minima with vector compares, and moves each row whose label changed since the
    last pass between its own cluster sums (``INCREMENTAL``): in the tile where it copied the
    rows from X itself, else in a second pass over X by label (``numba_kernels.sums_by_label``).
    Nothing of size n x k is ever written; the inner loop is FMA-bound.
``grouped``
    The fused tile for few features and many centres (d <= 8, k >= 512), where folding each
    group's distances into the rows' minima costs as much as computing them: the tile keeps
    only each row's best group of centres, and the centre inside that group is found per row
    afterwards with the tile's own arithmetic (the same values, so the same labels).
``pruned``
    The grouped tile over rows and centres sorted in space (``impls.numba_pruned``: rows along
    a Hilbert curve, centres in k-d order), for few features and many centres: each tile of
    nearby rows visits the nearest group of centres, then only the groups whose bounding box
    is nearer than its rows' worst best distance so far (plus a bound on rounding), so the
    same labels as the fused tile.
    It labels the rows; a second pass over X adds them up.
``gemm``
    The same arithmetic by BLAS, for machines and shapes where it beats the generated kernel
    (large d and k): one Numba thread per part, each computing cache-sized blocks
    ``C @ X[rows].T`` with single-threaded BLAS (SciPy's, called from compiled code: no GIL,
    no Python per block), then at once the argmin, with rows in SIMD lanes, and its own sums
    over that block while it is still in cache. No n x k matrix is materialised, and the
    Numba threads times one BLAS thread each is the harness's thread count.
``rowdot``
    For few centres and many features (k <= 16, d >= 64), where a tile of rows would mostly
    compute padding centres and BLAS a thin product: rows four at a time, read once and
    contiguously, their dot products with up to four centres vectorised along d
    (``impls.numba_rowdot``).
``stream``
    For few features and few centres (d <= 16), where the tile's work per row is mostly
    folding minima and adding each row to its sums: X kept as blocks of 2048 rows transposed,
    and every step a long loop over a block's rows in SIMD lanes; the sums move only the rows
    whose label changed, one by one where few did, by masked reductions where many did (a
    fit's first pass) (``impls.numba_stream``).

At large k, once most centres have stopped moving, the tiles' and BLAS's passes look only at the
centres that moved and, in full, at the rows whose own centre moved (``NumbaKMeans._unmoved_pass``).

All use ``||c||^2/2 - x.c`` in the working dtype for the argmin and accumulate the cluster
sums in float64 per thread, then add the few partial sums. The empty-cluster rule,
convergence and the final inertia come from ``impls.lloyd.HostLloyd``.
"""
from __future__ import annotations

import functools
import time
from contextlib import contextmanager

import numpy as np

from .lloyd import HostLloyd

STRATEGIES = ("fused", "grouped", "pruned", "gemm", "rowdot", "stream")
#: the plan races ``grouped`` up to this many features (where k >= numba_plan.MEASURE_MIN_K): its
#: per-row search inside the best group costs a group's d-long dot products, which the tile's
#: savings repay only where k is large against d, and where that ends depends on the machine.
#: With that search branch-free, grouped over fused per full pass, float32, 2 threads, in one
#: process, Zen 3 VM (AVX2): 1.21x at 30419 x 6, k=1187, 1.11x at 50000 x 24, k=3000 and
#: 100000 x 16, k=2048, 1.09x at 20000 x 48, k=2048, 1.03x at 20000 x 64, k=2048, 0.99x at
#: 20000 x 128, k=1024, 1.00x at 50000 x 32, k=512. (With the branchy search: Zen 4 VM 1.00x at
#: 23741 x 15, k=1092, 0.90x at 149314 x 10, k=2203; Zen 3 0.96x at 100000 x 16, k=2048.)
GROUPED_MAX_D = 64
#: the plan races ``pruned`` up to this many features (where k >= numba_plan.MEASURE_MIN_K): a
#: box of nearby rows excludes fewer groups of centres as d grows. Pruned over fused per pass,
#: float32, Zen 4 VM: 1.4-2.1x at d=3, k=2528-2984; 0.87-1.25x at 62500 x 4, k=4000 (1.38x
#: in float64); 0.4-0.6x at 41000 x 6, k=900; 0.5-0.8x at 149314 x 8, k=2203 (README: numba)
PRUNED_MAX_D = 8
#: the plan races ``rowdot`` only up to this many centres: beyond, the tile's padding is small
ROWDOT_MAX_K = 16
#: ... and from this many features (BLAS's classes, d >= 64, included). Rowdot over fused per
#: pass, Zen 4 VM: float64 1.29x at 300000 x 33, k=4, 1.21x at 272966 x 59, k=2, 1.46x at
#: 405142 x 40, k=5; float32 1.09x at 300000 x 33, k=4 but 0.78x at 405142 x 40, k=5; 0.50x
#: (float32) and 0.88x (float64) at 300000 x 24, k=8
ROWDOT_MIN_D = 33
#: below this many features rowdot takes the rows' squared norms computed once per fit: a norm loop
#: per row per pass is mostly its horizontal sum and its scalar tail there. Beyond, that loop also
#: reads each row in order ahead of the loops over four rows at once, and dropping it cost more than
#: it saved. Given norms over norms computed in the pass, float32, Zen 4, k=3 unless noted:
#: 1.17x at 100000 x 33, 1.30x at d=40, 1.05x at d=64, 1.04x at d=78 (k=8); 0.91x at d=100,
#: 0.87x at 60000 x 128, 0.89x at 20000 x 512 (k=2)
ROWDOT_NORMS_MAX_D = 64
#: centres up to which the tiles' final labels sum the inertia too (``NumbaKMeans._exact_final``)
EXACT_FINAL_MAX_K = 16
#: the plan races ``stream`` only up to this many centres: its first pass's sums cost k x d
#: masked reductions per block, and the tile keeps 8 centres in registers to its 4 (stream over
#: fused, whole passes interleaved, float32, Zen 4: 2.0x at 2M x 3, k=5; 1.35x at 256k x 4,
#: k=14; 0.90x at 273k x 3, k=64; 0.62x at 812k x 5, k=165)
STREAM_MAX_K = 128
#: the share of the measured wake-up (after an idle spell) that a fit pays: part of it passes
#: while the main thread still works alone (its prepare, the driver between passes). Whole
#: fits, Zen 4 VM, wake 5.5 ms: one thread 1.9x faster at 20058 x 12, k=61 (3.0 ms of
#: passes saved by a second thread), two threads 1.7x faster at 255579 x 4, k=14 (4.9 ms)
WAKE_SHARE = 0.75
#: the strategies that run a register tile (``impls.numba_tiles``)
TILED = ("fused", "grouped")
#: the strategies whose pass may look at the moved centres alone (``NumbaKMeans._unmoved_pass``)
UNMOVED = TILED + ("gemm",)
#: ... where the moved centres, and the rows whose own centre moved (looked at in full), make up
#: at most this share of a full pass's work: the pass over the moved centres still reads every
#: row, and the rows it looks at in full are first copied together
UNMOVED_MAX_SHARE = 0.7
#: ... and only where a pass is mostly arithmetic: from this many centres, and past
#: ``numba_plan.SMALL_WORK``, since the path reads X two or three times and runs four parallel
#: regions where a full pass runs one. Whole fits with it over without, float32, Emerald Rapids:
#: 0.45x at 20k x 64, k=4096, 0.57x at 20k x 256, k=2048, 0.75x at 6000 x 24, k=800, 0.68x at
#: 8000 x 6, k=1500 (from panels); 1.73x at 2000 x 16, k=200 and 1.6x at 1500 x 16, k=100
UNMOVED_MIN_K = 128
#: ... whose rows looked at in full are copied together this many bytes at a time: up to 70% of
#: X at once would be one more X of memory
REFRESH_BYTES = 64 << 20
#: the strategies whose pass returns the change of the cluster sums (rows whose label moved
#: taken from the old cluster and added to the new), which the backend adds to the sums it
#: keeps: after the first passes few rows move (4-11% of them by the 5th of 10 passes on
#: Gaussian data at d = 99-400, k = 24-40), and adding each row cost a quarter to a third of
#: the tile's pass there
INCREMENTAL = TILED + ("pruned", "stream")
#: the plan's name for the fused tile from panels where the rule leaves the choice to a race
PANELLED = "fused+panels"
#: the plan's name for the broader fused tile (``numba_tiles.BROAD_PASS``: more centres per tile,
#: over the same rows and panels), raced against the fused tile wherever the plan measures and
#: the instruction set and dtype have one: which wins depends on d, on k's padding to whole
#: groups and on the machine
BROAD = "fused+broad"
#: threads idle for less than this are still awake: a parallel region after 5 ms of idleness
#: cost 11 us, after 20 ms up to 8 ms (Zen 4 VM)
WAKE_IDLE_AFTER_S = 0.01
TILES = ("avx2", "avx512")
#: bytes of one worker's (rows, k) block: small enough to stay in its core's L2 between the
#: product and the argmin that reads it back (256-512 rows at k=1024 float32 measured best)
BLOCK_BYTES = 1 << 20
#: the fused pass keeps X transposed in panels (one more copy of X, filled by the first pass)
#: where d is at most PANEL_ALWAYS_D (there the pass is memory-bound, and a row's few features
#: are too few for the tile to copy them by blocks), while X takes at most PANEL_MEMORY_SHARE of
#: the available memory. Beyond, the tile copies its rows into its panel itself, by vector shuffles
#: (``numba_kernels.transpose_block``), which leaves kept panels little to save: tile copying
#: its rows over tile from panels plus the pass that adds the rows up, float32, 2 threads,
#: Emerald Rapids: 0.91 at 1M x 16, k=16 and at 200k x 64, k=40; 0.97-0.98 at 100k x 32,
#: k=64, 328626 x 99, k=39, 388k x 103, k=11 and 50k x 128, k=60; 1.02 at 101760 x 53, k=12;
#: 1.17 at 100k x 300, k=100, where a panel (38 KB) fills most of L1; building the panels cost
#: about one pass. (Copying a value at a time, panels had won up to k=64 and d=128: 1M x 16,
#: k=16, 8.1 against 5.3 ms per pass on Zen 4.) Up to PANEL_MAX_K centres, wherever the plan
#: measures, it races the tile from panels (``PANELLED``) against it without, since which wins
#: may still differ by machine.
PANEL_MAX_K = 128
PANEL_ALWAYS_D = 8
PANEL_MEMORY_SHARE = 0.25
#: a copy of X up to this share of the machine's memory is made without reading the free
#: memory: for the rule to refuse it, under 1/64 of the machine would have to be free, and
#: reading /proc/meminfo twice cost 0.26 ms of a 6.5 ms fit at 8439 x 101, k=7 (Zen 4 VM)
SMALL_COPY_SHARE = 1 / 256
OPTIONS = ("strategy", "chunk", "panels", "tile", "pin_threads")
#: (strategy, tile, dtype, writeable) whose kernels this process has compiled or loaded
_WARMED: set = set()
#: when this process's Numba threads last worked together (perf_counter seconds)
_threads_last_busy = [float("-inf")]


#: the last fit's panels, kept for the next fit of the same shape (see ``transposed_panels``)
_spare: list = []


@functools.lru_cache(maxsize=1)
def _total_memory() -> int:
    import psutil

    return psutil.virtual_memory().total


class SpatialRows:
    """X's rows in spatial order for the pruned tile: ``order`` (n,) int64, ``panels``
    (ceil(n / rows), d, rows) of those rows transposed, each panel's box ``lo``, ``hi``, and
    the largest row norm (for the rounding margin). One more copy of X, made once per fit."""

    def __init__(self, X: np.ndarray, rows: int):
        from . import numba_pruned

        self.order = numba_pruned.spatial_order(X)
        self.panels, self.lo, self.hi = numba_pruned.panels_in_order(X, self.order, rows)
        self.largest_norm = float(np.sqrt(np.einsum("ij,ij->i", X, X).max()))


def half_norms(C: np.ndarray) -> np.ndarray:
    """``||c||^2 / 2`` (k,) in C's dtype, the one computation every strategy's pass uses. The
    pruned tile sorts these values rather than computing its own from its sorted copy of C: a
    second computation need not round alike, and then a near-tie could take another label than
    in the fused tile (a scratch harness that computed them two ways, with ``(C**2).sum(1)``,
    labelled 1 of 149314 rows differently at d=8, k=2203, float32)."""
    return 0.5 * np.einsum("ij,ij->i", C, C)


def narrow_labels(k: int) -> type:
    """The narrowest signed integer holding the labels 0..k-1 and the stream pass's -1 ("none yet")."""
    return np.int8 if k <= 127 else np.int16 if k <= 32767 else np.int32


def transposed_panels(X: np.ndarray, rows: int, reuse: bool = False) -> np.ndarray:
    """X (n, d) as (ceil(n / rows), d, rows) panels of consecutive rows, transposed; the last
    padded with copies of the last row. Filled by Numba threads (2x NumPy's strided copy).

    With ``reuse``, the buffer a previous fit released (``release_panels``) is filled again
    when its shape and dtype match. A new X-sized buffer costs its page faults: in a process
    that had freed and reallocated much memory, building 133 MB of panels took 80-220 ms
    instead of ~20 (388k x 84 float32, Zen 4 VM), more than the panels then saved.
    """
    from .numba_kernels import block_lanes, fill_panels
    from .numba_plan import VECTOR_BYTES, host_isa

    panels = panel_buffer(X, rows, reuse)
    fill_panels(X, panels, block_lanes(X.itemsize, rows, VECTOR_BYTES[host_isa()]))
    return panels


def panel_buffer(X: np.ndarray, rows: int, reuse: bool = False) -> np.ndarray:
    """An unfilled buffer for ``transposed_panels(X, rows)``: with ``reuse``, the one a previous
    fit released where its shape and dtype match."""
    shape = (-(-X.shape[0] // rows), X.shape[1], rows)
    try:
        panels = _spare.pop() if reuse else None
    except IndexError:  # another thread's fit took it
        panels = None
    if panels is None or panels.shape != shape or panels.dtype != X.dtype:
        panels = np.empty(shape, dtype=X.dtype)
    return panels


def release_panels(panels: np.ndarray | None = None) -> None:
    """Keep ``panels`` (at most one buffer) for the next fit of the same shape; with no
    argument, drop the kept buffer and its memory."""
    _spare.clear()
    if panels is not None and panels.size:
        _spare.append(panels)


class NumbaKMeans(HostLloyd):
    """Numba-compiled Lloyd (float32 and float64), parallel over row ranges.

    Options
    -------
    strategy : {"fused", "gemm", "rowdot", "stream"}, default: the plan's for this machine and shape
        class (``stream`` needs d <= 16)
    chunk : int >= 1, rows per thread's BLAS block in the ``gemm`` strategy (default: a 1 MiB block)
    panels : bool, whether ``fused`` keeps X transposed in panels (default: for d <= 8, or where the
        plan's race at k <= 128 found them faster, while X takes at most a quarter of the available
        memory)
    tile : {"avx2", "avx512"}, the fused register tile (default: the widest the CPU has)
    pin_threads : bool, default True: while a fit's parallel regions run, each Numba thread on a
        CPU of its own (``impls.numba_placement`` says why, and where it does not pin)
    """

    name = "numba"
    color, marker = "#d62728", "D"
    fallback_rank = 1
    compiles = True
    requires = ("numba",)
    extra = "numba"
    devices = ("cpu",)
    dtypes = ("float64", "float32")
    deviations = {}

    def __init__(self, *, threads=1, device=None, **options):
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"unknown option(s) for backend 'numba': {', '.join(unknown)}; "
                             f"known: {', '.join(OPTIONS)}")
        strategy = options.get("strategy")
        if strategy is not None and strategy not in STRATEGIES:
            raise ValueError(f"strategy={strategy!r} should be one of {STRATEGIES}")
        if options.get("chunk") is not None:
            from kmbench.core.validation import check_int

            check_int("chunk", options["chunk"], 1)
        if options.get("panels") not in (None, True, False):
            raise ValueError(f"panels={options['panels']!r} should be True or False")
        if options.get("pin_threads") not in (None, True, False):
            raise ValueError(f"pin_threads={options['pin_threads']!r} should be True or False")
        tile = options.get("tile")
        if tile is not None and tile not in TILES:
            raise ValueError(f"tile={tile!r} should be one of {TILES}")
        super().__init__(threads=threads, device=device, **options)

    # -- the cycle ---------------------------------------------------------------------
    def prepare(self, X, centers):
        import numba

        from . import numba_kernels, numba_plan, numba_rowdot, numba_stream, numba_tiles

        super().prepare(X, centers)
        n, d = self.X.shape
        k = centers.shape[0]
        dtype = self.X.dtype.name
        if self.options.get("strategy") == "stream" and d > numba_stream.STREAM_MAX_D:
            raise ValueError(f"strategy='stream' needs d <= {numba_stream.STREAM_MAX_D}; X has d={d}")
        self.kernels = numba_kernels
        self.stream = numba_stream
        self.rowdot = numba_rowdot
        host = numba_plan.host_isa()
        self.isa = self.options.get("tile") or host
        if self.isa == "avx512" and host != "avx512":
            raise ValueError("tile='avx512' needs a CPU with AVX-512F and AVX-512VL; this one has "
                             f"{', '.join(sorted(f for f, on in numba_plan.cpu_features().items() if on and 'avx' in f))}")
        numba_plan.use_wide_vectors(self.isa)
        self.fused_pass = numba_tiles.FUSED_PASS[(self.isa, dtype)]
        self.grouped_pass = numba_tiles.GROUPED_PASS[(self.isa, dtype)]
        self.pruned_pass = numba_tiles.PRUNED_PASS[(self.isa, dtype)]
        self.broad_pass = numba_tiles.BROAD_PASS.get((self.isa, dtype))
        self.rows, self.group = numba_tiles.TILES[(self.isa, dtype)]  # the broad tile's rows too
        self.largest = np.finfo(self.X.dtype).max
        # One part per Numba thread: each owns a slice of rows and its own float64 sums.
        self.parts = max(1, min(numba.get_num_threads(), n))
        # the passes' ``exact`` where they sum no inertia: no centres
        self.no_exact = np.empty((0, d))
        self.plan = self._plan(n, d, k, centers)
        self.strategy = self.plan["strategy"]
        broad = bool(self.plan.get("broad"))
        if broad:
            self.fused_pass = self.broad_pass
        self.plan["tile"] = self._tile_name(broad)
        self.tile_pass = self.grouped_pass if self.strategy == "grouped" else self.fused_pass
        self.partial_sums = np.zeros((self.parts, k, d))
        self.partial_counts = np.zeros((self.parts, k), dtype=np.int64)
        self.totals = np.zeros(self.parts)
        # Two label buffers used in turn: the driver compares each step's labels with the previous.
        # The stream pass instead rewrites one buffer in place and counts the rows it changed; its
        # labels are the narrowest integers that hold k (int8 at k <= 127), since at small d a
        # pass moves about as many bytes of labels as of X. -1 marks "no label yet".
        self.changes = np.zeros(self.parts, dtype=np.int64)
        self.label_dtype = np.int32
        if self.strategy == "stream":
            self.label_dtype = narrow_labels(k)
            self.label_buffers = [np.empty(n, dtype=self.label_dtype)]
        else:
            self.label_buffers = [np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32)]
        # the sums and counts of the rows by the labels of the last pass, for INCREMENTAL passes
        self.running_sums, self.running_counts = np.empty((k, d)), np.empty(k, dtype=np.int64)
        self.step_sums, self.step_counts = np.empty((k, d)), np.empty(k, dtype=np.int64)
        self._unlabelled()
        self.dist = np.empty(n, dtype=self.X.dtype)
        self.chunk = self.blas = self.x_norms = None
        if self.strategy == "gemm":
            self.x_norms = np.einsum("ij,ij->i", self.X, self.X)
            self.chunk = self._chunk(n, k)
            self.blas = self._blas()
        elif self.strategy == "rowdot":
            self.x_norms = self._rowdot_norms(self.X)
        self.final_inertia = None
        self.sub_labels = None
        # One thread for a whole fit where waking the others costs more than they save: from
        # the plan's one-thread pass (scaled to n) and the machine's measured wake-up.
        self.one_thread_ms = self.wake_ms = None
        if "one_thread_ms_per_pass" in self.plan and self.parts > 1:
            self.one_thread_ms = self.plan["one_thread_ms_per_pass"] * n / self.plan["sample"][0]
            with self._threads(self.parts) as placed:
                self.wake_ms = 1e3 * numba_plan.wake_seconds(self.isa, self.parts, self._touch_threads, placed)
        self.threads_used = self.parts
        self.threads_pinned = False
        self.panels = np.empty((0, d, self.rows), dtype=self.X.dtype)
        self.spatial = None
        # The tiles' panels are filled by the fit's first pass, which copies its rows from X
        # anyway: X read once for both (README, "panels filled by the first pass").
        self.panels_pending = self.strategy in TILED and self._panels_pay(d, k, self.plan)
        if self.panels_pending:
            self.panels = panel_buffer(self.X, self.rows, reuse=True)
        # a copy of X is cheaper than a pass: on one thread wherever a pass is cheaper than the wake-up
        with self._threads(1 if self._one_thread_pays(1) else self.parts):
            if self.strategy == "pruned":
                self.spatial = SpatialRows(self.X, self.rows)
            elif self.strategy == "stream":
                self.panels = transposed_panels(self.X, numba_stream.STREAM_ROWS, reuse=True)
        self.exact_final = self._exact_final(k)

    def _one_thread_pays(self, passes: int) -> bool:
        """Whether ``passes`` passes on one thread beat them on ``parts`` threads plus the wake-up
        (none if the threads worked together moments ago, as in a loop of fits)."""
        if self.one_thread_ms is None or time.perf_counter() - _threads_last_busy[0] < WAKE_IDLE_AFTER_S:
            return False
        return passes * self.one_thread_ms * (1 - 1 / self.parts) < WAKE_SHARE * self.wake_ms

    @contextmanager
    def _threads(self, count: int):
        """Numba's thread count ``count`` (at most the harness's) for the block, the threads
        pinned to CPUs of their own unless ``pin_threads=False`` (``impls.numba_placement``).
        Yields whether they were pinned."""
        import numba

        from .numba_placement import pinned

        old = numba.get_num_threads()
        numba.set_num_threads(min(count, old))
        try:
            with pinned(min(count, old), self.options.get("pin_threads", True)) as placed:
                yield placed
        finally:
            numba.set_num_threads(old)

    def _touch_threads(self):
        self.kernels.touch_threads(np.ones(1 << 16), np.zeros(self.parts))

    def _chunk(self, n, k):
        default = max(16, BLOCK_BYTES // (k * self.X.itemsize))
        return min(n, int(self.options.get("chunk", default)))

    @staticmethod
    def _blas():
        import scipy.linalg.cython_blas  # noqa: F401  (Numba's np.dot calls this BLAS)
        from threadpoolctl import ThreadpoolController

        # Found once here: limiting through a ready controller costs microseconds, not a
        # rescan of the loaded libraries inside the timed run.
        return ThreadpoolController()

    def _room_for_copy(self) -> bool:
        """Whether one more copy of X leaves most of the free memory free (PANEL_MEMORY_SHARE)."""
        import psutil

        if self.X.nbytes <= _total_memory() * SMALL_COPY_SHARE:
            return True
        return self.X.nbytes <= psutil.virtual_memory().available * PANEL_MEMORY_SHARE

    @staticmethod
    def _rowdot_norms(X: np.ndarray) -> np.ndarray:
        """The rows' squared norms for the rowdot pass where it takes them given (d below
        ROWDOT_NORMS_MAX_D), else an empty array: the pass computes them itself."""
        if X.shape[1] < ROWDOT_NORMS_MAX_D:
            return np.einsum("ij,ij->i", X, X)
        return np.empty(0, dtype=X.dtype)

    @staticmethod
    def _rowdot_fits(d: int, k: int) -> bool:
        """Whether the plan races ``rowdot``: few centres and many features."""
        return k <= ROWDOT_MAX_K and d >= ROWDOT_MIN_D

    def _stream_fits(self, d: int, k: int) -> bool:
        """Whether the plan races ``stream``: few features and centres, and room for its copy of X."""
        return d <= self.stream.STREAM_MAX_D and k <= STREAM_MAX_K and self._room_for_copy()

    def _panels_pay(self, d: int, k: int, plan: dict | None = None) -> bool:
        """Whether to keep a second copy of X, transposed: the ``panels`` option, else the plan's
        race where it ran one (``_panels_raced``), else at small d; and only where it
        leaves most of the free memory free."""
        option = self.options.get("panels")
        if option is not None:
            return bool(option)
        chosen = (plan or {}).get("panels")
        if chosen is None:
            chosen = d <= PANEL_ALWAYS_D
        return chosen and self._room_for_copy()

    def _panels_raced(self, d: int, k: int) -> bool:
        """Whether the plan races the fused tile from panels against it without: at few centres
        past PANEL_ALWAYS_D features, where which wins depends on the machine."""
        return (self.options.get("panels") is None and k <= PANEL_MAX_K and d > PANEL_ALWAYS_D
                and self._room_for_copy())

    def _exact_final(self, k: int) -> bool:
        """Whether the final labels' pass also sums the float64 inertia as it reads each row
        (the rowdot and tile passes' ``exact``), sparing the inertia its own read of X, where that
        read is most of a pass: with the rowdot strategy, and with the tiles where they copy
        their rows from X and k <= EXACT_FINAL_MAX_K (from panels the pass would read X only for
        the inertia). Whole fits, float32, Emerald Rapids, the final labels then the inertia
        against both in one pass: 4.97 + 5.92 against 6.67 ms at 50000 x 512, k=2 (rowdot, the
        passes alone); 0.93x at 581012 x 54, k=7 and 1M x 16, k=16, 0.96x at 100000 x 128, k=16,
        but 1.05x at 100000 x 32, k=64, where the pass is mostly arithmetic."""
        if self.strategy == "rowdot":
            return True
        return self.strategy in TILED and not self.panels.shape[0] and k <= EXACT_FINAL_MAX_K

    # -- the plan ------------------------------------------------------------------------
    def _plan(self, n, d, k, centers) -> dict:
        """The strategy: the option, else the fused tile where no other strategy can win, else
        the stored plan for this machine and class, else one measured now (and stored)."""
        from . import numba_plan

        if self.options.get("strategy"):
            return {"strategy": self.options["strategy"], "source": "option"}
        if not (numba_plan.needs_measuring(d, k) or self._rowdot_fits(d, k) or self._stream_fits(d, k)
                or numba_plan.small_work(n, d, k) or self.broad_pass is not None):
            return {"strategy": "fused", "source": "rule (no BLAS, rowdot, stream or broad tile candidate at this "
                    "shape)"}
        key = numba_plan.machine_key(self.isa, self.parts) + "|" + numba_plan.shape_class(self.X.dtype.name, n, d, k)
        stored = numba_plan.load_plans().get(key)
        # a stored stream or pruned plan needs room for its copy of X now, as when it was measured
        if (isinstance(stored, dict) and stored.get("strategy") in STRATEGIES
                and (stored["strategy"] != "stream" or self._stream_fits(d, k))
                and (stored["strategy"] != "pruned" or self._room_for_copy())):
            return {**stored, "source": "reused", "key": key}
        m = numba_plan.sample_rows(n, d, k)
        firsts, laters, copies = self._candidates(self.X[:m], np.ascontiguousarray(centers, dtype=self.X.dtype))
        ms_first_pass = {s: round(1e3 * t, 3) for s, t in numba_plan.race(firsts).items()}
        later = {s: round(1e3 * t, 3) for s, t in numba_plan.race(laters).items()}
        ms_per_pass = {s: later.get(s, ms) for s, ms in ms_first_pass.items()}
        copy_ms = {s: round(1e3 * t, 3) for s, t in numba_plan.race(copies).items()}
        for same in ("grouped", BROAD):
            if same in ms_per_pass and "fused" in copy_ms:  # the same panels
                copy_ms[same] = copy_ms["fused"]
        close = numba_plan.runoff(firsts, laters, ms_first_pass, ms_per_pass, copy_ms)
        cost = numba_plan.fit_cost(ms_per_pass, copy_ms, ms_first_pass)
        best = min(cost, key=cost.get)
        plan = {"strategy": best, "sample": [m, d, k], "ms_per_pass": ms_per_pass, "ms_first_pass": ms_first_pass,
                "copy_ms": copy_ms}
        if PANELLED in ms_per_pass:
            plan["panels"] = best == PANELLED
        if BROAD in ms_per_pass:
            plan["broad"] = best == BROAD
        if best in (PANELLED, BROAD):
            plan["strategy"] = "fused"
        if close:
            plan["runoff"] = close
        if self.parts > 1 and numba_plan.small_work(n, d, k):
            with self._threads(1):
                alone = numba_plan.race({best: laters.get(best, firsts[best])})[best]
            plan["one_thread_ms_per_pass"] = round(1e3 * alone, 4)
        numba_plan.save_plan(key, plan)
        return {**plan, "source": "measured", "key": key}

    def _tile_name(self, broad: bool) -> str:
        """The tile the fit runs (its plan's ``tile``), as ``"avx512: 32 rows x 8 centres"``."""
        from . import numba_tiles

        rows, group = (numba_tiles.BROAD_TILES if broad else numba_tiles.TILES)[(self.isa, self.X.dtype.name)]
        return f"{self.isa}: {rows} rows x {group} centres"

    def _candidates(self, Xs, C):
        """Callables by strategy, for the plan's race over the sample rows ``Xs``: each strategy's
        first pass (every row added to the sums, as in a fit's first), its later pass where it
        moves only the rows whose label changed (here none), and the copy of ``Xs`` it makes
        once per fit."""
        m, d = Xs.shape
        k = C.shape[0]
        half = half_norms(C)
        labels, dist = np.empty(m, dtype=np.int32), np.empty(m, dtype=Xs.dtype)
        unlabelled = np.full(m, -1, dtype=np.int32)  # every row added, as in a fit's first pass
        sums, counts, totals = np.zeros((self.parts, k, d)), np.zeros((self.parts, k), dtype=np.int64), np.zeros(self.parts)
        copies = {}
        # A tile's first pass from panels fills them as it copies its rows (``fill``); a later
        # pass reads them. Filled once here too, so that no later pass ever reads an empty buffer.
        panels = np.empty((0, d, self.rows), dtype=Xs.dtype)
        if self._panels_pay(d, k):
            panels = transposed_panels(Xs, self.rows)
        norms = np.einsum("ij,ij->i", Xs, Xs)
        chunk, blas, kernels = self._chunk(m, k), self._blas(), self.kernels

        def tiled(source, tile_pass, previous=unlabelled):
            """A pass of the fused or grouped tile from ``source`` (panels, or none to copy in the
            pass), moving the rows whose label is not ``previous``'s; a first pass (every row
            unlabelled) fills the panels, as a fit's does."""
            def run():
                with kernels.slp_vectorize():
                    self._fused(Xs, source, C, half, labels, previous, dist, sums, counts, totals, True, tile_pass,
                                fill=previous is unlabelled and source.shape[0] > 0)
            return run

        def gemm():
            with blas.limit(limits=1, user_api="blas"):
                kernels.gemm_pass(Xs, C, half, norms, labels, dist, sums, counts, totals, chunk, True)

        def pruned(previous=unlabelled):
            with kernels.slp_vectorize():
                self._pruned(spatial, Xs, C, labels, previous, dist, sums, counts, totals, True)

        from .numba_plan import MEASURE_MIN_K, needs_measuring

        candidates = {"fused": tiled(panels, self.fused_pass)}
        candidates["fused"]()
        settled = labels.copy()  # a later pass's previous labels: these centres' own
        later = {"fused": tiled(panels, self.fused_pass, settled)}
        if self.broad_pass is not None:
            candidates[BROAD] = tiled(panels, self.broad_pass)
            later[BROAD] = tiled(panels, self.broad_pass, settled)
        if self._panels_raced(d, k):
            copied = transposed_panels(Xs, self.rows)
            candidates[PANELLED] = tiled(copied, self.fused_pass)
            later[PANELLED] = tiled(copied, self.fused_pass, settled)
        if needs_measuring(d, k):  # the classes where BLAS can win
            candidates["gemm"] = gemm  # adds every row in every pass
            if d <= GROUPED_MAX_D and k >= MEASURE_MIN_K:
                candidates["grouped"] = tiled(panels, self.grouped_pass)
                later["grouped"] = tiled(panels, self.grouped_pass, settled)
            if d <= PRUNED_MAX_D and self._room_for_copy():
                copies["pruned"] = functools.partial(SpatialRows, Xs, self.rows)
                spatial = copies["pruned"]()
                candidates["pruned"] = pruned
                later["pruned"] = functools.partial(pruned, settled)
        if self._rowdot_fits(d, k):
            row_norms = self._rowdot_norms(Xs)
            if row_norms.size:  # made once per fit: the strategy's copy
                copies["rowdot"] = functools.partial(self._rowdot_norms, Xs)

            def rowdot():
                self.rowdot.rowdot_pass(Xs, C, half, labels, dist, sums, counts, totals, True, row_norms,
                                        self.no_exact)

            candidates["rowdot"] = rowdot
        if self._stream_fits(d, k):
            copies["stream"] = functools.partial(transposed_panels, Xs, self.stream.STREAM_ROWS)
            blocks = copies["stream"]()

            # the pass rewrites its labels in place: after any call they are these centres' own
            narrow, changes = settled.astype(narrow_labels(k)), np.zeros(self.parts, dtype=np.int64)

            def stream(first=True):
                if first:
                    narrow.fill(-1)
                self.stream.stream_pass(blocks, m, C, half, narrow, dist, sums, counts, totals, changes, True)

            candidates["stream"] = stream
            later["stream"] = functools.partial(stream, False)
        return candidates, later, copies

    def warm_up(self):
        """Compile (or load from Numba's on-disk cache) the kernels for this dtype and layout,
        once per process: each tiny call wakes the kernel's threads, and on a VM whose idle
        vCPU sleeps that cost ~4 ms now and then, more than a whole fit at 20k x 12 x 61."""
        dtype = self.X.dtype
        # the stream pass is compiled per d (numba_stream.STREAM_PASS)
        key = (self.strategy, self.tile_pass.__name__ if self.strategy in TILED else None, self.isa, dtype.str,
               self.X.flags.writeable, np.dtype(self.label_dtype).str,
               self.X.shape[1] if self.strategy == "stream" else None, self.exact_final)
        if key in _WARMED:
            return
        tiny = np.ascontiguousarray(self.X[:2] if self.X.shape[0] >= 2 else np.zeros((2, self.X.shape[1]),
                                                                                      dtype=dtype))
        tiny.setflags(write=self.X.flags.writeable)
        centers = tiny[:1].copy()
        labels, unlabelled = np.empty(2, dtype=np.int32), np.full(2, -1, dtype=np.int32)
        dist = np.empty(2, dtype=dtype)
        norms = np.einsum("ij,ij->i", tiny, tiny)
        sums = np.zeros((1, 1, tiny.shape[1]))
        counts = np.zeros((1, 1), dtype=np.int64)
        totals = np.zeros(1)
        half = half_norms(centers)
        # The empty-cluster rule's kernel too: loading it inside a timed run cost more than a pass.
        self.kernels.distances_to_own(tiny, centers.astype(np.float64), np.zeros(2, dtype=np.int32), np.empty(2))
        with self.kernels.slp_vectorize():
            if self.strategy in TILED:
                self._fused(tiny, transposed_panels(tiny, self.rows), centers, half, labels, unlabelled, dist, sums,
                            counts, totals, True)
                if self.exact_final:  # the final labels' pass, copying its rows, with float64 distances
                    self._fused(tiny, self.panels[:0], centers, half, labels, unlabelled, np.empty(2), sums, counts,
                                totals, False, exact=centers.astype(np.float64))
            elif self.strategy == "rowdot":
                self.rowdot.rowdot_pass(tiny, centers, half, labels, dist, sums, counts, totals, True,
                                        self._rowdot_norms(tiny), self.no_exact)
                # the final labels' pass, with float64 distances
                self.rowdot.rowdot_pass(tiny, centers, half, labels, np.empty(2), sums, counts, totals, False,
                                        self._rowdot_norms(tiny), centers.astype(np.float64))
            elif self.strategy == "pruned":
                self._pruned(SpatialRows(tiny, self.rows), tiny, centers, labels, unlabelled, dist, sums, counts,
                             totals, True)
            elif self.strategy == "stream":
                self.stream.stream_pass(transposed_panels(tiny, self.stream.STREAM_ROWS), 2, centers, half,
                                        unlabelled.astype(self.label_dtype), dist, sums, counts, totals,
                                        self.changes[:1],
                                        True)
            else:
                self.kernels.gemm_pass(tiny, centers, half, norms, labels, dist, sums, counts, totals, 1, True)
        _WARMED.add(key)

    def _pass(self, centers, labels, update, previous=None, distances=True, exact=None):
        """A pass writing ``labels``; with ``update``, INCREMENTAL strategies move the rows whose
        label is not ``previous``'s in the partial sums. Without ``distances`` the stream pass
        leaves ``self.dist`` unwritten; with ``exact`` (the centres in float64) it sums their
        inertia into ``self.totals``."""
        # Only a type combination warm_up did not foresee compiles here; keep it vectorised too.
        with self.kernels.slp_vectorize():
            self._kernel_pass(centers, labels, update, labels if previous is None else previous, distances, exact)

    def _kernel_pass(self, centers, labels, update, previous, distances, exact):
        centers = np.ascontiguousarray(centers, dtype=self.X.dtype)
        half = half_norms(centers)
        unmoved = self._unmoved_pass(centers, half, labels, update, previous)
        if not unmoved:
            self._full_pass(centers, half, labels, update, previous, distances, exact)
        # what the partial sums hold: the change by the rows that moved, or every row's sum
        self.sums_are_changes = unmoved or self.strategy in INCREMENTAL
        if self.strategy in UNMOVED:
            self.last_centres, self.last_labels = centers.copy(), labels

    def _unmoved_pass(self, C, half, labels, update, previous) -> bool:
        """A pass that looks only at the centres that moved since the last pass, where they are few
        (large k, few rows per cluster: most clusters keep their rows, so their centres stay
        where they were). A row whose centre did not move keeps it unless a moved centre is now
        nearer (``numba_kernels.keep_unless_moved_nearer``); a row whose centre moved is looked
        at in full. The same labels as a full pass, but for near-ties, which values computed
        in another order may break the other way. Declines (returns False) after a pass of other
        labels, or where it would save little (UNMOVED_MAX_SHARE).

        Shares of a full pass's work in passes 2-10 and the final assignment, float64 Lloyd on
        Gaussian data from random rows: 20k x 256, k=2048 0.99, 0.77, 0.67, ..., 0.23, 0.11
        (5.9 of 11 passes in all); 20k x 64, k=4096 4.2 of 11; 50k x 128, k=1024 10.5 of 11;
        none below 1 at 200k x 64, k=256 or 100k x 32, k=64."""
        from .numba_plan import small_work

        last = self.last_centres
        if (self.strategy not in UNMOVED or last is None or last.shape != C.shape or self.panels_pending
                or (update and previous is not self.last_labels)):
            return False
        (n, d), k = self.X.shape, C.shape[0]
        if k < UNMOVED_MIN_K or small_work(n, d, k):
            return False
        moved = np.any(C != last, axis=1)
        subset = np.flatnonzero(moved).astype(np.int32)
        if (subset.size + 1) / k > UNMOVED_MAX_SHARE:
            return False
        before = self.last_labels
        refresh = np.flatnonzero(moved[before])
        share = (subset.size + 1) / k + refresh.size / n
        if share > UNMOVED_MAX_SHARE:
            return False
        if self.sub_labels is None:
            self.sub_labels = np.empty(n, dtype=np.int32)
        if subset.size:
            self._labels_only(self.X, self.panels, C[subset], half[subset], self.sub_labels, self.dist, self.x_norms)
        self.kernels.keep_unless_moved_nearer(self.X, C, half, before, moved, subset, self.sub_labels, self.dist,
                                              labels)
        # the rows whose centre moved, copied together a block of at most REFRESH_BYTES at a time
        step = max(1, REFRESH_BYTES // (d * self.X.itemsize))
        for start in range(0, refresh.size, step):
            some = refresh[start:start + step]
            found, dist = np.empty(some.size, dtype=np.int32), np.empty(some.size, dtype=self.X.dtype)
            self._labels_only(self.X[some], self.panels[:0], C, half, found, dist,
                              None if self.x_norms is None else self.x_norms[some])
            labels[some] = found
            self.dist[some] = dist
        if update:
            self.kernels.sums_by_label(self.X, labels, before, self.dist, self.partial_sums, self.partial_counts,
                                       self.totals)
        self.unmoved_shares.append(round(share, 3))
        return True

    def _labels_only(self, X, panels, C, half, labels, dist, norms):
        """The labels of X's rows (and their distances) by the strategy's pass, without sums."""
        if self.strategy in TILED:
            self._fused(X, panels, C, half, labels, labels, dist, self.partial_sums, self.partial_counts,
                        self.totals, False)
        else:
            self.kernels.gemm_pass(X, C, half, norms, labels, dist, self.partial_sums, self.partial_counts,
                                   self.totals, self.chunk, False)

    def _full_pass(self, centers, half, labels, update, previous, distances, exact):
        if self.strategy in TILED:
            fill, self.panels_pending = self.panels_pending, False
            self._fused(self.X, self.panels, centers, half, labels, previous, self.dist, self.partial_sums,
                        self.partial_counts, self.totals, update, fill=fill)
            return
        if self.strategy == "pruned":
            if self.spatial is None:  # released by result(); a later assign needs it again
                self.spatial = SpatialRows(self.X, self.rows)
            self._pruned(self.spatial, self.X, centers, labels, previous, self.dist, self.partial_sums,
                         self.partial_counts, self.totals, update)
            return
        if self.strategy == "rowdot":
            self.rowdot.rowdot_pass(self.X, centers, half, labels, self.dist, self.partial_sums,
                                     self.partial_counts, self.totals, update, self.x_norms, self.no_exact)
            return
        if self.strategy == "stream":
            if not self.panels.shape[0]:  # released by result(); a later assign needs them again
                self.panels = transposed_panels(self.X, self.stream.STREAM_ROWS, reuse=True)
            self.stream.stream_pass(self.panels, self.X.shape[0], centers, half, labels,
                                    self.dist if distances else self.dist[:0],
                                    self.partial_sums, self.partial_counts, self.totals, self.changes, update,
                                    exact)
            return
        self.kernels.gemm_pass(self.X, centers, half, self.x_norms, labels, self.dist, self.partial_sums,
                               self.partial_counts, self.totals, self.chunk, update)

    def _fused(self, X, panels, C, half, labels, previous, dist, sums, counts, totals, update, tile_pass=None,
               exact=None, fill=False):
        """The fused tile's pass; with ``fill``, it fills ``panels`` from X as it copies its rows.
        From panels the tile only labels the rows, and a second pass over X in order adds them
        up: it ran 1.00-1.67x faster than adding each row inside the tile, where the reads of X
        interleave with the panel's (0.93-0.96x without panels, where the tile has just read
        each row itself, as it has where it fills them; Zen 4)."""
        split = update and panels.shape[0] > 0 and not fill
        tile_pass = tile_pass or self.tile_pass
        tile_pass(X, panels, C, half, labels, previous, dist, sums, counts, totals, update and not split, self.largest,
                  self.no_exact if exact is None else exact, fill)
        if split:
            self.kernels.sums_by_label(X, labels, previous, dist, sums, counts, totals)

    def _pruned(self, spatial, X, C, labels, previous, dist, sums, counts, totals, update):
        """The pruned tile's pass: labels and distances, then (``update``) the sums in a second pass over X."""
        from . import numba_pruned

        C = np.ascontiguousarray(C, dtype=X.dtype)
        centres, transposed, half, index, lo, hi = numba_pruned.arrange_centres(C, half_norms(C), self.group)
        margin = numba_pruned.rounding_margin(X.dtype, X.shape[1], spatial.largest_norm,
                                              float(np.sqrt(2 * half.max())))
        self.pruned_pass(spatial.panels, spatial.order, spatial.lo, spatial.hi, centres, transposed, half, index,
                         lo, hi, labels, dist, len(totals), margin, self.largest)
        if update:
            self.kernels.sums_by_label(X, labels, previous, dist, sums, counts, totals)

    def _unlabelled(self):
        """No row labelled yet, so the next pass adds every row to empty sums."""
        self.last_centres = self.last_labels = None
        self.unmoved_shares = []
        for buffer in self.label_buffers:
            buffer.fill(-1)
        self.running_sums.fill(0)
        self.running_counts.fill(0)

    def run(self, max_iter, tol):
        # Every run starts from no labels: a run after another (asv repeats them) would otherwise
        # move rows from the last run's final labels.
        self._unlabelled()
        self.final_inertia = None
        # the final assignment and the inertia's distances are passes too
        self.threads_used = 1 if self._one_thread_pays(max_iter + 2) else self.parts
        with self._threads(self.threads_used) as self.threads_pinned:
            if self.blas is None:
                return super().run(max_iter, tol)
            # Each Numba thread calls BLAS itself: parts x 1 thread = the harness's count.
            with self.blas.limit(limits=1, user_api="blas"):
                return super().run(max_iter, tol)

    def step(self, centers):
        """One pass. In place of every row's distance it returns each part's float64 sum of them:
        the driver only adds them up (for the inertia history), and n distances would be one
        more write and read of n values per iteration. The sums and counts are copies: the
        driver's empty-cluster rule edits them."""
        labels, previous = self.label_buffers[0], self.label_buffers[-1]  # the stream pass has one
        self.label_buffers.reverse()
        self._pass(centers, labels, True, previous)
        # into buffers kept for the fit: at k x d = 2048 x 256 fresh arrays cost 2 ms a step
        sums, counts = self.step_sums, self.step_counts
        if self.sums_are_changes:
            for part in range(self.parts):
                np.add(self.running_sums, self.partial_sums[part], out=self.running_sums)
                np.add(self.running_counts, self.partial_counts[part], out=self.running_counts)
        else:
            np.sum(self.partial_sums, axis=0, out=self.running_sums)
            np.sum(self.partial_counts, axis=0, out=self.running_counts)
        np.copyto(sums, self.running_sums)
        np.copyto(counts, self.running_counts)
        return labels, self.totals, sums, counts

    def unchanged(self, labels, previous):
        if self.strategy == "stream":  # one buffer, rewritten in place: the pass counted the changes
            return previous is not None and not self.changes.any()
        return super().unchanged(labels, previous)

    def assign(self, centers):
        """Fresh labels; the distances are the backend's buffer, overwritten by the next pass."""
        labels = np.empty(self.X.shape[0], dtype=self.label_dtype)
        self._pass(centers, labels, False)
        return labels, self.dist

    def final_labels(self, centers):
        """The stream pass relabels its buffer in place and writes no distances: the fit reads
        neither a fresh label array (its page faults) nor n distances (n more values written),
        and it sums the inertia as it goes. Where ``exact_final``, the tiles' or rowdot's pass that
        labels the rows also sums the inertia as it reads them."""
        if self.exact_final:
            return self._labels_and_inertia(centers)
        if self.strategy != "stream":
            return super().final_labels(centers)
        labels = self.label_buffers[0]
        self._pass(centers, labels, False, distances=False, exact=np.ascontiguousarray(centers, dtype=np.float64))
        self.final_inertia = float(self.totals.sum())
        return labels

    def _labels_and_inertia(self, centers):
        """The labels of ``centers`` by a pass that keeps their inertia (the sum of float64 squared
        distances by direct differences) in ``final_inertia``: the rowdot pass, or the tile
        copying its rows from X."""
        centres = np.ascontiguousarray(centers, dtype=self.X.dtype)
        labels, squares = np.empty(self.X.shape[0], dtype=np.int32), np.empty(self.X.shape[0])
        exact, half = centres.astype(np.float64), half_norms(centres)
        if self.strategy == "rowdot":
            self.rowdot.rowdot_pass(self.X, centres, half, labels, squares, self.partial_sums, self.partial_counts,
                                    self.totals, False, self.x_norms, exact)
        else:
            with self.kernels.slp_vectorize():
                self._fused(self.X, self.panels[:0], centres, half, labels, labels, squares, self.partial_sums,
                            self.partial_counts, self.totals, False, exact=exact)
        self.final_inertia = float(squares.sum())
        return labels

    def distances_to_own(self, X, centers, labels):
        out = np.empty(X.shape[0])
        self.kernels.distances_to_own(X, np.ascontiguousarray(centers, dtype=np.float64),
                                      labels.astype(np.int32, copy=False), out)
        return out

    def inertia(self, labels):
        """The fitted centres' inertia: summed by the final labels' own pass where it ran one."""
        if self.final_inertia is not None:
            return self.final_inertia
        return float(self.distances_to_own(self.X, self.centers, labels).sum())

    def result(self):
        with self._threads(self.threads_used):
            out = super().result()
        if self.threads_used > 1:
            _threads_last_busy[0] = time.perf_counter()
        from kmbench.core.threads import threading_layer

        out.info.update({"strategy": self.strategy, "plan": dict(self.plan), "parts": self.parts,
                         "threads_used": self.threads_used, "threads_pinned": self.threads_pinned,
                         "threading_layer": threading_layer(),
                         "distance_dtype": str(self.X.dtype),
                         "sums_dtype": "float64",
                         "sums": "moved rows" if self.strategy in INCREMENTAL else "every row"})
        if self.one_thread_ms is not None:
            out.info["one_thread_ms_per_pass"] = round(self.one_thread_ms, 4)
            out.info["wake_ms"] = round(self.wake_ms, 3)
        if self.chunk is not None:
            out.info["chunk"] = self.chunk
        if self.strategy in TILED + ("pruned",):
            out.info["tile"] = self.plan["tile"]
        if self.strategy in TILED:
            out.info["panels"] = self.panels.shape[0] > 0  # before _release empties them
        if self.strategy == "stream":
            out.info["block_rows"] = self.stream.STREAM_ROWS
        if self.final_inertia is not None:  # what ran, not what was planned
            out.info["inertia"] = "summed in the final labels' pass"
        if self.unmoved_shares:
            out.info["moved_centres_only"] = {"passes": len(self.unmoved_shares), "work_shares": self.unmoved_shares}
        # the fit is over: its panels serve the next fit of this shape (one X of memory, kept
        # while X takes at most PANEL_MEMORY_SHARE of the available memory)
        self._release()
        return out

    def _release(self):
        self.spatial = None
        self.panels_pending = False
        panels, self.panels = self.panels, np.empty((0,) + self.panels.shape[1:], dtype=self.panels.dtype)
        release_panels(panels if self._room_for_copy() else None)

