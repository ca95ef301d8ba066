"""Shapes to record so a cost model can be fitted: a space-filling design in (log n, log k, log d).

A maximin Latin hypercube in log space, pure NumPy and seeded, so the same arguments
give the same shapes on every machine (asv fixes its parameter lists when it imports
the suites). Each axis is cut into ``count`` strata and every stratum holds one shape,
so the model sees every size of n, k and d, and among ``tries`` random hypercubes the
one whose closest two shapes are farthest apart is kept. Shapes above ``work_cap``
(n*k*d) or ``rows_cap`` (n*d) are pulled towards the low corner along their own log
direction until they fit, which keeps their stratum on the axes that matter least.

    >>> from kmbench.advise.design import latin_shapes
    >>> latin_shapes(4, n=(1e3, 1e6), k=(2, 1024), d=(2, 256), work_cap=1e9)  # doctest: +SKIP
    [(1000, 45, 128), ...]
"""
from __future__ import annotations

import math

import numpy as np


def _maximin_lhs(count: int, dims: int, seed: int, tries: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    best, best_gap = None, -1.0
    for _ in range(tries):
        cube = (np.stack([rng.permutation(count) for _ in range(dims)], axis=1) + rng.random((count, dims))) / count
        if count > 1:
            diff = cube[:, None, :] - cube[None, :, :]
            dist = np.sqrt((diff ** 2).sum(-1)) + np.eye(count) * 10
            gap = float(dist.min())
        else:
            gap = 0.0
        if gap > best_gap:
            best, best_gap = cube, gap
    return best


def latin_shapes(count: int, *, n=(1_000, 1_000_000), k=(2, 1024), d=(2, 256), work_cap: float = 1e9,
                 rows_cap: float = 5e7, seed: int = 0, tries: int = 200) -> list[tuple[int, int, int]]:
    """``count`` shapes (n, k, d) spread over the box ``n x k x d`` in log space.

    Parameters
    ----------
    count : int
        Shapes wanted (>= 1).
    n, k, d : (low, high)
        Ranges of each axis, inclusive.
    work_cap : float
        Largest n*k*d of a shape: one iteration's distance work.
    rows_cap : float
        Largest n*d: the data's size in values.
    seed, tries : int
        The random hypercubes tried; the most spread-out one is kept.

    Returns
    -------
    list of (int, int, int)
        Sorted by work, k <= n in every shape, no duplicates.
    """
    if count < 1:
        raise ValueError(f"count={count} should be >= 1")
    for name, (low, high) in (("n", n), ("k", k), ("d", d)):
        if not 1 <= low <= high:
            raise ValueError(f"{name}=({low}, {high}) should satisfy 1 <= low <= high")
    lo = np.log([n[0], k[0], d[0]])
    hi = np.log([n[1], k[1], d[1]])
    if lo.sum() > math.log(work_cap) or lo[0] + lo[2] > math.log(rows_cap):
        raise ValueError(f"the smallest shape {n[0]}x{k[0]}x{d[0]} is above work_cap={work_cap:g} or "
                         f"rows_cap={rows_cap:g}")
    unit = _maximin_lhs(count, 3, seed, tries)
    shapes = []
    for u in unit:
        x = lo + u * (hi - lo)
        # shrink towards the low corner until both caps hold
        over = max(0.0, x.sum() - math.log(work_cap)) / max((x - lo).sum(), 1e-12)
        over_rows = max(0.0, x[0] + x[2] - math.log(rows_cap)) / max((x - lo)[[0, 2]].sum(), 1e-12)
        x = lo + (x - lo) * (1.0 - min(1.0, max(over, over_rows)))
        nn, kk, dd = (int(round(math.exp(v))) for v in x)
        kk = min(kk, nn)
        # rounding may step just over a cap
        while (nn * kk * dd > work_cap or nn * dd > rows_cap) and nn > max(n[0], kk):
            nn -= max(1, nn // 1000)
        shapes.append((nn, kk, dd))
    return sorted(dict.fromkeys(shapes), key=lambda s: (s[0] * s[1] * s[2], s))


def orthogonal_shapes(levels: int, *, n=(2_000, 500_000), k=(2, 512), d=(2, 256), work_cap: float = 1e9,
                      rows_cap: float = 1e7) -> tuple[list[tuple[int, int, int]], tuple[list, list, list]]:
    """``levels**2`` shapes on ``levels`` values per axis: a Latin square over (n, k, d).

    Each axis gets ``levels`` values evenly spaced in log space; the shapes are the cells
    (i, j) of a Latin square with d's level in the cell, so every pair of axes sees every
    pair of its levels exactly once (an orthogonal array of strength 2) while only one
    in ``levels`` of the full product is run. This is what lets an asv suite, whose
    parameters are always a full product, record a space-filling design: its parameter
    lists are the levels, and cells outside the square are skipped before any work.
    Among the squares tried (d's levels permuted over a cyclic square), the one with the
    most cells under both caps, then the most spread out, is kept; cells over a cap are
    left out.

    Returns
    -------
    shapes : list of (int, int, int)
        Sorted by work.
    levels : (list of int, list of int, list of int)
        The values of n, k and d.
    """
    import itertools

    if levels < 2:
        raise ValueError(f"levels={levels} should be >= 2")
    axes = [sorted({int(round(v)) for v in np.geomspace(lo, hi, levels)}) for lo, hi in (n, k, d)]
    if any(len(a) < levels for a in axes):
        raise ValueError(f"the ranges n={n}, k={k}, d={d} hold fewer than levels={levels} distinct integers")
    best, best_key = None, None
    perms = itertools.permutations(range(levels))
    if levels > 6:  # levels! squares would take seconds: a seeded sample of them
        rng = np.random.default_rng(0)
        perms = [tuple(range(levels))] + [tuple(rng.permutation(levels)) for _ in range(500)]
    for perm in perms:
        cells = [(axes[0][i], axes[1][j], axes[2][perm[(i + j) % levels]])
                 for i in range(levels) for j in range(levels)]
        kept = [c for c in cells if c[0] * c[1] * c[2] <= work_cap and c[0] * c[2] <= rows_cap and c[1] <= c[0]]
        x = np.log(np.array(kept, float))
        gap = float(np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1) + np.eye(len(x)) * 1e9).min()) if len(x) > 1 else 0
        key = (len(kept), gap)
        if best_key is None or key > best_key:
            best, best_key = kept, key
    return sorted(best, key=lambda s: (s[0] * s[1] * s[2], s)), tuple(axes)
