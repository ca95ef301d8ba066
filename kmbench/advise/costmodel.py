"""A cost model per backend, fitted from recorded times, that holds between and beyond them.

Lloyd's iteration does a few kinds of work whose costs grow differently with the shape,
so time is modelled as their sum, each with a nonnegative cost per unit:

======== =========== ===============================================================
term     units       what pays it
======== =========== ===============================================================
``call`` 1           per-iteration overhead: launching kernels, thread pools, Python
``n``    n           per row: the label, the argmin's bookkeeping, the update's scatter
``nd``   n*d         reading the data: the update's accumulation, norms, copies
``nkd``  n*k*d       the distance computation (a GEMM or a fused loop)
``nk``   n*k         writing and scanning the n x k distances for the argmin
``kd``   k*d         the centres: norms, division, empty-cluster checks
``kk``   k*k         clusters that look at every other cluster (faiss splits a large one
                     into each empty one, and with few points per cluster many are empty)
======== =========== ===============================================================

The coefficients are a nonnegative least-squares fit of *relative* error (every
recorded shape counts alike, whether it took microseconds or seconds), so a term no
shape needs is zero, and extrapolation grows each kind of work at its own rate instead
of scaling everything by n*k*d. What the five terms miss near recorded shapes (cache
sizes, a library switching kernels) is corrected by a kernel-weighted mean of the
fit's log residuals at nearby recorded shapes, which fades to zero away from them.

Every model reports its own leave-one-out error (:func:`loo_errors`): each recorded
shape is predicted from the others. That error, widened with the distance to the
nearest recorded shape, is the interval of every prediction (:meth:`CostModel.interval`),
and :func:`validate` turns it into the figures ``kmbench recommend --validate`` prints.

This module is pure NumPy/SciPy over plain records, so it can be tested and reused
without the harness. A record is a mapping with ``backend``, ``n``, ``k``, ``d``,
``dtype``, ``per_iter`` (seconds per iteration) and optionally ``per_call`` (seconds a
call pays once, e.g. the final assignment pass), ``machine``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: names of the terms, in the order of :func:`features`' columns
TERMS = ("call", "n", "nd", "nkd", "nk", "kd", "kk")
#: length scale (natural-log units of n, k, d) of the residual correction's kernel
SCALE = 0.7
#: weight of "no correction" in the residual correction: with few nearby shapes it stays small
PRIOR = 1.0
#: widening of the interval (in log units) per log unit of distance to the nearest recorded shape
WIDEN = 0.08
#: the interval covers this quantile of the leave-one-out errors
COVER = 0.9
#: weight every recorded shape keeps in a local fit, however far: far away the fit turns global
LOCAL_FLOOR = 0.02
#: fewer recorded shapes than this: no fit of the terms, time proportional to n*k*d
FEW = 3
#: reweighting rounds of the robust fit
ROBUST_ROUNDS = 4
#: smallest interval (factor) any prediction gets: timings on a shared machine are noisier than this
FLOOR = 1.15


def features(n, k, d) -> np.ndarray:
    """The work of each term of :data:`TERMS` for shapes (n, k, d): array of shape (m, 7)."""
    n, k, d = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (n, k, d))
    return np.stack([np.ones_like(n), n, n * d, n * k * d, n * k, k * d, k * k], axis=1)


def _nnls_relative(A: np.ndarray, t: np.ndarray, weights=None, lower=None) -> np.ndarray:
    """c >= lower minimising sum(w * ((A c - t) / t)^2), with columns scaled for conditioning."""
    from scipy.optimize import nnls

    lower = np.zeros(A.shape[1]) if lower is None else np.asarray(lower, dtype=float)
    W = A / t[:, None]
    rhs = 1.0 - (A @ lower) / t
    if weights is not None:
        W = W * np.sqrt(weights)[:, None]
        rhs = rhs * np.sqrt(weights)
    norms = np.linalg.norm(W, axis=0)
    norms[norms == 0] = 1.0
    c, _ = nnls(W / norms, rhs, maxiter=50 * A.shape[1])
    return lower + c / norms


@dataclass
class CostModel:
    """One backend's fitted cost at one dtype on one machine."""

    backend: str
    dtype: str
    coef: np.ndarray                       # per-iteration cost per unit of each term
    points: np.ndarray                     # (m, 3) log(n, k, d) of the recorded shapes
    residuals: np.ndarray                  # log(recorded / fitted) at those shapes
    call_coef: np.ndarray | None = None    # per-call cost per unit of each term, where recorded
    loo: np.ndarray = field(default_factory=lambda: np.zeros(0))  # leave-one-out log errors
    machine: str | None = None
    scale: float = SCALE
    prior: float = PRIOR
    times: np.ndarray | None = None        # recorded seconds per iteration at ``points``
    bandwidth: float | None = None         # local fit: kernel length (log units); None: one global fit

    @property
    def size(self) -> int:
        return len(self.points)

    def _correction(self, n, k, d) -> np.ndarray:
        x = np.log(np.stack([np.atleast_1d(np.asarray(v, dtype=float)) for v in (n, k, d)], axis=1))
        if not len(self.points) or self.prior == math.inf:
            return np.zeros(len(x))
        dist2 = ((x[:, None, :] - self.points[None, :, :]) ** 2).sum(-1)
        w = np.exp(-0.5 * dist2 / self.scale ** 2)
        return (w @ self.residuals) / (w.sum(1) + self.prior)

    def _local(self, n, k, d) -> np.ndarray:
        A = features(np.exp(self.points[:, 0]), np.exp(self.points[:, 1]), np.exp(self.points[:, 2]))
        F = features(n, k, d)
        x = np.log(np.stack([np.atleast_1d(np.asarray(v, dtype=float)) for v in (n, k, d)], axis=1))
        out = np.empty(len(x))
        for i, xi in enumerate(x):
            w = np.exp(-0.5 * ((self.points - xi) ** 2).sum(1) / self.bandwidth ** 2) + LOCAL_FLOOR
            out[i] = F[i] @ _nnls_relative(A, self.times, w)
        return out

    def per_iter(self, n, k, d):
        """Predicted seconds per iteration (scalar for scalar input)."""
        base = self._local(n, k, d) if self.bandwidth is not None else features(n, k, d) @ self.coef
        value = base * np.exp(self._correction(n, k, d))
        return float(value[0]) if np.ndim(n) == 0 else value

    def per_call(self, n, k, d):
        """Predicted seconds a call pays once (None where no per-call times were recorded)."""
        if self.call_coef is None:
            return None
        value = features(n, k, d) @ self.call_coef
        return float(value[0]) if np.ndim(n) == 0 else value

    def distance(self, n, k, d) -> float:
        """Log-space distance from (n, k, d) to the nearest recorded shape."""
        if not len(self.points):
            return math.inf
        x = np.log([n, k, d])
        return float(np.sqrt(((self.points - x) ** 2).sum(1)).min())

    def outside(self, n, k, d) -> list[str]:
        """The axes on which (n, k, d) lies outside the recorded range."""
        lo, hi = self.points.min(0), self.points.max(0)
        x = np.log([n, k, d])
        return [axis for axis, v, a, b in zip("nkd", x, lo, hi) if v < a - 1e-9 or v > b + 1e-9]

    def spread(self, n, k, d) -> float:
        """The interval's half-width in log units: the leave-one-out error quantile, widened with distance."""
        base = float(np.quantile(np.abs(self.loo), COVER)) if len(self.loo) else math.log(2.0)
        return max(base, math.log(FLOOR)) + WIDEN * self.distance(n, k, d)

    def interval(self, n, k, d) -> tuple[float, float]:
        """(low, high) seconds per iteration the prediction is expected within."""
        mid = self.per_iter(n, k, d)
        s = self.spread(n, k, d)
        return mid * math.exp(-s), mid * math.exp(s)

    def terms(self, n, k, d) -> dict:
        """Seconds per iteration each term contributes at this shape (before the correction)."""
        return {t: float(v) for t, v in zip(TERMS, features(n, k, d)[0] * self.coef)}

    def scaled(self, factors: dict, machine: str | None = None) -> "CostModel":
        """This model moved to another machine: each term's cost divided by ``factors[term]``.

        ``factors`` maps terms to how many times faster the other machine is at that kind
        of work (e.g. its sgemm rate over this one's for ``nkd``, its memory bandwidth over
        this one's for ``nd`` and ``nk``); missing terms are not scaled.
        """
        div = np.array([factors.get(t, 1.0) for t in TERMS], dtype=float)
        call = None if self.call_coef is None else self.call_coef / div
        return CostModel(self.backend, self.dtype, self.coef / div, self.points, self.residuals, call,
                         self.loo, machine, self.scale, self.prior,
                         None if self.times is None else self.times / div[0], self.bandwidth)


def _arrays(rows):
    n = np.array([r["n"] for r in rows], float)
    k = np.array([r["k"] for r in rows], float)
    d = np.array([r["d"] for r in rows], float)
    return n, k, d


def _median_by_shape(rows, key):
    """One value per shape: the median of ``key`` over repeated records of it (positive only)."""
    groups: dict = {}
    for r in rows:
        v = r.get(key)
        if v is None or not np.isfinite(v) or v <= 0:
            continue
        groups.setdefault((int(r["n"]), int(r["k"]), int(r["d"])), []).append(float(v))
    return [{"n": s[0], "k": s[1], "d": s[2], key: float(np.median(v))} for s, v in sorted(groups.items())]


def robust_nnls(A: np.ndarray, t: np.ndarray, *, robust: bool = True, rounds: int = ROBUST_ROUNDS,
                lower=None) -> np.ndarray:
    """:func:`_nnls_relative`, then reweighted so a few wild timings cannot drag every prediction.

    A timing taken while something else ran on the machine can be several times too
    slow. Each round weighs every shape by Tukey's biweight of its log residual,
    scaled by the residuals' median absolute deviation (floored at 10%, so clean data
    keeps every weight near one), which sets aside shapes far off the others' fit.
    """
    c = _nnls_relative(A, t, lower=lower)
    if not robust or len(t) <= A.shape[1]:
        return c
    for _ in range(rounds):
        r = np.log(t / np.maximum(A @ c, 1e-300))
        mad = max(float(np.median(np.abs(r - np.median(r)))) * 1.4826, 0.1)
        u = r / (4.685 * mad)
        w = np.where(np.abs(u) < 1, (1 - u ** 2) ** 2, 0.0)
        if (w > 0).sum() <= A.shape[1]:
            break
        c = _nnls_relative(A, t, w, lower=lower)
    return c


def fit_one(rows, backend: str = "", dtype: str = "", *, scale: float = SCALE, prior: float = PRIOR,
            bandwidth=None, with_loo: bool = True, machine=None, robust: bool = True,
            floors: dict | None = None) -> CostModel:
    """Fit one backend's model to its records (one dtype, one machine).

    Parameters
    ----------
    rows : list of mapping
        Records with ``n``, ``k``, ``d``, ``per_iter`` and optionally ``per_call``.
    scale, prior : float
        The residual correction's kernel length (log units) and the weight of "no
        correction"; ``prior=math.inf`` turns the correction off.
    floors : dict, optional
        Smallest cost per unit of a term, e.g. ``{"nkd": 1 / gemm_flops}`` from the
        machine's measured GEMM rate (see :func:`floors_for`): shapes that barely vary a
        term cannot then fit it to zero and extrapolate as if that work were free.
    with_loo : bool
        Also compute the leave-one-out errors (the interval rests on them).
    """
    pts = _median_by_shape(rows, "per_iter")
    if not pts:
        raise ValueError(f"no positive per_iter time recorded for backend {backend!r} ({dtype})")
    n, k, d = _arrays(pts)
    t = np.array([p["per_iter"] for p in pts])
    A = features(n, k, d)
    if len(t) < FEW:
        # too few shapes to tell the terms apart: time taken as proportional to n*k*d
        coef = np.zeros(len(TERMS))
        coef[TERMS.index("nkd")] = float(np.median(t / A[:, TERMS.index("nkd")]))
    else:
        lower = np.array([(floors or {}).get(term, 0.0) for term in TERMS])
        coef = robust_nnls(A, t, robust=robust, lower=lower)
    fitted = A @ coef
    resid = np.log(t / np.maximum(fitted, 1e-300))
    calls = _median_by_shape(rows, "per_call")
    call_coef = None
    if calls:
        cn, ck, cd = _arrays(calls)
        call_coef = robust_nnls(features(cn, ck, cd), np.array([c["per_call"] for c in calls]), robust=robust)
    model = CostModel(backend, dtype, coef, np.log(np.stack([n, k, d], 1)), resid, call_coef,
                      machine=machine, scale=scale, prior=prior, times=t, bandwidth=bandwidth)
    if bandwidth is not None:
        model.residuals = np.log(t / np.maximum(model._local(n, k, d), 1e-300))
    if with_loo:
        model.loo = loo_errors(pts, scale=scale, prior=prior, bandwidth=bandwidth, floors=floors)
    return model


def loo_errors(rows, *, scale: float = SCALE, prior: float = PRIOR, bandwidth=None, floors=None) -> np.ndarray:
    """Log(predicted / recorded) at each recorded shape, predicted from all the others.

    Rows are reduced to one per shape first; with fewer than three shapes there is
    nothing to leave out and the result is empty.
    """
    pts = _median_by_shape(rows, "per_iter")
    if len(pts) < 3:
        return np.zeros(0)
    out = []
    for i, p in enumerate(pts):
        rest = pts[:i] + pts[i + 1:]
        m = fit_one(rest, scale=scale, prior=prior, bandwidth=bandwidth, with_loo=False, floors=floors)
        out.append(math.log(m.per_iter(p["n"], p["k"], p["d"]) / p["per_iter"]))
    return np.array(out)


def group(records) -> dict:
    """``{(backend, dtype): [records]}``, keeping only records with a positive per_iter."""
    out: dict = {}
    for r in records:
        v = r.get("per_iter")
        if v is None or not (v > 0) or not all(r.get(a) for a in ("n", "k", "d")):
            continue
        out.setdefault((r["backend"], r.get("dtype", "float32")), []).append(r)
    return out


def floors_for(gemm_gflops: float | None, dtype: str = "float32") -> dict:
    """Smallest believable cost per n*k*d unit: half the time the machine's measured GEMM needs for its 2 flops.

    Half, because a fused kernel may use wider vectors than the BLAS measured (numba's
    AVX-512 against an AVX2 OpenBLAS kernel); float64 work gets twice the float32 floor.
    Empty without a measured rate.
    """
    if not gemm_gflops:
        return {}
    return {"nkd": (1.0 if dtype == "float32" else 2.0) / (gemm_gflops * 1e9)}


def fit(records, *, scale: float = SCALE, prior: float = PRIOR, bandwidth=None, with_loo: bool = True,
        gemm_gflops: float | None = None) -> dict:
    """``{(backend, dtype): CostModel}`` for every backend and dtype in ``records``.

    ``gemm_gflops``: the machine's measured float32 GEMM rate, for :func:`floors_for`.
    """
    return {key: fit_one(rows, *key, scale=scale, prior=prior, bandwidth=bandwidth, with_loo=with_loo,
                         floors=floors_for(gemm_gflops, key[1]),
                         machine=next((r.get("machine") for r in rows if r.get("machine")), None))
            for key, rows in group(records).items()}


def rank(models: dict, n: int, k: int, d: int, dtype: str, *, max_iter: int | None = None,
         names=None) -> list[dict]:
    """Backends at (n, k, d, dtype), fastest predicted first.

    With ``max_iter``, backends are ordered by a whole fit of that many iterations
    (per-call part included where recorded); without, by time per iteration.
    Each entry: backend, per_iter, low, high (the interval), per_call (or None), total
    (a fit of ``max_iter`` iterations, or None), points (recorded shapes), distance,
    outside (axes beyond the recorded range), terms.
    """
    out = []
    for (backend, dt), m in models.items():
        if dt != dtype or (names is not None and backend not in names):
            continue
        per_iter = m.per_iter(n, k, d)
        low, high = m.interval(n, k, d)
        call = m.per_call(n, k, d)
        # per_iter holds a tenth of the per-call part (a run of 10 over 10): each further iteration adds the rest
        total = None if max_iter is None else (call or 0.0) + max_iter * max(per_iter - (call or 0.0) / 10,
                                                                          per_iter / 3)
        out.append({"backend": backend, "per_iter": per_iter, "low": low, "high": high, "per_call": call,
                    "total": total, "points": m.size, "distance": m.distance(n, k, d),
                    "outside": m.outside(n, k, d), "terms": m.terms(n, k, d), "machine": m.machine})
    out.sort(key=lambda r: r["total"] if r["total"] is not None else r["per_iter"])
    return out


def validate(records, *, scale: float = SCALE, prior: float = PRIOR, bandwidth=None,
             gemm_gflops: float | None = None) -> dict:
    """Leave-one-shape-out validation of prediction and of the pick.

    Returns ``{"backends": {(backend, dtype): {"shapes", "median", "worst", "errors"}},
    "picks": {dtype: {"shapes", "slower", "slower_than_10pct", "median_regret", "worst_regret",
    "regrets"}}}``. Errors are factors >= 1 (predicted over recorded or its inverse). For
    the pick, every shape recorded for two or more backends is left out of *every*
    backend's fit, the backends are ranked there from the rest, and the pick's recorded
    time is divided by the fastest recorded one (1.0 when the pick was the fastest).
    """
    groups = group(records)
    per_backend = {}
    for key, rows in groups.items():
        errs = loo_errors(rows, scale=scale, prior=prior, bandwidth=bandwidth,
                          floors=floors_for(gemm_gflops, key[1]))
        if len(errs):
            f = np.exp(np.abs(errs))
            per_backend[key] = {"shapes": len(errs), "median": float(np.median(f)), "worst": float(f.max()),
                                "errors": errs.tolist()}
    picks = {}
    for dtype in sorted({dt for _, dt in groups}):
        tables = {b: {(p["n"], p["k"], p["d"]): p["per_iter"] for p in _median_by_shape(rows, "per_iter")}
                  for (b, dt), rows in groups.items() if dt == dtype}
        shapes = sorted({s for t in tables.values() for s in t})
        regrets, details = [], []
        for s in shapes:
            have = {b: t[s] for b, t in tables.items() if s in t and len(t) >= 4}
            if len(have) < 2:
                continue
            models = {}
            for b in have:
                rest = [{"n": x[0], "k": x[1], "d": x[2], "per_iter": v} for x, v in tables[b].items() if x != s]
                models[(b, dtype)] = fit_one(rest, b, dtype, scale=scale, prior=prior, bandwidth=bandwidth,
                                             with_loo=False, floors=floors_for(gemm_gflops, dtype))
            ranking = rank(models, *s, dtype)
            pick = ranking[0]["backend"]
            best = min(have.values())
            regrets.append(have[pick] / best)
            details.append({"shape": s, "pick": pick, "fastest": min(have, key=have.get),
                            "regret": have[pick] / best})
        if regrets:
            r = np.array(regrets)
            picks[dtype] = {"shapes": len(r), "slower": int((r > 1.0 + 1e-12).sum()),
                            "slower_than_10pct": int((r > 1.10).sum()), "median_regret": float(np.median(r)),
                            "worst_regret": float(r.max()), "details": details}
    return {"backends": per_backend, "picks": picks}
