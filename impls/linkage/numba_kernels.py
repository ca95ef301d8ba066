"""Numba kernels for hierarchical clustering: Prim's tree, the nearest-neighbour chain on
centroids (ward) and on a condensed distance matrix (complete, average).

Every kernel splits its scans over ``parts`` contiguous slices run by ``prange`` (one per
thread): each slice returns its own minimum and the caller reduces them, so the result does
not depend on the thread count. Distances are exact differences in float64 (never the
``||x||^2 - 2 x.y + ||y||^2`` identity, whose cancellation would cost the contract's 1e-9).

The kernels return merges as ``(representative point of one side, of the other, height)`` in
the order they happened; :func:`merges_to_linkage` sorts them by height and numbers the
clusters as SciPy does.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

#: below this many coordinates per scan (m*d) one thread scans alone: forking costs more than it saves
PARALLEL_MIN = 1 << 15
#: reassociation lets LLVM vectorise the d-long sums; no "nnan"/"ninf": the scans compare against inf
FAST = {"reassoc", "contract"}


@njit(cache=True)
def _bounds(m, parts, p):
    """The p-th of ``parts`` near-equal slices of range(m)."""
    return (m * p) // parts, (m * (p + 1)) // parts


@njit(cache=True)
def by_spread(X):
    """A copy of X (n, d), centred, with its columns in decreasing order of variance.

    Distances do not change under a translation or a permutation of the coordinates; the ward
    scan sums the widest half of the coordinates first and skips a cluster whose partial cost
    already reaches the best so far (exact pruning: a sum of squares only grows). Prim's scan
    does not: there a point must only beat its own distance to the tree, which the partial sum
    rarely reaches, and the branch cost more than it saved (measured: 16 against 8-13 ns a point).
    """
    n, d = X.shape
    mean = np.zeros(d)
    for i in range(n):
        for k in range(d):
            mean[k] += X[i, k]
    mean /= n
    var = np.zeros(d)
    for i in range(n):
        for k in range(d):
            t = X[i, k] - mean[k]
            var[k] += t * t
    order = np.argsort(-var)
    out = np.empty((n, d))
    for i in range(n):
        for k in range(d):
            out[i, k] = X[i, order[k]] - mean[order[k]]
    return out


# -- single linkage: Prim's minimum spanning tree, O(n*d) memory -------------------------------


@njit(cache=True, fastmath=FAST)
def _prim_scan(Xp, cur, cur_id, best, link, lo, hi):
    """Lower best[j] (j in [lo, hi)) to the squared distance to ``cur``; return the smallest and where."""
    d = Xp.shape[1]
    bv = np.inf
    bi = -1
    for j in range(lo, hi):
        s = 0.0
        for k in range(d):
            diff = Xp[j, k] - cur[k]
            s += diff * diff
        if s < best[j]:
            best[j] = s
            link[j] = cur_id
        if best[j] < bv:
            bv = best[j]
            bi = j
    return bv, bi


@njit(parallel=True, cache=True)
def _prim_parts(Xp, cur, cur_id, best, link, m, parts, part_val, part_idx):
    """:func:`_prim_scan` over ``parts`` slices of Xp[:m] in parallel. Kept apart from the loop
    around it: in a ``parallel=True`` function numba also forks threads for every array
    expression, several times a step."""
    for p in prange(parts):
        lo, hi = _bounds(m, parts, p)
        part_val[p], part_idx[p] = _prim_scan(Xp, cur, cur_id, best, link, lo, hi)


@njit(cache=True)
def probe_scans(X, parts, reps):
    """``reps`` scans of Prim's step over X (m, d) split in ``parts``: what one step of every kernel
    here costs, for choosing whether threads pay (their fork and join against the work they share)."""
    m = X.shape[0]
    best = np.full(m, np.inf)
    link = np.zeros(m, np.int64)
    part_val = np.empty(parts)
    part_idx = np.empty(parts, np.int64)
    total = 0
    for r in range(reps):
        cur = X[(r * 7919) % m].copy()
        if parts == 1:
            part_val[0], part_idx[0] = _prim_scan(X, cur, r, best, link, 0, m)
        else:
            _prim_parts(X, cur, r, best, link, m, parts, part_val, part_idx)
        total += part_idx[0]
    return total


@njit(cache=True)
def prim_tree(X, parts):
    """The minimum spanning tree of X (n, d) under Euclidean distance, by Prim's algorithm.

    The points not yet in the tree are kept compacted at the front of a permuted copy of X,
    so each step's scan (lower every outside point's distance to the tree by the point just
    added, and find the closest) streams over contiguous memory. Memory: O(n*d).

    Returns (a, b, heights): the n - 1 edges in the order Prim added them.
    """
    n, d = X.shape
    Xp = X.copy()
    ident = np.arange(n)
    best = np.full(n, np.inf)        # squared distance of each outside point to the tree
    link = np.zeros(n, np.int64)     # the tree point that distance is to
    part_val = np.empty(parts)
    part_idx = np.empty(parts, np.int64)
    a = np.empty(n - 1, np.int64)
    b = np.empty(n - 1, np.int64)
    h = np.empty(n - 1)
    cur = Xp[0].copy()
    cur_id = 0
    m = n - 1                        # outside points, in Xp[:m] after moving point 0 out
    Xp[0] = Xp[m]
    ident[0] = ident[m]
    for step in range(n - 1):
        if parts == 1 or m * d < PARALLEL_MIN:
            part_val[:] = np.inf
            part_idx[:] = -1
            part_val[0], part_idx[0] = _prim_scan(Xp, cur, cur_id, best, link, 0, m)
        else:
            _prim_parts(Xp, cur, cur_id, best, link, m, parts, part_val, part_idx)
        j = -1
        for p in range(parts):
            if part_idx[p] >= 0 and (j < 0 or part_val[p] < best[j]):
                j = part_idx[p]
        a[step] = link[j]
        b[step] = ident[j]
        h[step] = np.sqrt(best[j])
        cur[:] = Xp[j]
        cur_id = ident[j]
        m -= 1
        Xp[j] = Xp[m]
        ident[j] = ident[m]
        best[j] = best[m]
        link[j] = link[m]
    return a, b, h


# -- ward: nearest-neighbour chain on centroids, O(n*d) memory ---------------------------------


@njit(cache=True, fastmath=FAST)
def _ward_scan(C, size, q, lo, hi, bound):
    """Smallest ward cost ``|q||j| / (|q| + |j|) * ||c_q - c_j||^2`` from position q to j in [lo, hi),
    j != q, below ``bound``, and that j (the lowest on ties; -1 when none is below ``bound``).

    The cost over the first half of the coordinates (the widest, see :func:`by_spread`) is a
    lower bound: a cluster whose partial cost reaches the best so far is skipped.
    """
    d = C.shape[1]
    half = (d + 1) // 2
    sq = size[q]
    bv = bound
    bi = -1
    for j in range(lo, hi):
        s = 0.0
        for k in range(half):
            diff = C[j, k] - C[q, k]
            s += diff * diff
        # s * f >= bv with f = |q||j| / (|q| + |j|), multiplied out: no division for the many pruned
        if s * (sq * size[j]) >= bv * (sq + size[j]):
            continue
        for k in range(half, d):
            diff = C[j, k] - C[q, k]
            s += diff * diff
        s *= sq * size[j] / (sq + size[j])
        if s < bv and j != q:
            bv = s
            bi = j
    return bv, bi


@njit(parallel=True, cache=True)
def _ward_parts(C, size, m, q, bound, parts, part_val, part_idx):
    for p in prange(parts):
        lo, hi = _bounds(m, parts, p)
        part_val[p], part_idx[p] = _ward_scan(C, size, q, lo, hi, bound)


@njit(cache=True)
def _nearest_centroid(C, size, m, q, bound, parts, part_val, part_idx):
    """Position of the active cluster (in C[:m]) with the smallest ward cost to position q below
    ``bound``, and that cost; -1 when none is below it. Ties go to the lowest position."""
    if parts == 1 or m * C.shape[1] < PARALLEL_MIN:
        v, j = _ward_scan(C, size, q, 0, m, bound)
        return j, v
    _ward_parts(C, size, m, q, bound, parts, part_val, part_idx)
    j = -1
    v = bound
    for p in range(parts):
        if part_idx[p] >= 0 and (j < 0 or part_val[p] < v):
            v = part_val[p]
            j = part_idx[p]
    return j, v


@njit(cache=True)
def ward_chain(X, parts):
    """Ward linkage of X (n, d) by the nearest-neighbour chain over centroids and sizes.

    The active clusters' centroids stay compacted in C[:m]; a merged cluster takes the lower
    position and the last active cluster fills the other. The chain holds stable keys (the
    representative point of each cluster), so moving a row does not break it, and the cost of
    each link as it was found: a search from the top looks only below the cost that linked the
    top, and the previous link wins ties, so the costs along the chain strictly decrease and it
    cannot cycle. Memory: O(n*d).

    Returns (a, b, heights) in merge order; a and b are representative points.
    """
    n, d = X.shape
    C = by_spread(X)
    size = np.ones(n)
    tall = np.zeros(n)               # height of each active cluster's last merge
    key = np.arange(n)               # position -> representative point
    where = np.arange(n)             # representative point -> position
    chain = np.empty(n, np.int64)    # representative points
    cost = np.empty(n)               # cost[i]: the ward cost that linked chain[i - 1] to chain[i]
    part_val = np.empty(parts)
    part_idx = np.empty(parts, np.int64)
    a = np.empty(n - 1, np.int64)
    b = np.empty(n - 1, np.int64)
    h = np.empty(n - 1)
    m = n
    length = 0
    for step in range(n - 1):
        if length == 0:
            chain[0] = key[0]
            cost[0] = np.inf
            length = 1
        while True:
            q = where[chain[length - 1]]
            j, v = _nearest_centroid(C, size, m, q, cost[length - 1], parts, part_val, part_idx)
            if length >= 2:
                prev = where[chain[length - 2]]
                if j < 0 or j == prev:
                    # nothing closer than the link from prev: q and prev are reciprocal nearest neighbours
                    j, v = prev, min(v, cost[length - 1])
                    break
            chain[length] = key[j]
            cost[length] = v
            length += 1
        length -= 2
        s, t = (q, j) if q < j else (j, q)
        a[step] = key[s]
        b[step] = key[t]
        # Rounding must not put a merge below its children: heights would then sort out of order.
        h[step] = max(np.sqrt(2.0 * v), tall[s], tall[t])
        total = size[s] + size[t]
        for k in range(d):
            C[s, k] = (size[s] * C[s, k] + size[t] * C[t, k]) / total
        size[s] = total
        tall[s] = h[step]
        m -= 1
        if t != m:
            C[t] = C[m]
            size[t] = size[m]
            tall[t] = tall[m]
            key[t] = key[m]
            where[key[t]] = t
    return a, b, h


# -- complete and average: nearest-neighbour chain on the condensed matrix ---------------------


@njit(cache=True, inline="always")
def _cond(n, i, j):
    """Index of the pair i < j in SciPy's condensed matrix of n points."""
    return n * i - (i * (i + 1)) // 2 + j - i - 1


@njit(parallel=True, cache=True, fastmath=FAST)
def condensed_distances(X, parts):
    """SciPy's condensed Euclidean distance matrix of X (n, d), float64, length n(n-1)/2.

    Rows are dealt to the threads in an interleaved order, so that each gets a share of the
    long first rows and of the short last ones.
    """
    n, d = X.shape
    out = np.empty(n * (n - 1) // 2)
    for p in prange(parts):
        for i in range(p, n - 1, parts):
            base = _cond(n, i, i + 1)
            for j in range(i + 1, n):
                s = 0.0
                for k in range(d):
                    diff = X[i, k] - X[j, k]
                    s += diff * diff
                out[base + j - i - 1] = np.sqrt(s)
    return out


@njit(cache=True)
def _slot_scan(D, n, act, q, lo, hi):
    """Smallest distance from slot q to the active slots act[lo:hi] other than q, and its index
    in act (the lowest on ties; -1 when there is none)."""
    bv = np.inf
    bi = -1
    for r in range(lo, hi):
        j = act[r]
        if j < q:
            v = D[_cond(n, j, q)]
        elif j > q:
            v = D[_cond(n, q, j)]
        else:
            continue
        if v < bv:
            bv = v
            bi = r
    return bv, bi


@njit(parallel=True, cache=True)
def _slot_parts(D, n, act, m, q, parts, part_val, part_idx):
    for p in prange(parts):
        lo, hi = _bounds(m, parts, p)
        part_val[p], part_idx[p] = _slot_scan(D, n, act, q, lo, hi)


@njit(cache=True)
def _nearest_slot(D, n, act, m, q, parts, part_val, part_idx):
    """Index into act[:m] of the active slot closest to slot q, and that distance. Ties: lowest."""
    if parts == 1 or m < PARALLEL_MIN:
        v, r = _slot_scan(D, n, act, q, 0, m)
        return r, v
    _slot_parts(D, n, act, m, q, parts, part_val, part_idx)
    r = -1
    v = np.inf
    for p in range(parts):
        if part_idx[p] >= 0 and (r < 0 or part_val[p] < v):
            v = part_val[p]
            r = part_idx[p]
    return r, v


@njit(cache=True)
def _merge_range(D, n, act, s, t, ws, wt, average, lo, hi):
    """Lance-Williams for the active slots act[lo:hi]: distances of slot s (now s+t) to them."""
    for r in range(lo, hi):
        v = act[r]
        if v == s or v == t:
            continue
        i_s = _cond(n, v, s) if v < s else _cond(n, s, v)
        i_t = _cond(n, v, t) if v < t else _cond(n, t, v)
        if average:
            D[i_s] = ws * D[i_s] + wt * D[i_t]
        elif D[i_t] > D[i_s]:
            D[i_s] = D[i_t]


@njit(parallel=True, cache=True)
def _merge_parts(D, n, act, m, s, t, ws, wt, average, parts):
    for p in prange(parts):
        lo, hi = _bounds(m, parts, p)
        _merge_range(D, n, act, s, t, ws, wt, average, lo, hi)


@njit(cache=True)
def _merge_rows(D, n, act, m, s, t, size_s, size_t, average, parts):
    """The distances of slot s (now s+t) to every other active slot."""
    ws = size_s / (size_s + size_t)
    wt = size_t / (size_s + size_t)
    if parts == 1 or m < PARALLEL_MIN:
        _merge_range(D, n, act, s, t, ws, wt, average, 0, m)
    else:
        _merge_parts(D, n, act, m, s, t, ws, wt, average, parts)


@njit(cache=True)
def matrix_chain(D, n, average, parts):
    """Complete (``average=False``) or average linkage by the nearest-neighbour chain on the
    condensed matrix D (overwritten). A merged cluster keeps the lower slot.

    Returns (a, b, heights) in merge order; a and b are the slots (representative points).
    """
    act = np.arange(n)               # active slots, ascending, so scans walk memory forwards
    pos = np.arange(n)               # slot -> index in act
    size = np.ones(n)
    tall = np.zeros(n)
    chain = np.empty(n, np.int64)
    part_val = np.empty(parts)
    part_idx = np.empty(parts, np.int64)
    a = np.empty(n - 1, np.int64)
    b = np.empty(n - 1, np.int64)
    h = np.empty(n - 1)
    m = n
    length = 0
    for step in range(n - 1):
        if length == 0:
            chain[0] = act[0]
            length = 1
        while True:
            q = chain[length - 1]
            r, v = _nearest_slot(D, n, act, m, q, parts, part_val, part_idx)
            j = act[r]
            if length >= 2:
                prev = chain[length - 2]
                pv = D[_cond(n, prev, q)] if prev < q else D[_cond(n, q, prev)]
                if pv <= v:
                    j, v = prev, pv
                if j == prev:
                    break
            chain[length] = j
            length += 1
        length -= 2
        s, t = (q, j) if q < j else (j, q)
        a[step] = s
        b[step] = t
        h[step] = max(v, tall[s], tall[t])
        _merge_rows(D, n, act, m, s, t, size[s], size[t], average, parts)
        size[s] += size[t]
        tall[s] = h[step]
        # Drop t from the active list, keeping it ascending.
        for r in range(pos[t], m - 1):
            act[r] = act[r + 1]
            pos[act[r]] = r
        m -= 1
    return a, b, h


# -- from merges to SciPy's Z ----------------------------------------------------------------


@njit(cache=True)
def _root(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True)
def _label(a, b, h, order, n):
    parent = np.arange(2 * n - 1)
    size = np.ones(2 * n - 1)
    Z = np.empty((n - 1, 4))
    for row in range(n - 1):
        e = order[row]
        x = _root(parent, a[e])
        y = _root(parent, b[e])
        if x > y:
            x, y = y, x
        Z[row, 0] = x
        Z[row, 1] = y
        Z[row, 2] = h[e]
        Z[row, 3] = size[x] + size[y]
        parent[x] = n + row
        parent[y] = n + row
        size[n + row] = Z[row, 3]
    return Z


def merges_to_linkage(a, b, h):
    """SciPy's Z (n - 1, 4) from merges given as any point of each side and a height.

    The merges are sorted by height (stably, so equal heights keep their order and a cluster
    is always made before it merges again), and a union-find names the clusters:
    points 0..n-1, the cluster made at row r is n + r, and Z[r, 0] < Z[r, 1].
    """
    order = np.argsort(h, kind="stable")
    return _label(np.asarray(a, np.int64), np.asarray(b, np.int64), np.asarray(h, np.float64), order, len(h) + 1)
