"""Cross-checking a backend against the oracle, with docs/contract.md's tolerances.

``compare`` is the single judgement used by ``kmbench check``, the tests and the
benchmarks' quality tracks.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

import kmbench.check.data as data
import kmbench.check.oracle as oracle

#: docs/contract.md's tolerances: near-tie width (relative), centre error / data scale, inertia relative error
TOLERANCES = {
    "float64": {"tie": 1e-9, "centers": 1e-9, "inertia": 1e-10},
    "float32": {"tie": 1e-4, "centers": 1e-4, "inertia": 1e-5},
}


@dataclass
class Comparison:
    label_mismatches: int      # labels that differ from the oracle's
    near_ties: int             # of those, how many are near-ties (allowed)
    center_error: float        # max abs centre error / data scale
    inertia_error: float       # relative inertia error
    n_iter_match: bool
    ok: bool
    status: str                # "ok", "FAIL: ...", or "deviation (declared): ..."


def data_scale(X) -> float:
    scale = float(np.max(np.abs(X))) if np.size(X) else 0.0
    return scale if scale > 0 else 1.0


def compare(result, reference: oracle.OracleResult, X, dtype: str, *, deviations=None,
            stops_early: bool = False, replay=None) -> Comparison:
    """Judge ``result`` (a KMeansResult) against the oracle run on the same data and centres.

    Labels may differ only at near-ties: points whose distances to the two centres
    involved are within the dtype's relative tie width, measured at the oracle's final
    centres.

    A tie broken the other way in an early iteration moves a centre, and the runs then
    legitimately part. Given ``replay = (run, initial_centers)``, where ``run(t)`` returns the
    backend's result after ``t`` fixed iterations, a disagreement is accepted when
    :func:`explain_divergence` traces it to such a tie.
    """
    tol = TOLERANCES[dtype]
    labels = np.asarray(result.labels)
    differ = np.flatnonzero(labels != reference.labels)
    D = reference.distances
    if differ.size and D is not None and labels.min() >= 0 and labels.max() < D.shape[1]:
        mine = D[differ, labels[differ]]
        theirs = D[differ, reference.labels[differ]]
        ties = int(np.sum(np.abs(mine - theirs) <= tol["tie"] * np.maximum(np.maximum(mine, theirs), 1e-300)))
    else:
        ties = 0
    center_error = float(np.max(np.abs(np.asarray(result.centers, dtype=np.float64) - reference.centers))) \
        / data_scale(X)
    denom = abs(reference.inertia)
    inertia_error = abs(result.inertia - reference.inertia) / denom if denom > 0 else abs(result.inertia)
    n_iter_match = result.n_iter == reference.n_iter or (stops_early and result.n_iter <= reference.n_iter)

    problems = []
    if differ.size - ties:
        problems.append(f"{differ.size - ties} labels differ beyond near-ties")
    if center_error > tol["centers"]:
        problems.append(f"centre error {center_error:.1e} > {tol['centers']:.0e}")
    if inertia_error > tol["inertia"]:
        problems.append(f"inertia error {inertia_error:.1e} > {tol['inertia']:.0e}")
    deviations = deviations or {}
    if not n_iter_match:
        if reference.converged and "convergence" in deviations and not problems:
            # Same centres, another stopping rule: declared, and only n_iter differs.
            return Comparison(int(differ.size), ties, center_error, inertia_error, False, True,
                              "deviation (declared): convergence: " + deviations["convergence"])
        problems.append(f"n_iter {result.n_iter} != oracle's {reference.n_iter}")
    if not problems:
        return Comparison(int(differ.size), ties, center_error, inertia_error, n_iter_match, True, "ok")
    declared = deviation_in_play(reference, deviations)
    if not declared and replay is not None and n_iter_match:
        explained = explain_divergence(replay[0], X, replay[1], dtype, result.n_iter)
        if explained:
            return Comparison(int(differ.size), ties, center_error, inertia_error, n_iter_match, True,
                              "ok: " + explained)
    if declared:
        return Comparison(int(differ.size), ties, center_error, inertia_error, n_iter_match, True,
                          f"deviation (declared): {declared}")
    return Comparison(int(differ.size), ties, center_error, inertia_error, n_iter_match, False,
                      "FAIL: " + "; ".join(problems))


def _center_error(a, b, scale: float) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - b))) / scale


def explain_divergence(run, X, initial_centers, dtype: str, max_iter: int, *, max_ties: int = 10) -> str | None:
    """Trace a disagreement to a near-tie, or return None.

    Steps the oracle one iteration at a time beside ``run(t)`` (the backend after ``t``
    fixed iterations) to the first iteration whose centres leave tolerance. The backend
    agreed with the oracle's centres before that step, so the step's assignment is the only
    place they can part. If some of that assignment's near-ties (at most ``max_ties`` of
    them), broken the other way, reproduce the backend's centres, the divergence is the
    contract's allowance for near-ties and not an error.
    """
    tol = TOLERANCES[dtype]
    X64 = np.asarray(X, dtype=np.float64)
    scale = data_scale(X64)
    rows = np.arange(X64.shape[0])
    before = np.asarray(initial_centers, dtype=np.float64)
    for t in range(1, max_iter + 1):
        mine = run(t)
        step = oracle.lloyd(X64, before, max_iter=1, tol=-1.0).centers
        if _center_error(mine.centers, step, scale) <= tol["centers"]:
            before = step
            continue
        D = oracle.squared_distances(X64, before)
        order = np.argsort(D, axis=1, kind="stable")[:, :2]
        best, second = D[rows, order[:, 0]], D[rows, order[:, 1]]
        ties = np.flatnonzero(second - best <= tol["tie"] * np.maximum(second, 1e-300))
        if not 0 < ties.size <= max_ties:
            return None
        for r in range(1, ties.size + 1):
            for flipped in combinations(ties, r):
                labels = order[:, 0].copy()
                labels[list(flipped)] = order[list(flipped), 1]
                centers, _, _ = oracle.update(X64, before, labels, D[rows, labels])
                if _center_error(mine.centers, centers, scale) <= tol["centers"]:
                    return (f"parted from the oracle at iteration {t}, where {r} near-tie(s) "
                            f"of {ties.size} went to the other centre; every earlier step agreed")
        return None
    return None


def deviation_in_play(reference: oracle.OracleResult, deviations: dict) -> str | None:
    """The declared deviation that explains a disagreement on this case, if any."""
    if reference.relocated and "empty-clusters" in deviations:
        return "empty-clusters: " + deviations["empty-clusters"]
    if reference.degenerate and "degenerate-empty" in deviations:
        return "degenerate-empty: " + deviations["degenerate-empty"]
    return None


def check_cases(seed: int = 0):
    """The cases ``kmbench check`` runs: (name, X float64, k, init, max_iter, tol).

    Fixed work (``tol < 0``) on separated blobs and real data; one step on uniform noise,
    where near-ties are common and a flipped label in an early iteration would cascade;
    forced empty clusters; and one run to convergence.
    """
    X1, _ = data.blobs(2000, 8, 8, seed=seed)
    X2, _ = data.blobs(5000, 32, 40, seed=seed + 1)
    X3, _ = data.digits()
    X4, C4 = data.with_empty_clusters(300, 3, 6, seed=seed)
    X5 = data.uniform(3000, 4, seed=seed)
    X6, _ = data.blobs(3000, 5, 6, seed=seed + 2)
    return [
        ("blobs 2000x8 k=8", X1, 8, "k-means++", 20, -1.0),
        ("blobs 5000x32 k=64", X2, 64, "random", 10, -1.0),
        ("digits 1797x64 k=10", X3, 10, "k-means++", 15, -1.0),
        ("empty clusters 300x3 k=6", X4, 6, C4, 10, -1.0),
        ("uniform 3000x4 k=16, 1 step", X5, 16, "random", 1, -1.0),
        ("blobs 3000x5 k=6 to tol=1e-4", X6, 6, "k-means++", 300, 1e-4),
    ]
