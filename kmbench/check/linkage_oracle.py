"""The float64 oracle for hierarchical clustering, as docs/contract.md states it, written to be read.

It is the textbook O(n^3) algorithm: a full matrix of Euclidean distances between
clusters; at every step the closest pair of active clusters merges, and the distances
from the new cluster to the others follow the Lance-Williams update of the method. It
favours clarity over speed (n of a few hundred at most) and shares no code with the
backends in ``impls/linkage/``, so a bug in their kernels cannot hide here.

Besides the oracle itself, this module holds the contract's comparison (:func:`agreement`)
and a tie-robust check of any linkage matrix (:func:`replay`), both used by the tests,
``kmbench check`` and the benchmarks' quality tracks.
"""
from __future__ import annotations

import numpy as np

METHODS = ("single", "complete", "average", "ward")


def pairwise_distances(X: np.ndarray) -> np.ndarray:
    """``D[i, j] = ||X[i] - X[j]||`` by exact differences, shape (n, n), float64."""
    diff = X[:, None, :] - X[None, :, :]
    return np.sqrt((diff * diff).sum(axis=2))


def lance_williams(method: str, d_sv: float, d_tv: float, d_st: float, n_s: int, n_t: int, n_v: int) -> float:
    """Distance from the merged cluster s+t to cluster v (the contract's table)."""
    if method == "single":
        return min(d_sv, d_tv)
    if method == "complete":
        return max(d_sv, d_tv)
    if method == "average":
        return (n_s * d_sv + n_t * d_tv) / (n_s + n_t)
    if method == "ward":
        total = n_s + n_t + n_v
        squared = ((n_v + n_s) * d_sv ** 2 + (n_v + n_t) * d_tv ** 2 - n_v * d_st ** 2) / total
        return float(np.sqrt(max(squared, 0.0)))
    raise ValueError(f"method={method!r} should be one of {', '.join(METHODS)}")


def linkage(X, method: str = "ward") -> np.ndarray:
    """SciPy's linkage matrix of X (n, d) under ``method``, shape (n - 1, 4), float64.

    Ties go to the pair (i, j) with the lowest i, then the lowest j, in the matrix's slots;
    a merged cluster takes the slot of its first member. Row r merges cluster ids
    ``Z[r, 0] < Z[r, 1]`` (points are 0..n-1, the cluster made at row r is n + r).
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} should be one of {', '.join(METHODS)}")
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    D = pairwise_distances(X)
    active = list(range(n))          # the slots still holding a cluster
    ident = list(range(n))           # the cluster id in each slot
    size = [1] * n
    Z = np.zeros((n - 1, 4))
    for row in range(n - 1):
        # 1. The closest pair of active clusters.
        best, pair = np.inf, None
        for a_pos, s in enumerate(active):
            for t in active[a_pos + 1:]:
                if D[s, t] < best:
                    best, pair = D[s, t], (s, t)
        s, t = pair
        # 2. Record the merge.
        Z[row] = [min(ident[s], ident[t]), max(ident[s], ident[t]), best, size[s] + size[t]]
        # 3. Distances from the merged cluster (kept in slot s) to every other active cluster.
        for v in active:
            if v != s and v != t:
                D[s, v] = D[v, s] = lance_williams(method, D[s, v], D[t, v], D[s, t], size[s], size[t], size[v])
        active.remove(t)
        size[s] += size[t]
        ident[s] = n + row
    return Z


def merge_heights(Z) -> np.ndarray:
    """The merge heights of a linkage matrix, sorted: what no tie-breaking can change for single linkage."""
    return np.sort(np.asarray(Z, dtype=np.float64)[:, 2])


def clean_cuts(heights: np.ndarray, rtol: float, max_clusters: int | None = None) -> list[int]:
    """Cluster counts k whose cut does not fall on a near-tie of sorted ``heights`` (length n - 1).

    Cutting into k clusters undoes the last k - 1 merges: it lies between heights[n-k-1]
    (the last merge kept) and heights[n-k] (the first undone). When the two are within
    ``rtol`` (relative to the largest height) a tie decides which points are together.
    """
    n = len(heights) + 1
    scale = max(float(np.max(np.abs(heights))), np.finfo(np.float64).tiny) if len(heights) else 1.0
    top = n if max_clusters is None else min(n, max_clusters)
    return [k for k in range(2, top) if heights[n - k] - heights[n - k - 1] > rtol * scale]


def agreement(Z, Z_ref, *, rtol: float = 1e-9, max_clusters: int = 20) -> dict:
    """The contract's comparison of ``Z`` with the reference ``Z_ref`` (both (n - 1, 4)).

    Returns ``{"height_error": max relative error of the sorted heights (relative to the
    largest reference height), "min_ari": the smallest adjusted Rand index of
    ``fcluster(.., k, "maxclust")`` over the clean cuts k in 2..max_clusters (1.0 if none),
    "cuts": those k, "valid": is_valid_linkage(Z) and heights never decrease,
    "ok": all of it within the contract}``.
    """
    from scipy.cluster.hierarchy import fcluster, is_valid_linkage
    from sklearn.metrics import adjusted_rand_score

    Z = np.asarray(Z, dtype=np.float64)
    Z_ref = np.asarray(Z_ref, dtype=np.float64)
    mine, ref = merge_heights(Z), merge_heights(Z_ref)
    scale = max(float(np.max(np.abs(ref))), np.finfo(np.float64).tiny)
    height_error = float(np.max(np.abs(mine - ref)) / scale) if len(ref) else 0.0
    valid = bool(is_valid_linkage(Z)) and bool(np.all(np.diff(Z[:, 2]) >= 0))
    cuts = clean_cuts(ref, max(rtol, 10 * height_error), max_clusters)
    aris = [adjusted_rand_score(fcluster(Z_ref, k, "maxclust"), fcluster(Z, k, "maxclust")) for k in cuts]
    min_ari = float(min(aris)) if aris else 1.0
    return {"height_error": height_error, "min_ari": min_ari, "cuts": cuts, "valid": valid,
            "ok": valid and height_error <= rtol and min_ari == 1.0}


def replay(X, Z, method: str, *, rtol: float = 1e-9) -> str | None:
    """Check ``Z`` merge by merge against the method's definition; None if it holds, else what fails.

    Tie-robust where :func:`agreement` is not: with ties, complete, average and ward linkage can
    build different trees from equally valid choices. Replaying Z's own merges (in row order),
    each must join two clusters at the Lance-Williams distance it records, and no other pair of
    clusters may then be closer (both within ``rtol`` relative to the largest distance).
    """
    X = np.asarray(X, dtype=np.float64)
    Z = np.asarray(Z, dtype=np.float64)
    n = X.shape[0]
    D = pairwise_distances(X)
    scale = max(float(D.max()), np.finfo(np.float64).tiny)
    slot = {i: i for i in range(n)}  # cluster id -> matrix slot
    size = [1] * n                   # points in the cluster held by each slot
    active = set(range(n))
    for row in range(n - 1):
        a, b = int(Z[row, 0]), int(Z[row, 1])
        if a not in slot or b not in slot or a == b:
            return f"row {row} merges {a} and {b}, which are not two distinct current clusters"
        s, t = slot.pop(a), slot.pop(b)
        live = sorted(active)
        closest = min(D[p, q] for i, p in enumerate(live) for q in live[i + 1:])
        if abs(D[s, t] - Z[row, 2]) > rtol * scale:
            return f"row {row} records height {Z[row, 2]!r}; the clusters are {D[s, t]!r} apart"
        if D[s, t] > closest + rtol * scale:
            return f"row {row} merges at {D[s, t]!r} while two clusters are {closest!r} apart"
        if int(Z[row, 3]) != size[s] + size[t]:
            return f"row {row} records size {Z[row, 3]:g}; the clusters hold {size[s] + size[t]} points"
        for v in active:
            if v != s and v != t:
                D[s, v] = D[v, s] = lance_williams(method, D[s, v], D[t, v], D[s, t], size[s], size[t], size[v])
        active.remove(t)
        slot[n + row] = s
        size[s] += size[t]
    return None
