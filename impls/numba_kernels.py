"""Numba kernels for ``impls.numba_fused``; imported only from ``prepare``/``warm_up``.

Every kernel splits its rows into ``sums.shape[0]`` contiguous parts, one per Numba
thread, and each part accumulates its own float64 cluster sums and counts: no atomics,
no serial update pass, and the caller adds the few partial sums afterwards.

Distances are ``||c||^2/2 - x.c`` in the working dtype: ``||x||^2`` is constant per row,
so it is added back only for the returned distance of the winning centre.
Ties go to the lowest centre index (strict ``<`` while scanning centres in order).
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from numba import njit, prange
from numba.core import config

#: centres handled per register tile by ``fused_pass``; padding columns of ``CT`` carry the
#: dtype's largest value as half-norm, so (ties going to the lower index) they never win
TILE = 16
#: rows per register tile of ``fused_pass``
ROWS = 4

# fastmath lets LLVM contract to FMA and vectorise the min reduction; no NaN or inf
# reaches the kernels (the harness rejects non-finite X; the padding value is finite).
FAST = {"nnan", "ninf", "nsz", "arcp", "contract", "afn", "reassoc"}
# Without "reassoc": with it LLVM vectorises each accumulator's sum over d (a strided
# column of CT) instead of packing the sixteen accumulators into SIMD registers, 10x slower.
FUSED_FAST = {"nnan", "ninf", "nsz", "contract"}


@contextmanager
def slp_vectorize():
    """Compile inside this block with LLVM's SLP vectoriser, which Numba turns off by default.

    ``fused_pass`` relies on it to pack its sixteen scalar accumulators into SIMD registers
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


@njit(inline="always")
def _accumulate(X, i, best, sums, counts, p):
    counts[p, best] += 1
    for t in range(X.shape[1]):
        sums[p, best, t] += X[i, t]


@njit(inline="always")
def _finish(X, i, best, best_val, x_norms, labels, dist, sums, counts, p, update):
    labels[i] = best
    value = x_norms[i] + 2 * best_val
    dist[i] = value if value > 0 else 0
    if update:
        _accumulate(X, i, best, sums, counts, p)


@njit(parallel=True, cache=True, fastmath=FUSED_FAST)
def fused_pass(X, CT, half_norms, x_norms, labels, dist, sums, counts, update):
    """Assign every row of X to its nearest centre without writing any distance matrix.

    Parameters
    ----------
    X : (n, d) float32 or float64
    CT : (d, kp) same dtype, the centres transposed and zero-padded to ``kp``, a multiple of TILE
    half_norms : (kp,) same dtype, ``||c||^2 / 2``; the dtype's largest value for padding columns
    x_norms : (n,) same dtype, ``||x||^2``
    labels : (n,) int32, out
    dist : (n,) same dtype, out: squared distance to the assigned centre, clipped at 0
    sums : (parts, k, d) float64, out: per-part cluster sums (zeroed here) when ``update``
    counts : (parts, k) int64, out: per-part cluster counts (zeroed here) when ``update``
    update : bool
    """
    n, d = X.shape
    kp = CT.shape[1]
    parts = sums.shape[0]
    for p in prange(parts):
        if update:
            sums[p] = 0.0
            counts[p] = 0
        lo = p * n // parts
        hi = (p + 1) * n // parts
        # A register tile of ROWS rows x TILE centres: eight independent SIMD FMA chains hide
        # the FMA latency and each centre load serves four rows. Rows past ``hi`` repeat the
        # last row and are not stored. (Generated code; tried and slower on this machine:
        # 1 or 2 rows, a branch-free min tree, rows in SIMD lanes, and moving this body into
        # a plain @njit function called from the prange: 4x faster to compile, 1.5x slower
        # to run, as the views below then cost reference-count calls.)
        for i in range(lo, hi, ROWS):
            i0 = min(i + 0, hi - 1)
            i1 = min(i + 1, hi - 1)
            i2 = min(i + 2, hi - 1)
            i3 = min(i + 3, hi - 1)
            best0 = 0
            low0 = half_norms[0]
            best1 = 0
            low1 = half_norms[0]
            best2 = 0
            low2 = half_norms[0]
            best3 = 0
            low3 = half_norms[0]
            for j0 in range(0, kp, TILE):
                h = half_norms[j0:j0 + TILE]
                a0_0 = h[0]
                a0_1 = h[1]
                a0_2 = h[2]
                a0_3 = h[3]
                a0_4 = h[4]
                a0_5 = h[5]
                a0_6 = h[6]
                a0_7 = h[7]
                a0_8 = h[8]
                a0_9 = h[9]
                a0_10 = h[10]
                a0_11 = h[11]
                a0_12 = h[12]
                a0_13 = h[13]
                a0_14 = h[14]
                a0_15 = h[15]
                a1_0 = h[0]
                a1_1 = h[1]
                a1_2 = h[2]
                a1_3 = h[3]
                a1_4 = h[4]
                a1_5 = h[5]
                a1_6 = h[6]
                a1_7 = h[7]
                a1_8 = h[8]
                a1_9 = h[9]
                a1_10 = h[10]
                a1_11 = h[11]
                a1_12 = h[12]
                a1_13 = h[13]
                a1_14 = h[14]
                a1_15 = h[15]
                a2_0 = h[0]
                a2_1 = h[1]
                a2_2 = h[2]
                a2_3 = h[3]
                a2_4 = h[4]
                a2_5 = h[5]
                a2_6 = h[6]
                a2_7 = h[7]
                a2_8 = h[8]
                a2_9 = h[9]
                a2_10 = h[10]
                a2_11 = h[11]
                a2_12 = h[12]
                a2_13 = h[13]
                a2_14 = h[14]
                a2_15 = h[15]
                a3_0 = h[0]
                a3_1 = h[1]
                a3_2 = h[2]
                a3_3 = h[3]
                a3_4 = h[4]
                a3_5 = h[5]
                a3_6 = h[6]
                a3_7 = h[7]
                a3_8 = h[8]
                a3_9 = h[9]
                a3_10 = h[10]
                a3_11 = h[11]
                a3_12 = h[12]
                a3_13 = h[13]
                a3_14 = h[14]
                a3_15 = h[15]
                for t in range(d):
                    x0 = X[i0, t]
                    x1 = X[i1, t]
                    x2 = X[i2, t]
                    x3 = X[i3, t]
                    # Constant offsets into a view: LLVM sees sixteen adjacent loads.
                    c = CT[t, j0:j0 + TILE]
                    a0_0 -= x0 * c[0]
                    a1_0 -= x1 * c[0]
                    a2_0 -= x2 * c[0]
                    a3_0 -= x3 * c[0]
                    a0_1 -= x0 * c[1]
                    a1_1 -= x1 * c[1]
                    a2_1 -= x2 * c[1]
                    a3_1 -= x3 * c[1]
                    a0_2 -= x0 * c[2]
                    a1_2 -= x1 * c[2]
                    a2_2 -= x2 * c[2]
                    a3_2 -= x3 * c[2]
                    a0_3 -= x0 * c[3]
                    a1_3 -= x1 * c[3]
                    a2_3 -= x2 * c[3]
                    a3_3 -= x3 * c[3]
                    a0_4 -= x0 * c[4]
                    a1_4 -= x1 * c[4]
                    a2_4 -= x2 * c[4]
                    a3_4 -= x3 * c[4]
                    a0_5 -= x0 * c[5]
                    a1_5 -= x1 * c[5]
                    a2_5 -= x2 * c[5]
                    a3_5 -= x3 * c[5]
                    a0_6 -= x0 * c[6]
                    a1_6 -= x1 * c[6]
                    a2_6 -= x2 * c[6]
                    a3_6 -= x3 * c[6]
                    a0_7 -= x0 * c[7]
                    a1_7 -= x1 * c[7]
                    a2_7 -= x2 * c[7]
                    a3_7 -= x3 * c[7]
                    a0_8 -= x0 * c[8]
                    a1_8 -= x1 * c[8]
                    a2_8 -= x2 * c[8]
                    a3_8 -= x3 * c[8]
                    a0_9 -= x0 * c[9]
                    a1_9 -= x1 * c[9]
                    a2_9 -= x2 * c[9]
                    a3_9 -= x3 * c[9]
                    a0_10 -= x0 * c[10]
                    a1_10 -= x1 * c[10]
                    a2_10 -= x2 * c[10]
                    a3_10 -= x3 * c[10]
                    a0_11 -= x0 * c[11]
                    a1_11 -= x1 * c[11]
                    a2_11 -= x2 * c[11]
                    a3_11 -= x3 * c[11]
                    a0_12 -= x0 * c[12]
                    a1_12 -= x1 * c[12]
                    a2_12 -= x2 * c[12]
                    a3_12 -= x3 * c[12]
                    a0_13 -= x0 * c[13]
                    a1_13 -= x1 * c[13]
                    a2_13 -= x2 * c[13]
                    a3_13 -= x3 * c[13]
                    a0_14 -= x0 * c[14]
                    a1_14 -= x1 * c[14]
                    a2_14 -= x2 * c[14]
                    a3_14 -= x3 * c[14]
                    a0_15 -= x0 * c[15]
                    a1_15 -= x1 * c[15]
                    a2_15 -= x2 * c[15]
                    a3_15 -= x3 * c[15]
                # Strict < in ascending order: ties stay with the lowest centre index.
                if j0 == 0 or a0_0 < low0:
                    low0, best0 = a0_0, j0 + 0
                if a0_1 < low0:
                    low0, best0 = a0_1, j0 + 1
                if a0_2 < low0:
                    low0, best0 = a0_2, j0 + 2
                if a0_3 < low0:
                    low0, best0 = a0_3, j0 + 3
                if a0_4 < low0:
                    low0, best0 = a0_4, j0 + 4
                if a0_5 < low0:
                    low0, best0 = a0_5, j0 + 5
                if a0_6 < low0:
                    low0, best0 = a0_6, j0 + 6
                if a0_7 < low0:
                    low0, best0 = a0_7, j0 + 7
                if a0_8 < low0:
                    low0, best0 = a0_8, j0 + 8
                if a0_9 < low0:
                    low0, best0 = a0_9, j0 + 9
                if a0_10 < low0:
                    low0, best0 = a0_10, j0 + 10
                if a0_11 < low0:
                    low0, best0 = a0_11, j0 + 11
                if a0_12 < low0:
                    low0, best0 = a0_12, j0 + 12
                if a0_13 < low0:
                    low0, best0 = a0_13, j0 + 13
                if a0_14 < low0:
                    low0, best0 = a0_14, j0 + 14
                if a0_15 < low0:
                    low0, best0 = a0_15, j0 + 15
                if j0 == 0 or a1_0 < low1:
                    low1, best1 = a1_0, j0 + 0
                if a1_1 < low1:
                    low1, best1 = a1_1, j0 + 1
                if a1_2 < low1:
                    low1, best1 = a1_2, j0 + 2
                if a1_3 < low1:
                    low1, best1 = a1_3, j0 + 3
                if a1_4 < low1:
                    low1, best1 = a1_4, j0 + 4
                if a1_5 < low1:
                    low1, best1 = a1_5, j0 + 5
                if a1_6 < low1:
                    low1, best1 = a1_6, j0 + 6
                if a1_7 < low1:
                    low1, best1 = a1_7, j0 + 7
                if a1_8 < low1:
                    low1, best1 = a1_8, j0 + 8
                if a1_9 < low1:
                    low1, best1 = a1_9, j0 + 9
                if a1_10 < low1:
                    low1, best1 = a1_10, j0 + 10
                if a1_11 < low1:
                    low1, best1 = a1_11, j0 + 11
                if a1_12 < low1:
                    low1, best1 = a1_12, j0 + 12
                if a1_13 < low1:
                    low1, best1 = a1_13, j0 + 13
                if a1_14 < low1:
                    low1, best1 = a1_14, j0 + 14
                if a1_15 < low1:
                    low1, best1 = a1_15, j0 + 15
                if j0 == 0 or a2_0 < low2:
                    low2, best2 = a2_0, j0 + 0
                if a2_1 < low2:
                    low2, best2 = a2_1, j0 + 1
                if a2_2 < low2:
                    low2, best2 = a2_2, j0 + 2
                if a2_3 < low2:
                    low2, best2 = a2_3, j0 + 3
                if a2_4 < low2:
                    low2, best2 = a2_4, j0 + 4
                if a2_5 < low2:
                    low2, best2 = a2_5, j0 + 5
                if a2_6 < low2:
                    low2, best2 = a2_6, j0 + 6
                if a2_7 < low2:
                    low2, best2 = a2_7, j0 + 7
                if a2_8 < low2:
                    low2, best2 = a2_8, j0 + 8
                if a2_9 < low2:
                    low2, best2 = a2_9, j0 + 9
                if a2_10 < low2:
                    low2, best2 = a2_10, j0 + 10
                if a2_11 < low2:
                    low2, best2 = a2_11, j0 + 11
                if a2_12 < low2:
                    low2, best2 = a2_12, j0 + 12
                if a2_13 < low2:
                    low2, best2 = a2_13, j0 + 13
                if a2_14 < low2:
                    low2, best2 = a2_14, j0 + 14
                if a2_15 < low2:
                    low2, best2 = a2_15, j0 + 15
                if j0 == 0 or a3_0 < low3:
                    low3, best3 = a3_0, j0 + 0
                if a3_1 < low3:
                    low3, best3 = a3_1, j0 + 1
                if a3_2 < low3:
                    low3, best3 = a3_2, j0 + 2
                if a3_3 < low3:
                    low3, best3 = a3_3, j0 + 3
                if a3_4 < low3:
                    low3, best3 = a3_4, j0 + 4
                if a3_5 < low3:
                    low3, best3 = a3_5, j0 + 5
                if a3_6 < low3:
                    low3, best3 = a3_6, j0 + 6
                if a3_7 < low3:
                    low3, best3 = a3_7, j0 + 7
                if a3_8 < low3:
                    low3, best3 = a3_8, j0 + 8
                if a3_9 < low3:
                    low3, best3 = a3_9, j0 + 9
                if a3_10 < low3:
                    low3, best3 = a3_10, j0 + 10
                if a3_11 < low3:
                    low3, best3 = a3_11, j0 + 11
                if a3_12 < low3:
                    low3, best3 = a3_12, j0 + 12
                if a3_13 < low3:
                    low3, best3 = a3_13, j0 + 13
                if a3_14 < low3:
                    low3, best3 = a3_14, j0 + 14
                if a3_15 < low3:
                    low3, best3 = a3_15, j0 + 15
            _finish(X, i0, best0, low0, x_norms, labels, dist, sums, counts, p, update)
            if i + 1 < hi:
                _finish(X, i1, best1, low1, x_norms, labels, dist, sums, counts, p, update)
            if i + 2 < hi:
                _finish(X, i2, best2, low2, x_norms, labels, dist, sums, counts, p, update)
            if i + 3 < hi:
                _finish(X, i3, best3, low3, x_norms, labels, dist, sums, counts, p, update)


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
    for i in range(m):
        low[i] = np.inf
        best[i] = 0
    for j in range(0, k, 4):
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
def gemm_pass(X, C, half_norms, x_norms, labels, dist, sums, counts, rows, update):
    """Assign every row of X through BLAS products of ``rows``-row blocks, one part per thread.

    Each Numba thread walks its own rows: a single-threaded BLAS product ``C @ X[block].T``
    into its own (k, rows) buffer, the argmin over that buffer while it is still in cache, and
    the block's rows added to its own sums. The caller limits BLAS to one thread, so the
    Numba threads are the only ones. Nothing of size n x k is ever written.

    Parameters
    ----------
    X : (n, d) float32 or float64, C-contiguous
    C : (k, d) same dtype, C-contiguous
    half_norms : (k,) same dtype, ``||c||^2 / 2``
    x_norms, labels, dist, sums, counts, update : as ``fused_pass``
    rows : int >= 1, rows per BLAS block
    """
    n, d = X.shape
    k = C.shape[0]
    parts = sums.shape[0]
    for p in prange(parts):
        if update:
            sums[p] = 0.0
            counts[p] = 0
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
                _finish(X, start + r, best[r], low[r], x_norms, labels, dist, sums, counts, p, update)


@njit(parallel=True, cache=True)
def exact_inertia(X, centers, labels, parts):
    """``impls.base.exact_inertia`` in parallel: float64 differences, squares and sums.

    Parameters
    ----------
    X : (n, d) float32 or float64
    centers : (k, d) float64
    labels : (n,) int32
    parts : int >= 1, threads to split the rows over
    """
    n, d = X.shape
    totals = np.zeros(parts)
    for p in prange(parts):
        total = 0.0
        for i in range(p * n // parts, (p + 1) * n // parts):
            c = centers[labels[i]]
            for t in range(d):
                diff = np.float64(X[i, t]) - c[t]
                total += diff * diff
        totals[p] = total
    return totals.sum()
