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
