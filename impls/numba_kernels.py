"""Numba kernels for ``impls.numba_fused``; imported only from ``prepare``/``warm_up``.

The fused passes themselves are generated into ``impls.numba_tiles``; this module holds
what they share, the second pass that adds up the rows a tile labelled from panels, the
BLAS-block pass and the rows' parallel distances to their centres.

Every pass splits its rows into ``sums.shape[0]`` contiguous parts, one per Numba
thread, and each part accumulates its own float64 cluster sums and counts: no atomics,
no serial update pass, and the caller adds the few partial sums afterwards.

Distances are ``||c||^2/2 - x.c`` in the working dtype: ``||x||^2`` is constant per row,
so it is added back only for the returned distance of the winning centre.
Ties go to the lowest centre index (strict ``<`` while scanning centres in order).
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from numba import njit, prange, types
from numba.core import cgutils, config
from numba.extending import intrinsic

# fastmath lets LLVM contract to FMA and vectorise the min reduction; no NaN or inf
# reaches the kernels (the harness rejects non-finite X, and no kernel starts from inf).
FAST = {"nnan", "ninf", "nsz", "arcp", "contract", "afn", "reassoc"}
# Without "reassoc": with it LLVM vectorises each accumulator's sum over d instead of
# packing the tile's scalar accumulators into SIMD registers, 10x slower.
FUSED_FAST = {"nnan", "ninf", "nsz", "contract"}
#: copies of each thread's sums that consecutive rows alternate between, while k x d is at
#: most COPIES_MAX_KD (a power of two: a row picks its copy with a mask): consecutive rows
#: of one cluster then add to different addresses instead of waiting on each other's store
COPIES = 4
COPIES_MAX_KD = 4096


@intrinsic
def prefetch(typingctx, address):
    """Ask the caches for the line holding byte ``address`` (an int64 from ``arr.ctypes.data``):
    LLVM's ``prefetch`` (read, into every level). It never faults and never waits, so a tile
    can fetch the next tile's rows while it computes on its own."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        from llvmlite import ir

        int32 = ir.IntType(32)
        pointer = builder.inttoptr(args[0], ir.IntType(8).as_pointer())
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [pointer.type, int32, int32, int32]), "llvm.prefetch.p0i8")
        builder.call(function, [pointer, int32(0), int32(3), int32(1)])
        return context.get_dummy_value()

    return types.void(address), codegen


@contextmanager
def slp_vectorize():
    """Compile inside this block with LLVM's SLP vectoriser, which Numba turns off by default.

    The fused passes rely on it to pack their scalar accumulators into SIMD registers
    (about 4x faster in float32). Numba reads the flag when it builds a pass pipeline, so
    the kernels must be first called (compiled) inside this block; on-disk cache entries
    keep the code they were compiled with.
    """
    old = config.SLP_VECTORIZE
    config.SLP_VECTORIZE = 1
    try:
        yield
    finally:
        config.SLP_VECTORIZE = old


@njit(nogil=True, cache=True, fastmath=FAST)
def nearest_columns(D, half_norms, low, best):
    """For each column i of ``D``: the lowest j minimising ``half_norms[j] - D[j, i]``, and that value.

    Rows in SIMD lanes: each pass over four rows of ``D`` updates the running minima of every
    column with compares and blends, and stores them unconditionally. (Written as "store only
    when smaller", LLVM emits masked stores, which are microcoded on AMD Zen: 4x slower.)

    Parameters
    ----------
    D : (k, m) working dtype, ``centers @ X[rows].T``
    half_norms : (k,) working dtype, ``||c||^2 / 2``
    low : (>= m,) working dtype, out: the minimum of each column
    best : (>= m,) int32, out: its centre
    """
    k, m = D.shape
    # Started from centre 0, not infinity: fastmath lets LLVM assume no infinity occurs.
    h = half_norms[0]
    for i in range(m):
        low[i] = h - D[0, i]
        best[i] = 0
    for j in range(1, k, 4):
        # Past k, rows repeat the last centre: an equal value never wins a strict <.
        j1 = min(j + 1, k - 1)
        j2 = min(j + 2, k - 1)
        j3 = min(j + 3, k - 1)
        h0, h1, h2, h3 = half_norms[j], half_norms[j1], half_norms[j2], half_norms[j3]
        b0, b1, b2, b3 = np.int32(j), np.int32(j1), np.int32(j2), np.int32(j3)
        r0, r1, r2, r3 = D[j], D[j1], D[j2], D[j3]
        for i in range(m):
            lo = low[i]
            bi = best[i]
            # Strict < in ascending j: ties stay with the lowest centre index.
            v = h0 - r0[i]
            bi = b0 if v < lo else bi
            lo = min(v, lo)
            v = h1 - r1[i]
            bi = b1 if v < lo else bi
            lo = min(v, lo)
            v = h2 - r2[i]
            bi = b2 if v < lo else bi
            lo = min(v, lo)
            v = h3 - r3[i]
            bi = b3 if v < lo else bi
            lo = min(v, lo)
            low[i] = lo
            best[i] = bi


@njit(parallel=True, cache=True, fastmath=FAST)
def gemm_pass(X, C, half_norms, x_norms, labels, dist, sums, counts, totals, rows, update):
    """Assign every row of X through BLAS products of ``rows``-row blocks, one part per thread.

    Each Numba thread walks its own rows: a single-threaded BLAS product ``C @ X[block].T``
    into its own (k, rows) buffer, the argmin over that buffer while it is still in cache, and
    the block's rows added to its own sums (allocated in the thread, so no two threads write
    one cache line). The caller limits BLAS to one thread, so the Numba threads are the only
    ones. Nothing of size n x k is ever written.

    Parameters
    ----------
    X : (n, d) float32 or float64, C-contiguous
    C : (k, d) same dtype, C-contiguous
    half_norms : (k,) same dtype, ``||c||^2 / 2``
    x_norms : (n,) same dtype, ``||x||^2``
    labels, dist, sums, counts, totals, update : as ``numba_tiles.fused_avx2_float32``
    rows : int >= 1, rows per BLAS block
    """
    n, d = X.shape
    k = C.shape[0]
    parts = sums.shape[0]
    for p in prange(parts):
        own_sums = np.zeros((k if update else 0, d))
        own_counts = np.zeros(k if update else 0, dtype=np.int64)
        total = 0.0
        lo = p * n // parts
        hi = (p + 1) * n // parts
        buffer = np.empty(k * rows, dtype=X.dtype)
        low = np.empty(rows, dtype=X.dtype)
        best = np.empty(rows, dtype=np.int32)
        for start in range(lo, hi, rows):
            m = min(rows, hi - start)
            D = buffer[:k * m].reshape((k, m))
            np.dot(C, X[start:start + m].T, D)
            nearest_columns(D, half_norms, low, best)
            for r in range(m):
                i = start + r
                b = best[r]
                labels[i] = b
                value = x_norms[i] + 2 * low[r]
                value = value if value > 0 else 0
                if update:
                    total += value
                    own_counts[b] += 1
                    for t in range(d):
                        own_sums[b, t] += X[i, t]
                else:
                    dist[i] = value
        if update:
            sums[p] = own_sums
            counts[p] = own_counts
            totals[p] = total


@njit(parallel=True, cache=True, fastmath=FAST)
def sums_by_label(X, labels, dist, sums, counts, totals):
    """Each part's float64 cluster sums, counts and sum of distances, from labels a pass wrote.

    The fused tile's second half where it reads X from panels (see ``NumbaKMeans._fused``;
    1.35x at 101760 x 53, k=12, float32, Zen 4).

    Parameters
    ----------
    X : (n, d) float32 or float64
    labels : (n,) int32
    dist : (n,) X's dtype, each row's squared distance to its centre
    sums : (parts, k, d) float64, out
    counts : (parts, k) int64, out
    totals : (parts,) float64, out
    """
    n, d = X.shape
    parts, k = counts.shape
    for p in prange(parts):
        copies = COPIES if k * d <= COPIES_MAX_KD else 1
        own_sums = np.zeros((copies, k, d))
        own_counts = np.zeros((copies, k), dtype=np.int64)
        total = 0.0
        for i in range(p * n // parts, (p + 1) * n // parts):
            c = labels[i]
            q = i & (copies - 1)
            own_counts[q, c] += 1
            total += dist[i]
            for t in range(d):
                own_sums[q, c, t] += X[i, t]
        sums[p] = own_sums.sum(axis=0)
        counts[p] = own_counts.sum(axis=0)
        totals[p] = total


@njit(parallel=True, cache=True, fastmath={"nnan", "ninf", "contract", "reassoc"})
def distances_to_own(X, centers, labels, out):
    """``impls.base.distances_to_own`` in parallel: ``out[i]`` = squared float64 distance of row i
    to ``centers[labels[i]]``, by direct differences, for the empty-cluster rule and (summed) the
    inertia. Each row's squares are summed in SIMD lanes (reassociated, still in float64): one
    scalar chain of float64 adds took 18 ms at 388k x 103, longer than a pass.

    Parameters
    ----------
    X : (n, d) float32 or float64
    centers : (k, d) float64
    labels : (n,) int32
    out : (n,) float64, out
    """
    n, d = X.shape
    for i in prange(n):
        c = centers[labels[i]]
        row = 0.0
        for t in range(d):
            diff = np.float64(X[i, t]) - c[t]
            row += diff * diff
        out[i] = row


@njit(parallel=True, cache=True)
def touch_threads(a, out):
    """A small parallel region, each thread summing its share of ``a`` into ``out[p]``: what
    waking the threads costs is measured with it (with real work, as a pass has: on a VM a
    region that finds nothing to do can return before the woken thread ever runs)."""
    parts = out.shape[0]
    n = a.shape[0]
    for p in prange(parts):
        total = 0.0
        for i in range(p * n // parts, (p + 1) * n // parts):
            total += a[i]
        out[p] += total


@njit(parallel=True, cache=True)
def fill_panels(X, panels):
    """``panels[b, t, r] = X[rows * b + r, t]``, rows past n repeating the last row.

    Parameters
    ----------
    X : (n, d)
    panels : (ceil(n / rows), d, rows) same dtype, out
    """
    n, d = X.shape
    rows = panels.shape[2]
    for b in prange(panels.shape[0]):
        for r in range(rows):
            source = min(b * rows + r, n - 1)
            for t in range(d):
                panels[b, t, r] = X[source, t]
