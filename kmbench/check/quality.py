"""Every available backend against the oracle on one case, fixed iterations: the report's convergence run."""
from __future__ import annotations

import numpy as np

#: the convergence figure's case: small enough that even the pure-Python loop takes seconds
CONVERGENCE_SHAPE = (10_000, 8, 8)
CONVERGENCE_ITERS = 20


def convergence_runs(shape=CONVERGENCE_SHAPE, names=None, progress: bool = True):
    """Every available backend from the same random centres on the same blobs, fixed iterations.

    Each backend runs in float64 where it can, else in its own dtype (float32-only
    backends); the float64 oracle runs on the same data. Returns the runs for the
    figure, quality rows (inertia error, ARI against the oracle's labels, ``compare``'s
    verdict) and the figure's title.
    """
    from sklearn.metrics import adjusted_rand_score
    from tqdm import tqdm

    import kmbench.check.oracle as oracle
    from kmbench.check.crosscheck import compare
    from kmbench.check.data import blobs
    from kmbench.core.registry import candidates as eligible
    from kmbench.core.kmeans import BackendUnavailable, backend_class, create, execute
    from kmbench.core.seeding import initial_centers

    n, k, d = shape
    # Overlapping blobs, twice as many as clusters, so Lloyd needs more than a few steps.
    X, _ = blobs(n, d, 2 * k, seed=0, spread=3.0)
    centers = initial_centers(X, k, "random", 0)
    ref64 = oracle.lloyd(X, centers, CONVERGENCE_ITERS, -1.0)
    runs = [{"backend": "oracle", "dtype": "float64", "history": ref64.inertia_history}]
    rows, refs = [], {"float64": ref64}
    jobs = []
    for dtype in ("float64", "float32"):
        ok, _ = eligible(names, n=n, k=k, d=d, dtype=dtype)
        jobs += [(name, dtype) for name in ok if dtype == "float64" or "float64" not in backend_class(name).dtypes]
    for name, dtype in tqdm(jobs, desc="convergence run", unit="backend", disable=not progress, leave=False):
        Xd = X.astype(dtype)
        if dtype not in refs:
            refs[dtype] = oracle.lloyd(Xd, centers.astype(dtype), CONVERGENCE_ITERS, -1.0)
        try:
            backend = create(name, n=n, k=k, d=d, dtype=dtype)
            result = execute(backend, Xd, centers.astype(dtype), max_iter=CONVERGENCE_ITERS, tol=-1.0)
        except BackendUnavailable:
            continue
        except Exception as exc:  # one broken backend must not cost the whole report; its row says why
            rows.append({"backend": name, "dtype": dtype, "source": f"report run {n}x{d}, k={k}",
                         "inertia_error": np.nan, "ari": np.nan, "status": f"FAILED: {type(exc).__name__}: {exc}"})
            continue
        c = compare(result, refs[dtype], Xd, dtype, deviations=backend.deviations, stops_early=backend.stops_early)
        runs.append({"backend": name, "dtype": dtype, "history": result.inertia_history})
        rows.append({"backend": name, "dtype": dtype, "source": f"report run {n}x{d}, k={k}",
                     "inertia_error": c.inertia_error,
                     "ari": float(adjusted_rand_score(refs[dtype].labels, result.labels)),
                     "status": c.status})
    title = (f"Convergence from the same random centres: blobs n={n:,}, k={k}, d={d}, "
             f"{CONVERGENCE_ITERS} fixed iterations")
    return runs, rows, title


