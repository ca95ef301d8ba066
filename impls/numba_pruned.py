"""Rows and centres in spatial order, for the pruned tile (``numba_tiles.pruned_*``).

Near points get near positions, so a tile of consecutive rows and a group of consecutive
centres each fill a small box, and a tile can skip every group whose box lies farther than
its rows' best centres. The rows, many and ordered once per fit, go along a Hilbert curve
(keys in linear time, then a radix sort). The centres, few and ordered every pass, go in k-d
order (split at the median of their widest feature, down to one group), whose groups of 8
fill smaller boxes than 8 consecutive points on a curve. Groups a tile had to visit at
66668 x 3, k=2723 (its best known in advance): 25.9 with rows and centres along a Z-order
curve, 17.3 with centres in k-d order, 12.9 with rows along a Hilbert curve too (14.7 with
both along it). Rows in k-d order made it 11.9, but a quickselect's branches made their
order cost 26.4 ms at 200000 x 3, against the Hilbert keys' 6.8 (Zen 4).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


#: rows per step of ``hilbert_keys``: their cells stay in L1
_KEY_CHUNK = 256


@njit(parallel=True, cache=True)
def hilbert_keys(X, lo, scale, bits):
    """Each row's position on a Hilbert curve with ``bits`` bits per feature: Skilling's
    transform of the row's cell ("Programming the Hilbert curve", 2004), whose bits are then
    interleaved as a Z-order key's. Unlike the Z-order curve, the Hilbert curve never jumps:
    consecutive cells touch, so a run of consecutive rows fills a compact box.

    The transform is a chain of dependent steps per row; run row by row, each step waited on
    the last one's store (190 ns a row). Here every step runs over a chunk of rows in SIMD
    lanes, without branches on the bits."""
    n, d = X.shape
    keys = np.empty(n, dtype=np.uint64)
    top = (1 << bits) - 1
    for c in prange((n + _KEY_CHUNK - 1) // _KEY_CHUNK):
        start = c * _KEY_CHUNK
        m = min(n, start + _KEY_CHUNK) - start
        q = np.empty((d, _KEY_CHUNK), dtype=np.int64)
        for t in range(d):
            for r in range(m):
                q[t, r] = min(max(int((X[start + r, t] - lo[t]) * scale[t]), 0), top)
        # inverse undo: from the top level down, where feature t's bit is set invert the lower
        # bits of feature 0, else exchange them between features 0 and t
        level = 1 << (bits - 1)
        while level > 1:
            below = level - 1
            for r in range(m):
                q[0, r] ^= below & -((q[0, r] & level) != 0)
            for t in range(1, d):
                for r in range(m):
                    on = -((q[t, r] & level) != 0)
                    swap = (q[0, r] ^ q[t, r]) & below & ~on
                    q[0, r] ^= (below & on) | swap
                    q[t, r] ^= swap
            level >>= 1
        # Gray encode
        for t in range(1, d):
            for r in range(m):
                q[t, r] ^= q[t - 1, r]
        flip = np.zeros(_KEY_CHUNK, dtype=np.int64)
        level = 1 << (bits - 1)
        while level > 1:
            for r in range(m):
                flip[r] ^= (level - 1) & -((q[d - 1, r] & level) != 0)
            level >>= 1
        key = np.zeros(_KEY_CHUNK, dtype=np.uint64)
        for bit in range(bits):
            for t in range(d):
                shift = np.uint64(bit * d + d - 1 - t)
                for r in range(m):
                    key[r] |= np.uint64(((q[t, r] ^ flip[r]) >> bit) & 1) << shift
        keys[start:start + m] = key[:m]
    return keys


#: the radix sort's passes, over 2^RADIX_BITS buckets each
RADIX_BITS = 11
RADIX_PASSES = 3
#: bits of a curve's key: enough cells for rows to share one rarely (11 bits per feature at
#: d=3), few enough for the radix sort's passes
KEY_BITS = RADIX_BITS * RADIX_PASSES


@njit(cache=True)
def radix_order(keys):
    """The indices that sort ``keys`` (uint64 below 2^KEY_BITS), stable: an LSD radix sort that
    carries the keys with the indices, so every pass reads both in order: 0.5-1.4 ms for 66668
    keys and 21-37 ms for 1.15M, where NumPy's argsort (a comparison sort) took 4.1 and 100 ms
    (Zen 4). With NumPy's min/max, that had lost the pruned tile the plan's race at 66668 x 3,
    k=2723."""
    n = keys.shape[0]
    order, spare = np.arange(n), np.empty(n, dtype=np.int64)
    keys, spare_keys = keys.copy(), np.empty_like(keys)
    mask = np.uint64((1 << RADIX_BITS) - 1)
    for step in range(RADIX_PASSES):
        shift = np.uint64(step * RADIX_BITS)
        starts = np.zeros((1 << RADIX_BITS) + 1, dtype=np.int64)
        for i in range(n):
            starts[np.int64((keys[i] >> shift) & mask) + 1] += 1
        for b in range(1 << RADIX_BITS):
            starts[b + 1] += starts[b]
        for i in range(n):
            b = np.int64((keys[i] >> shift) & mask)
            spare[starts[b]] = order[i]
            spare_keys[starts[b]] = keys[i]
            starts[b] += 1
        order, spare = spare, order
        keys, spare_keys = spare_keys, keys
    return order


@njit(cache=True)
def bounding_box(X):
    """X's smallest and largest value per feature, float64 (d,) each, in one pass over its rows
    (NumPy's ``min(axis=0)`` and ``max(axis=0)`` took 4 ms at 66668 x 3 float32, Zen 4)."""
    n, d = X.shape
    lo = np.full(d, np.inf)
    hi = np.full(d, -np.inf)
    for i in range(n):
        for t in range(d):
            v = np.float64(X[i, t])
            lo[t] = min(lo[t], v)
            hi[t] = max(hi[t], v)
    return lo, hi


def spatial_order(X: np.ndarray) -> np.ndarray:
    """Row indices of X (n, d) along a Hilbert curve over X's bounding box, int64 (n,). The key
    holds KEY_BITS bits: past that many features only the first order the rows."""
    X = X[:, :KEY_BITS]
    bits = max(1, KEY_BITS // X.shape[1])
    lo, hi = bounding_box(X)
    span = hi - lo
    scale = np.where(span > 0, ((1 << bits) - 1) / np.where(span > 0, span, 1.0), 0.0)
    return radix_order(hilbert_keys(X, lo, scale, bits))


#: ranges short enough for an insertion sort in ``_select``
_SHORT = 16


@njit(cache=True)
def _swap_rows(W, idx, i, j):
    for t in range(W.shape[1]):
        W[i, t], W[j, t] = W[j, t], W[i, t]
    idx[i], idx[j] = idx[j], idx[i]


@njit(cache=True)
def _select(W, idx, t, lo, hi, kth):
    """Reorder rows ``lo:hi`` of W (and ``idx`` with them) so that none before ``kth`` has a
    larger feature ``t`` than any from ``kth`` on: Hoare's quickselect, whose equal keys stop
    both scans, so many equal values still split evenly."""
    while hi - lo > _SHORT:
        a, b, c = W[lo, t], W[(lo + hi) // 2, t], W[hi - 1, t]
        pivot = max(min(a, b), min(max(a, b), c))
        i, j = lo, hi - 1
        while i <= j:
            while W[i, t] < pivot:
                i += 1
            while W[j, t] > pivot:
                j -= 1
            if i <= j:
                _swap_rows(W, idx, i, j)
                i += 1
                j -= 1
        if kth <= j:
            hi = j + 1
        elif kth >= i:
            lo = i
        else:
            return
    for i in range(lo + 1, hi):
        j = i
        while j > lo and W[j, t] < W[j - 1, t]:
            _swap_rows(W, idx, j, j - 1)
            j -= 1


@njit(cache=True)
def _split(W, idx, lo, hi, leaf):
    """Split rows ``lo:hi`` (more than one leaf) at the median of their widest feature, the left
    part whole leaves, so that only the last leaf may be short; returns where the right begins."""
    widest, span = 0, -1.0
    for t in range(W.shape[1]):
        small = large = W[lo, t]
        for i in range(lo + 1, hi):
            small = min(small, W[i, t])
            large = max(large, W[i, t])
        if large - small > span:
            widest, span = t, large - small
    middle = lo + ((hi - lo + leaf - 1) // leaf + 1) // 2 * leaf
    _select(W, idx, widest, lo, hi, middle)
    return middle


@njit(cache=True)
def _subtree(W, idx, lo, hi, leaf):
    stack = np.empty((128, 2), dtype=np.int64)
    stack[0, 0], stack[0, 1] = lo, hi
    top = 1
    while top:
        top -= 1
        lo, hi = stack[top, 0], stack[top, 1]
        if hi - lo > leaf:
            middle = _split(W, idx, lo, hi, leaf)
            stack[top, 0], stack[top, 1] = lo, middle
            stack[top + 1, 0], stack[top + 1, 1] = middle, hi
            top += 2


#: levels of the tree split node by node in parallel before each thread takes whole subtrees
_SHARED_LEVELS = 3


@njit(parallel=True, cache=True)
def kd_order(X, leaf):
    """Row indices of X (n, d) in k-d order with leaves of ``leaf`` rows, int64 (n,): each run
    of ``leaf`` from the start is one leaf, split from the next at the median of the widest
    feature of the rows they share; the left part of every split is whole leaves, so only the
    last leaf may be short."""
    n = X.shape[0]
    W = X.copy()  # moved with the indices, so every split reads its rows in order
    idx = np.arange(n)
    bounds = np.array([0, n])
    for _ in range(_SHARED_LEVELS):
        nodes = bounds.size - 1
        middles = np.empty(nodes, dtype=np.int64)
        for s in prange(nodes):
            lo, hi = bounds[s], bounds[s + 1]
            middles[s] = _split(W, idx, lo, hi, leaf) if hi - lo > leaf else hi
        cuts = np.empty(2 * nodes + 1, dtype=np.int64)
        # a plain loop: written as slice assignments (cuts[1::2] = middles), Numba 0.68's
        # parallel compile split the rows wrongly (tests/test_numba.py caught it)
        for s in range(nodes):
            cuts[2 * s], cuts[2 * s + 1] = bounds[s], middles[s]
        cuts[2 * nodes] = n
        bounds = cuts
    for s in prange(bounds.size - 1):
        _subtree(W, idx, bounds[s], bounds[s + 1], leaf)
    return idx


@njit(parallel=True, cache=True)
def panels_in_order(X, order, rows):
    """X's rows ``order`` as (ceil(n / rows), d, rows) panels, the last padded with its last row,
    and each panel's bounding box (lo, hi), both (ceil(n / rows), d)."""
    n, d = X.shape
    nb = (n + rows - 1) // rows
    panels = np.empty((nb, d, rows), dtype=X.dtype)
    lo = np.empty((nb, d), dtype=X.dtype)
    hi = np.empty((nb, d), dtype=X.dtype)
    for b in prange(nb):
        for r in range(rows):
            i = order[min(b * rows + r, n - 1)]
            for t in range(d):
                panels[b, t, r] = X[i, t]
        for t in range(d):
            lo[b, t] = panels[b, t, 0]
            hi[b, t] = panels[b, t, 0]
            for r in range(1, rows):
                lo[b, t] = min(lo[b, t], panels[b, t, r])
                hi[b, t] = max(hi[b, t], panels[b, t, r])
    return panels, lo, hi


def arrange_centres(C: np.ndarray, half: np.ndarray, group: int):
    """The centres (k, d) and their ``half`` norms (k,) in spatial order, padded with the last
    to whole groups of ``group``, each group's centres by index (the tile's search inside a
    group then keeps the first least value: the lowest index, as the fused tile does).

    Returns ``sorted_c`` (groups x group, d), its transpose (d, groups x group) and ``half_norms``
    in C's dtype, ``index`` (int32: each sorted centre's row in C), and each group's box ``lo``,
    ``hi`` (d, groups).
    """
    k, d = C.shape
    order = kd_order(np.ascontiguousarray(C), group)
    groups = -(-k // group)
    order = np.sort(np.concatenate([order, np.full(groups * group - k, order[-1])]).reshape(groups, group),
                    axis=1).ravel()
    sorted_c = np.ascontiguousarray(C[order])
    half = np.ascontiguousarray(half[order], dtype=C.dtype)
    boxes = sorted_c.reshape(groups, group, d)
    return (sorted_c, np.ascontiguousarray(sorted_c.T), half, order.astype(np.int32),
            np.ascontiguousarray(boxes.min(axis=1).T), np.ascontiguousarray(boxes.max(axis=1).T))


def rounding_margin(dtype, d: int, largest_x: float, largest_c: float) -> float:
    """A bound on how far the tile's value of a pair (``||c||^2/2 - x.c`` in ``dtype``, one
    rounding per operation) and a box bound (in ``dtype``) can stray, in squared-distance
    units: ``largest_x``, ``largest_c`` are the largest norms of a row and of a centre. Four
    times a rounding of every term, so a skipped group's value cannot tie a row's best."""
    return float(4 * (d + 4) * np.finfo(dtype).eps * (largest_x + largest_c) ** 2)
