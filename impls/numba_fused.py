"""Lloyd with Numba kernels: a fused distance+argmin+update pass, or BLAS blocks + a Numba argmin.

Two strategies, ``strategy="fused"`` (the default) and ``strategy="gemm"``:

``fused``
    One parallel pass over X with rows in SIMD lanes: each thread takes 16 rows (8 in
    float64) as a transposed panel (kept from ``prepare`` at small k, else copied in the
    pass), keeps their distances to six centres at a time in registers, folds them into
    the rows' running minima with vector compares, and adds each row to its own cluster
    sums (``impls.numba_tiles``). Nothing of size n x k is ever written; the inner loop is
    FMA-bound, at BLAS sgemm speed.
``gemm``
    The same arithmetic by BLAS, for machines where it beats the generated kernel: one Numba
    thread per part, each computing cache-sized blocks ``C @ X[rows].T`` with single-threaded
    BLAS (SciPy's, called from compiled code: no GIL, no Python per block), then at once the
    argmin, with rows in SIMD lanes, and its own sums over that block while it is still in
    cache. No n x k matrix is materialised, and the Numba threads times one BLAS thread
    each is the harness's thread count.

Both use ``||c||^2/2 - x.c`` in the working dtype for the argmin and accumulate the cluster
sums in float64 per thread, then add the few partial sums. The empty-cluster rule,
convergence and the final inertia come from ``impls.lloyd.HostLloyd``.
"""
from __future__ import annotations

import numpy as np

from .lloyd import HostLloyd

#: ``fused`` is the default because it was at least as fast as ``gemm`` at every shape
#: measured on the 2-core Zen3 machine (ms per pass, fused vs gemm, float32): 100k x 3, k=3
#: 1.25 vs 1.34; 100k x 32, k=64 4.0 vs 4.7; 200k x 64, k=256 42 vs 47; 50k x 128,
#: k=1024 76 vs 79; 20k x 64, k=4096 60 vs 72; 10k x 1000, k=100 14.0 vs 16.1 (float64
#: 50k x 128, k=1024: 159 vs 163). ``gemm`` stays for comparison, and for machines whose
#: BLAS outruns the generated tile.
STRATEGIES = ("fused", "gemm")
#: bytes of one worker's (rows, k) block: small enough to stay in its core's L2 between the
#: product and the argmin that reads it back (256-512 rows at k=1024 float32 measured best)
BLOCK_BYTES = 1 << 20
#: the fused pass keeps X transposed in panels (one more copy of X, built in prepare) up to
#: this many centres, and while X takes at most PANEL_MEMORY_SHARE of the available memory;
#: otherwise it copies each panel itself, a cost that shrinks as 1/k against the distances.
#: Measured (float32, 2 threads, ms per assignment pass, copied vs kept): 1M x 16, k=16:
#: 8.1 vs 5.3; 100k x 32, k=64: 3.1 vs 2.6. At 200k x 64, k=256 the gain (under 5%) no
#: longer repays building the panels (35 ms) within a 10-iteration fit.
PANEL_MAX_K = 64
PANEL_MEMORY_SHARE = 0.25
OPTIONS = ("strategy", "chunk", "panels")


def transposed_panels(X: np.ndarray, rows: int) -> np.ndarray:
    """X (n, d) as (ceil(n / rows), d, rows) panels of consecutive rows, transposed; the last
    padded with copies of the last row. Filled by Numba threads (2x NumPy's strided copy)."""
    from .numba_kernels import fill_panels

    panels = np.empty((-(-X.shape[0] // rows), X.shape[1], rows), dtype=X.dtype)
    fill_panels(X, panels)
    return panels


class NumbaKMeans(HostLloyd):
    """Numba-compiled Lloyd (float32 and float64), parallel over row ranges.

    Options
    -------
    strategy : {"fused", "gemm"}, default "fused"
    chunk : int >= 1, rows per thread's BLAS block in the ``gemm`` strategy (default: a 1 MiB block)
    panels : bool, whether ``fused`` keeps X transposed in panels (default: for k <= 64,
        while X takes at most a quarter of the available memory)
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
        strategy = options.get("strategy", "fused")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy={strategy!r} should be one of {STRATEGIES}")
        if options.get("chunk") is not None:
            from kmbench.core.validation import check_int

            check_int("chunk", options["chunk"], 1)
        if options.get("panels") not in (None, True, False):
            raise ValueError(f"panels={options['panels']!r} should be True or False")
        super().__init__(threads=threads, device=device, **options)

    # -- the cycle ---------------------------------------------------------------------
    def prepare(self, X, centers):
        import numba

        super().prepare(X, centers)
        n, d = self.X.shape
        k = centers.shape[0]
        self.strategy = self.options.get("strategy", "fused")
        self.x_norms = np.einsum("ij,ij->i", self.X, self.X)
        # One part per Numba thread: each owns a slice of rows and its own float64 sums.
        self.parts = max(1, min(numba.get_num_threads(), n))
        self.partial_sums = np.zeros((self.parts, k, d))
        self.partial_counts = np.zeros((self.parts, k), dtype=np.int64)
        # Two label buffers used in turn: the driver compares each step's labels with the previous.
        self.label_buffers = [np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32)]
        self.dist = np.empty(n, dtype=self.X.dtype)
        self.chunk = self.blas = None
        if self.strategy == "gemm":
            import scipy.linalg.cython_blas  # noqa: F401  (Numba's np.dot calls this BLAS)
            from threadpoolctl import ThreadpoolController

            default = max(16, BLOCK_BYTES // (k * self.X.itemsize))
            self.chunk = min(n, int(self.options.get("chunk", default)))
            # Found once here: limiting through a ready controller costs microseconds, not a
            # rescan of the loaded libraries inside the timed run.
            self.blas = ThreadpoolController()
        from . import numba_kernels, numba_tiles

        self.kernels = numba_kernels
        self.fused_pass = numba_tiles.FUSED_PASS[self.X.dtype.name]
        self.largest = np.finfo(self.X.dtype).max
        self.panels = np.empty((0, d, numba_tiles.ROWS[self.X.dtype.name]), dtype=self.X.dtype)
        if self.strategy == "fused" and self._panels_pay(k):
            self.panels = transposed_panels(self.X, self.panels.shape[2])

    def _panels_pay(self, k: int) -> bool:
        """Whether to keep a second copy of X, transposed: the ``panels`` option, else at small
        k where it leaves most of the free memory free."""
        option = self.options.get("panels")
        if option is not None:
            return bool(option)
        import psutil

        return k <= PANEL_MAX_K and self.X.nbytes <= psutil.virtual_memory().available * PANEL_MEMORY_SHARE

    def warm_up(self):
        """Compile (or load from Numba's on-disk cache) the kernels for this dtype and layout."""
        dtype = self.X.dtype
        tiny = np.ascontiguousarray(self.X[:2] if self.X.shape[0] >= 2 else np.zeros((2, self.X.shape[1]),
                                                                                      dtype=dtype))
        tiny.setflags(write=self.X.flags.writeable)
        centers = tiny[:1].copy()
        labels = np.empty(2, dtype=np.int32)
        dist = np.empty(2, dtype=dtype)
        norms = np.einsum("ij,ij->i", tiny, tiny)
        sums = np.zeros((1, 1, tiny.shape[1]))
        counts = np.zeros((1, 1), dtype=np.int64)
        half = 0.5 * np.einsum("ij,ij->i", centers, centers)
        with self.kernels.slp_vectorize():
            if self.strategy == "fused":
                self.fused_pass(tiny, transposed_panels(tiny, self.panels.shape[2]), centers, half, norms,
                                labels, dist, sums, counts, True, self.largest)
            else:
                self.kernels.gemm_pass(tiny, centers, half, norms, labels, dist, sums, counts, 1, True)

    def _pass(self, centers, labels, update):
        # Only a type combination warm_up did not foresee compiles here; keep it vectorised too.
        with self.kernels.slp_vectorize():
            self._kernel_pass(centers, labels, update)

    def _kernel_pass(self, centers, labels, update):
        centers = np.ascontiguousarray(centers, dtype=self.X.dtype)
        half = 0.5 * np.einsum("ij,ij->i", centers, centers)
        if self.strategy == "fused":
            self.fused_pass(self.X, self.panels, centers, half, self.x_norms, labels, self.dist,
                            self.partial_sums, self.partial_counts, update, self.largest)
            return
        self.kernels.gemm_pass(self.X, centers, half, self.x_norms, labels, self.dist,
                               self.partial_sums, self.partial_counts, self.chunk, update)

    def run(self, max_iter, tol):
        if self.blas is None:
            return super().run(max_iter, tol)
        # Each Numba thread calls BLAS itself: parts x 1 thread = the harness's count.
        with self.blas.limit(limits=1, user_api="blas"):
            return super().run(max_iter, tol)

    def step(self, centers):
        labels = self.label_buffers[0]
        self.label_buffers.reverse()
        self._pass(centers, labels, True)
        return labels, self.dist, self.partial_sums.sum(axis=0), self.partial_counts.sum(axis=0)

    def assign(self, centers):
        """Fresh labels; the distances are the backend's buffer, overwritten by the next pass."""
        labels = np.empty(self.X.shape[0], dtype=np.int32)
        self._pass(centers, labels, False)
        return labels, self.dist

    def inertia(self, labels):
        centers = np.ascontiguousarray(self.centers, dtype=np.float64)
        return float(self.kernels.exact_inertia(self.X, centers, labels, self.parts))

    def result(self):
        out = super().result()
        out.info.update({"strategy": self.strategy, "parts": self.parts,
                         "distance_dtype": str(self.X.dtype), "sums_dtype": "float64"})
        if self.chunk is not None:
            out.info["chunk"] = self.chunk
        if self.strategy == "fused":
            out.info["panels"] = self.panels.shape[0] > 0
        return out
