"""Short timed trials: rank backends for one shape by measuring now, and cache what was measured.

Each trial is appended to ``kmbench.bench.records.trial_cache_path()``, so ``backend="auto"``
can use it later without measuring.
"""
from __future__ import annotations

import json
import platform

from kmbench.advise.ranking import _add_reasons, candidates, fmt_time, machine_name
from kmbench.bench.records import trial_cache_path

#: a trial's n*k*d cap: at a few GFLOP/s a fast backend's iteration stays well under a second
TRIAL_WORK = 2e8
#: seconds one trial iteration of one backend may take; slow backends get a smaller subsample
TRIAL_BUDGET = 0.5


def rank_measured(n: int, k: int, d: int, dtype: str = "float64", device=None, *, names=None, iters: int = 3,
                  max_work: float = TRIAL_WORK, budget: float = TRIAL_BUDGET, seed: int = 0,
                  threads=None, progress: bool = True, cache: bool = True) -> list[dict]:
    """Rank the backends that can run this case by a short timed trial now, fastest first.

    Each backend first runs one untimed iteration on a small pilot subsample (imports,
    JIT compilation), then one timed one; from its time the trial size is chosen so one
    iteration takes about ``budget`` seconds, at least a tenth of the cap, at most ``n``
    rows and at most ``max_work`` for n*k*d. The trial then runs ``iters`` fixed
    iterations (``tol < 0``) from the same centres on the same synthetic blobs
    (``kmbench.check.data.blobs``). Where the trial used fewer than ``n`` rows, the time per
    iteration is extrapolated linearly in n through the pilot's and the trial's timings
    (a fixed per-call cost plus a cost per row), or scaled by ``n / rows`` where those
    two timings do not give a positive slope; the entry's ``how`` says which.

    Parameters
    ----------
    n, k, d : int
        Samples, clusters, features of the case to rank for.
    dtype : {"float32", "float64"}
    device : str, optional
    names : list of str, optional
        Only these backends.
    iters : int
        Timed iterations per backend.
    max_work, budget : float
        Caps on the trial size (n*k*d) and on one iteration's time (seconds).
    seed : int
    threads : int, optional
        Threads for every backend (the harness default when None).
    progress : bool
        Show a progress bar.
    cache : bool
        Append each trial to :func:`trial_cache_path` for ``backend="auto"``.

    Returns
    -------
    list of dict
    """
    from tqdm import tqdm

    from kmbench.check.data import blobs
    from kmbench.core.kmeans import BackendUnavailable, create, execute
    from kmbench.core.seeding import initial_centers
    from kmbench.core.validation import check_int

    n, k, d = (check_int(name, v, 1) for name, v in (("n", n), ("k", k), ("d", d)))
    if k > n:
        raise ValueError(f"k={k} must be <= n={n}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
    iters = check_int("iters", iters, 1)
    ok, _ = candidates(n, k, d, dtype, device, names)
    # Rows enough for every cluster to be seeded; capped by work and by ~1 GiB of data.
    cap = int(min(n, max(k, max_work // (k * d)), max(k, (1 << 30) // (8 * d))))
    pilot = int(min(cap, max(k, 2 * k, 20000 // max(1, d))))
    X, _ = blobs(cap, d, k, seed=seed, dtype=dtype)
    centers = initial_centers(X[:pilot], k, "random", seed).astype(dtype)
    machine = machine_name()
    host = platform.node()
    ranking = []
    bar = tqdm(ok, desc=f"trial n={n} k={k} d={d}", unit="backend", disable=not progress, leave=False)
    for name in bar:
        bar.set_postfix_str(name)
        try:
            def timed(rows, steps):
                backend = create(name, n=rows, k=k, d=d, dtype=dtype, device=device, threads=threads)
                res = execute(backend, X[:rows], centers, max_iter=steps, tol=-1.0)
                return res.timings["fit"] / max(res.n_iter, 1), res
            timed(pilot, 1)  # first call: imports, JIT compilation, thread pools; not counted
            small = min(timed(pilot, 1)[0] for _ in range(2))  # one short iteration is noisy: best of two
            rows = pilot
            if pilot < cap:
                # large enough that per-call overheads do not dominate, small enough for the budget
                rows = int(min(cap, max(pilot, cap // 10, pilot * budget / max(small, 1e-9))))
            per_iter, res = timed(rows, iters) if rows > pilot else timed(pilot, iters)
        except BackendUnavailable as exc:
            bar.write(f"  {name}: skipped: {exc}")
            continue
        how = f"measured now: {res.n_iter} iterations on {rows} x {d} synthetic blobs"
        estimate = per_iter
        if rows < n:
            slope = (per_iter - small) / (rows - pilot) if rows > pilot else 0.0
            fixed = per_iter - slope * rows
            if slope > 0 and fixed >= 0:
                # time = fixed + slope * rows, fitted through the pilot and the trial: a per-call
                # overhead is not multiplied up with the rows
                estimate = fixed + slope * n
                how += (f" (a subsample of n={n}; scaled linearly in n through timings at {pilot} and {rows} "
                        f"rows: {fmt_time(fixed)} fixed + {fmt_time(slope * 1000)} per 1000 rows)")
            else:
                estimate = per_iter * n / rows
                how += f" (a subsample of n={n}; time scaled x{n / rows:.3g}, linear in n)"
        ranking.append({"backend": name, "per_iter": estimate, "basis": "measured", "source": "trial",
                        "points": [(rows, k, d, per_iter)], "how": how, "eligible": True, "note": "",
                        "machine": machine, "threads": res.threads})
        if cache:
            _cache_trial(host, name, rows, k, d, dtype, per_iter, res)
    bar.close()
    ranking.sort(key=lambda r: r["per_iter"])
    _add_reasons(ranking, n, k, d, dtype)
    return ranking


def _cache_trial(host, name, rows, k, d, dtype, per_iter, res) -> None:
    import datetime

    path = trial_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(json.dumps({"machine": host, "backend": name, "n": rows, "k": k, "d": d,
                                 "dtype": dtype, "status": "ok", "per_iter": per_iter,
                                 "threads": res.threads, "device": res.device,
                                 "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}) + "\n")
    except OSError:  # a read-only home must not break a recommendation
        pass
