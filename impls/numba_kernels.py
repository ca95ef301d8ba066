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
#: rows whose distances ``sums_by_label`` adds up at a time (a few pages, read again from L1)
SUM_BLOCK = 2048


@intrinsic
def prefetch(typingctx, address):
    """Ask the caches for the line holding byte ``address`` (an int64 from ``arr.ctypes.data``):
    LLVM's ``prefetch`` (read, locality 2: into L2, not L1). It never faults and never waits, so
    a tile can fetch the next tile's rows while it computes on its own. Into L1 (locality 3) the
    next panel evicted the one in use where two outgrow L1 (32 rows x d=300 float32 is 38 KB):
    per pass, L2 over L1, float32, 2 threads, Emerald Rapids: 1.15-1.17x at 100k x 300, k=100,
    with and without kept panels; 1.0-1.2x at 20k x 256, k=2048; level at d <= 128."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        from llvmlite import ir

        int32 = ir.IntType(32)
        pointer = builder.inttoptr(args[0], ir.IntType(8).as_pointer())
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [pointer.type, int32, int32, int32]), "llvm.prefetch.p0i8")
        builder.call(function, [pointer, int32(0), int32(2), int32(1)])
        return context.get_dummy_value()

    return types.void(address), codegen


@intrinsic
def wide_vectors(typingctx):
    """Let LLVM's loop vectoriser use the widest registers the CPU has in the function that calls this.

    LLVM's tuning for Intel's AVX-512 server cores sets ``prefer-256-bit``, so loops are
    vectorised in ymm registers, half a zmm. The function attribute
    ``"prefer-vector-width"="512"`` lifts that for one function (what clang's
    ``-mprefer-vector-width=512`` does), and is ignored where the CPU has no 512-bit vectors.
    Whole stream passes, float32 and float64, d = 2-4, 2 threads, Emerald Rapids: 1.15-1.35x.
    """
    def codegen(context, builder, signature, args):
        # llvmlite's attribute set admits only flag attributes; a key="value" one is written verbatim
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.void(), codegen


def _block_transpose(lanes: int, itemsize: int):
    """An intrinsic copying a ``lanes`` x ``lanes`` block of float32 (``itemsize`` 4) or float64
    values transposed: ``transpose(source, source_step, target, target_step)``, all int64 byte
    addresses and row strides (from ``arr.ctypes.data``), row ``i`` of the target being column
    ``i`` of the source.

    One vector load per source row, log2(lanes) rounds of shuffles that swap the off-diagonal
    halves of ever smaller blocks, one vector store per target row. LLVM leaves the loops that
    copy a value at a time scalar (no vectoriser forms a transposition), at 3-5 cycles per value
    once a tile's panel outgrows L1; 16 x 16 float32 blocks by shuffles took the copies of a
    pass over 60000 x 400 from 19.9 to 5.0 ms, memory speed (2 threads, Emerald Rapids).
    """
    @intrinsic
    def transpose(typingctx, source, source_step, target, target_step):
        if not all(isinstance(a, types.Integer) for a in (source, source_step, target, target_step)):
            return None

        def codegen(context, builder, signature, args):
            from llvmlite import ir

            source, source_step, target, target_step = args
            vector = ir.VectorType(ir.FloatType() if itemsize == 4 else ir.DoubleType(), lanes)
            int64, mask = ir.IntType(64), ir.VectorType(ir.IntType(32), lanes)

            def address(base, step, i):
                return builder.inttoptr(builder.add(base, builder.mul(step, int64(i))), vector.as_pointer())

            rows = [builder.load(address(source, source_step, i), align=itemsize) for i in range(lanes)]
            half = lanes // 2
            while half:
                # rows i and i + half (i without the bit `half`) swap their off-diagonal half-blocks;
                # shuffle indices from `lanes` on pick from the second row
                upper = [j & half != 0 for j in range(lanes)]
                low = ir.Constant(mask, [lanes + j - half if up else j for j, up in enumerate(upper)])
                high = ir.Constant(mask, [lanes + j if up else j + half for j, up in enumerate(upper)])
                swapped = list(rows)
                for i in range(lanes):
                    if not i & half:
                        swapped[i] = builder.shuffle_vector(rows[i], rows[i + half], low)
                        swapped[i + half] = builder.shuffle_vector(rows[i], rows[i + half], high)
                rows, half = swapped, half // 2
            for i, row in enumerate(rows):
                builder.store(row, address(target, target_step, i), align=itemsize)
            return context.get_dummy_value()

        return types.void(source, source_step, target, target_step), codegen

    return transpose


#: the block transpositions the tiles use: one vector of their instruction set's width per row
transpose16_float32 = _block_transpose(16, 4)
transpose8_float32 = _block_transpose(8, 4)
transpose8_float64 = _block_transpose(8, 8)
transpose4_float64 = _block_transpose(4, 8)


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
def keep_unless_moved_nearer(X, C, half_norms, previous, moved, subset, sub_labels, dist, labels):
    """The labels of the rows whose centre did not move since the last pass (``moved[previous[i]]``
    false): among the centres that did not move the last pass's label is still the least (their
    values are the same), so the row keeps it unless a centre that moved is nearer now. That
    nearest moved centre, ``subset[sub_labels[i]]`` at squared distance ``dist[i]``, comes from a
    pass over the moved centres alone (none if ``subset`` is empty); the own centre's value is
    computed here as the passes compute theirs, ``||x||^2 + 2 (||c||^2/2 - x.c)`` clipped at 0,
    and wins ties when its index is lower. Writes ``labels[i]`` and ``dist[i]`` of those rows and
    leaves the others.

    Parameters
    ----------
    X : (n, d) float32 or float64
    C : (k, d) X's dtype, the centres of this pass
    half_norms : (k,) X's dtype
    previous : (n,) int32, the last pass's labels (none -1)
    moved : (k,) bool, the centres that changed since the last pass
    subset : (m,) int32, the indices of the moved centres
    sub_labels : (n,) int32, each row's nearest moved centre as an index into ``subset``; read if m > 0
    dist : (n,) X's dtype, in: the distance to that centre (if m > 0); out: to the row's centre
    labels : (n,) int32, out
    """
    n, d = X.shape
    zero = half_norms[0] - half_norms[0]
    m = subset.shape[0]
    for i in prange(n):
        own = previous[i]
        if moved[own]:
            continue
        norm = zero
        dot = zero
        for t in range(d):
            x = X[i, t]
            norm += x * x
            dot += x * C[own, t]
        low = half_norms[own] - dot
        value = norm + (low + low)
        value = value if value > zero else zero
        if m > 0:
            other = subset[sub_labels[i]]
            if dist[i] < value or (dist[i] == value and other < own):
                labels[i] = other
                continue
        labels[i] = own
        dist[i] = value


@njit(parallel=True, cache=True, fastmath=FAST)
def sums_by_label(X, labels, previous, dist, sums, counts, totals):
    """Each part's change of the float64 cluster sums and counts, and its sum of distances, from
    the labels a pass wrote: a row whose label differs from ``previous`` is added to its new
    cluster and taken from its old one (none where ``previous`` is -1).

    The fused tile's second half where it reads X from panels (see ``NumbaKMeans._fused``;
    1.35x at 101760 x 53, k=12, float32, Zen 4), and the pruned tile's.

    Parameters
    ----------
    X : (n, d) float32 or float64
    labels : (n,) int32
    previous : (n,) int32, each row's label in the sums the caller keeps, or -1
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
        lo, hi = p * n // parts, (p + 1) * n // parts
        for b in range(lo, hi, SUM_BLOCK):
            end = min(b + SUM_BLOCK, hi)
            # A block's distances in a loop of their own, which LLVM vectorises: added in the
            # loop below, each row's add waited on the last one's (a float64 add's latency a row).
            for i in range(b, end):
                total += dist[i]
            for i in range(b, end):
                c = labels[i]
                was = previous[i]
                if c == was:
                    continue
                q = i & (copies - 1)
                own_counts[q, c] += 1
                for t in range(d):
                    own_sums[q, c, t] += X[i, t]
                if was >= 0:
                    own_counts[q, was] -= 1
                    for t in range(d):
                        own_sums[q, was, t] -= X[i, t]
        sums[p] = own_sums.sum(axis=0)
        counts[p] = own_counts.sum(axis=0)
        totals[p] = total


@njit(cache=True, fastmath={"nnan", "ninf", "contract", "reassoc"})
def own_square(X, i, centers, c):
    """Row i's squared float64 distance to ``centers[c]`` by direct differences: the inertia's
    terms, wherever a kernel computes them (``distances_to_own``, and the final labels' passes
    that sum the inertia as they read each row). Its squares are summed in SIMD lanes
    (reassociated, still in float64): one scalar chain of float64 adds took 18 ms at 388k x 103,
    longer than a pass. A function of its own so that its flags hold where a caller's lack
    ``reassoc``."""
    square = 0.0
    for t in range(X.shape[1]):
        diff = np.float64(X[i, t]) - centers[c, t]
        square += diff * diff
    return square


@njit(parallel=True, cache=True, fastmath={"nnan", "ninf", "contract", "reassoc"})
def distances_to_own(X, centers, labels, out):
    """``impls.base.distances_to_own`` in parallel: ``out[i]`` = squared float64 distance of row i
    to ``centers[labels[i]]`` (``own_square``), for the empty-cluster rule and (summed) the inertia.

    Parameters
    ----------
    X : (n, d) float32 or float64
    centers : (k, d) float64
    labels : (n,) int32
    out : (n,) float64, out
    """
    for i in prange(X.shape[0]):
        out[i] = own_square(X, i, centers, labels[i])


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


@njit(nogil=True, cache=True)
def transpose_block(lanes, source, source_step, target, target_step, itemsize):
    """The ``lanes`` x ``lanes`` block transposition for ``itemsize``: 16 or 8 float32, 8 or 4 float64."""
    if itemsize == 4:
        if lanes == 16:
            transpose16_float32(source, source_step, target, target_step)
        else:
            transpose8_float32(source, source_step, target, target_step)
    elif lanes == 8:
        transpose8_float64(source, source_step, target, target_step)
    else:
        transpose4_float64(source, source_step, target, target_step)


def block_lanes(itemsize: int, rows: int, vector_bytes: int) -> int:
    """The values per vector of ``vector_bytes`` that ``transpose_block`` takes for panels of ``rows``
    rows, or 0 where it has no block that divides them (then a panel is copied value by value)."""
    lanes = vector_bytes // itemsize
    while lanes > 1 and rows % lanes:
        lanes //= 2
    return lanes if (itemsize, lanes) in ((4, 16), (4, 8), (8, 8), (8, 4)) else 0


@njit(parallel=True, cache=True)
def fill_panels(X, panels, lanes):
    """``panels[b, t, r] = X[rows * b + r, t]``, rows past n repeating the last row; whole panels
    by ``lanes`` x ``lanes`` blocks (``transpose_block``; ``block_lanes``), 0 for value by value.

    Parameters
    ----------
    X : (n, d), C-contiguous
    panels : (ceil(n / rows), d, rows) same dtype, out
    lanes : int
    """
    n, d = X.shape
    rows = panels.shape[2]
    itemsize = X.itemsize
    whole = d // lanes * lanes if lanes else 0
    x_base, panel_base = np.int64(X.ctypes.data), np.int64(panels.ctypes.data)
    for b in prange(panels.shape[0]):
        blocked = whole if (b + 1) * rows <= n else 0
        for rb in range(0, rows if blocked else 0, lanes if lanes else 1):
            for t in range(0, blocked, lanes):
                transpose_block(lanes, x_base + ((b * rows + rb) * d + t) * itemsize, np.int64(d * itemsize),
                                panel_base + ((b * d + t) * rows + rb) * itemsize, np.int64(rows * itemsize), itemsize)
        # feature by feature: each written in order, the panel's rows read from L1/L2
        last = min(rows, n - b * rows)
        for t in range(blocked, d):
            for r in range(last):
                panels[b, t, r] = X[b * rows + r, t]
            for r in range(last, rows):
                panels[b, t, r] = X[n - 1, t]
