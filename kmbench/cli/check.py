"""``kmbench check``: every available backend of both families against its float64 oracle, both dtypes.

K-Means: label agreement, centre error and inertia error per case. Linkage: per case and
method, the sorted-height error and the smallest flat-cut ARI against the oracle, and a replay
of the backend's own merges (``kmbench.check.linkage_crosscheck``). Exits 1 on any disagreement
beyond docs/contract.md's tolerances that the backend has not declared.
"""
from __future__ import annotations



def configure(parser):
    parser.add_argument("--backend", action="append", help="only these backends (repeatable)")
    parser.add_argument("--dtype", choices=["float32", "float64"], action="append", help="only these dtypes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", choices=["kmeans", "linkage"], action="append",
                        help="only this family (repeatable; default: both)")


def run(args) -> int:
    families = args.family or ["kmeans", "linkage"]
    failures = run_kmeans(args) if "kmeans" in families else 0
    if "linkage" in families:
        failures += run_linkage(args)
    return 1 if failures else 0


def _print_table(header, rows) -> None:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header) - 1)]
    for row in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)) + "  " + str(row[-1]))


def run_linkage(args) -> int:
    """The linkage family's rows; returns the number of failures."""
    from kmbench.check.linkage_crosscheck import check
    from kmbench.core.linkage import backends, load

    names = None
    if args.backend:
        known = [name for name in args.backend if _linkage_name(name, load)]
        if not known:
            return 0
        names = known
    else:
        names = [b["name"] for b in backends() if b["available"]]
    rows = check(names=names, dtypes=tuple(args.dtype or ("float64", "float32")), seed=args.seed)
    table = [(r["case"], r["dtype"], r["method"], r["backend"], r["detail"], r["status"]) for r in rows]
    print("\nHierarchical clustering (linkage) against the float64 Lance-Williams oracle:")
    _print_table(("case", "dtype", "method", "backend", "detail", "status"), table)
    failures = sum(r["status"] == "FAIL" for r in rows)
    print(f"\n{len(rows)} linkage comparisons, {failures} beyond tolerance")
    return failures


def _linkage_name(name, load) -> bool:
    try:
        load(name)
    except ValueError:
        return False
    return True


def run_kmeans(args) -> int:
    """The K-Means family's rows; returns the number of failures."""
    from tqdm import tqdm

    import kmbench.check.oracle as oracle
    from kmbench.check.crosscheck import check_cases, compare
    from kmbench.core.kmeans import BackendUnavailable, backend_class, backends, create, execute
    from kmbench.core.seeding import initial_centers

    names = args.backend or [b["name"] for b in backends() if b["available"]]
    if args.backend and args.family != ["kmeans"]:
        # a name of either family is fine when both are checked; unknown in both fails below
        from kmbench.core.linkage import load

        names = [n for n in names if _kmeans_name(n, backend_class) or not _linkage_name(n, load)]
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
    if not rows:
        return 0
    print("K-Means against the float64 Lloyd oracle:")
    _print_table(("case", "dtype", "backend", "labels agree", "centre err", "inertia err", "status"), rows)
    print(f"\n{len(rows)} comparisons, {failures} beyond tolerance")
    return failures


def _kmeans_name(name, backend_class) -> bool:
    try:
        backend_class(name)
    except ValueError:
        return False
    return True
