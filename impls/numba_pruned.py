"""Rows and centres in spatial order, for the pruned tile (``numba_tiles.pruned_*``).

Near points get near positions, so a tile of consecutive rows and a group of consecutive
centres each fill a small box, and a tile can skip every group whose box lies farther than
its rows' best centres. The rows, many and ordered once per fit, go along a Z-order curve
(a radix sort of Morton keys: linear time). The centres, few and ordered every pass, go in
k-d order (split at the median of their widest feature, down to one group), whose groups
make smaller boxes than a curve cut across its jumps: at 66668 x 3, k=2723 a tile had to visit
25.9 groups on average (its best known in advance) with centres along the curve and 17.3 in
k-d order, and the pass ran 1.4-1.9x faster (k from 2528 to 4000, d = 3-4, Zen 4). The rows in
k-d order too made it 11.9 and the pass 5-25% faster again, but their order cost more than that
saved over a fit at 200000 x 3 (26.4 ms against the curve's 5.6; quickselect's branches).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def morton_keys(X, lo, scale, bits):
    """Each row's position on the Z-order curve: ``bits`` bits per feature, interleaved."""
    n, d = X.shape
    keys = np.empty(n, dtype=np.uint64)
    top = (1 << bits) - 1
    for i in prange(n):
        key = np.uint64(0)
        for t in range(d):
            q = min(max(int((X[i, t] - lo[t]) * scale[t]), 0), top)
            for bit in range(bits):
                key |= np.uint64((q >> bit) & 1) << np.uint64(bit * d + t)
        keys[i] = key
    return keys


#: the radix sort's passes, over 2^RADIX_BITS buckets each
RADIX_BITS = 11
RADIX_PASSES = 3
#: bits of a Z-order key: enough cells for rows to share one rarely (11 bits per feature at
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
    """Row indices of X (n, d) along a Z-order curve over X's bounding box, int64 (n,). The key
    holds KEY_BITS bits: past that many features only the first order the rows."""
    X = X[:, :KEY_BITS]
    bits = max(1, KEY_BITS // X.shape[1])
    lo, hi = bounding_box(X)
    span = hi - lo
    scale = np.where(span > 0, ((1 << bits) - 1) / np.where(span > 0, span, 1.0), 0.0)
    return radix_order(morton_keys(X, lo, scale, bits))


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
    to whole groups of ``group``.

    Returns ``sorted_c`` (groups x group, d) and ``half_norms`` in C's dtype, ``index`` (int32:
    each sorted centre's row in C), and each group's box ``lo``, ``hi`` (d, groups).
    """
    k, d = C.shape
    order = kd_order(np.ascontiguousarray(C), group)
    groups = -(-k // group)
    order = np.concatenate([order, np.full(groups * group - k, order[-1])])
    sorted_c = np.ascontiguousarray(C[order])
    half = np.ascontiguousarray(half[order], dtype=C.dtype)
    boxes = sorted_c.reshape(groups, group, d)
    return (sorted_c, half, order.astype(np.int32), np.ascontiguousarray(boxes.min(axis=1).T),
            np.ascontiguousarray(boxes.max(axis=1).T))


def rounding_margin(dtype, d: int, largest_x: float, largest_c: float) -> float:
    """A bound on how far the tile's value of a pair (``||c||^2/2 - x.c`` in ``dtype``, one
    rounding per operation) and a box bound (in ``dtype``) can stray, in squared-distance
    units: ``largest_x``, ``largest_c`` are the largest norms of a row and of a centre. Four
    times a rounding of every term, so a skipped group's value cannot tie a row's best."""
    return float(4 * (d + 4) * np.finfo(dtype).eps * (largest_x + largest_c) ** 2)
