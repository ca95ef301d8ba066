"""``kmbench check``: every available backend against the float64 oracle, both dtypes.

Prints label agreement, centre error and inertia error per case; exits 1 on any
disagreement beyond docs/contract.md's tolerances that the backend has not declared.
"""
from __future__ import annotations

import numpy as np


def configure(parser):
    parser.add_argument("--backend", action="append", help="only these backends (repeatable)")
    parser.add_argument("--dtype", choices=["float32", "float64"], action="append", help="only these dtypes")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from tqdm import tqdm

    import kmbench.check.oracle as oracle
    from kmbench.check.crosscheck import check_cases, compare
    from kmbench.core.kmeans import BackendUnavailable, backend_class, backends, create, execute
    from kmbench.core.seeding import initial_centers

    names = args.backend or [b["name"] for b in backends() if b["available"]]
    for name in names:
        backend_class(name)  # an unknown name fails here, before any work, listing the known ones
    dtypes = args.dtype or ["float64", "float32"]
    cases = check_cases(args.seed)
    rows, failures = [], 0
    jobs = [(case, dtype) for case in cases for dtype in dtypes]
    for (label, X, k, init, max_iter, tol), dtype in tqdm(jobs, desc="kmbench check", unit="case"):
        Xd = X.astype(dtype)
        centers = initial_centers(Xd, k, init, args.seed)
        reference = oracle.lloyd(Xd, centers, max_iter, tol)
        for name in names:
            if dtype not in backend_class(name).dtypes:
                continue
            try:
                backend = create(name, n=Xd.shape[0], k=k, d=Xd.shape[1], dtype=dtype)
            except BackendUnavailable as exc:
                rows.append((label, dtype, name, "", "", "", f"skipped: {exc}"))
                continue
            start = centers.astype(dtype)
            result = execute(backend, Xd, start, max_iter=max_iter, tol=tol)
            replay = None
            if tol < 0:
                def replay_run(t, name=name, Xd=Xd, start=start, k=k, dtype=dtype):
                    again = create(name, n=Xd.shape[0], k=k, d=Xd.shape[1], dtype=dtype)
                    return execute(again, Xd, start, max_iter=t, tol=-1.0)
                replay = (replay_run, start)
            c = compare(result, reference, Xd, dtype, deviations=backend.deviations,
                        stops_early=backend.stops_early, replay=replay)
            failures += not c.ok
            agree = f"{1 - c.label_mismatches / Xd.shape[0]:.4%} ({c.near_ties} ties)"
            rows.append((label, dtype, name, agree, f"{c.center_error:.1e}", f"{c.inertia_error:.1e}", c.status))
    header = ("case", "dtype", "backend", "labels agree", "centre err", "inertia err", "status")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header) - 1)]
    for row in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)) + "  " + str(row[-1]))
    print(f"\n{len(rows)} comparisons, {failures} beyond tolerance")
    return 1 if failures else 0
