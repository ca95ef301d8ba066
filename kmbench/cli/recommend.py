"""``kmbench recommend``: rank the backends for one shape on this machine (K-Means, or ``--family linkage``)."""
from __future__ import annotations

from kmbench.advise.ranking import candidates, fmt_time, machine_name, rank_recorded
from kmbench.advise.trials import rank_measured


def configure(parser):
    parser.add_argument("--n", type=int, required=True, help="number of samples")
    parser.add_argument("--family", choices=["kmeans", "linkage"], default="kmeans",
                        help="kmeans (default) or linkage (hierarchical clustering; give --method, not --k)")
    parser.add_argument("--k", type=int, help="number of clusters (K-Means)")
    parser.add_argument("--method", default="ward", help="linkage method: single, complete, average or ward")
    parser.add_argument("--d", type=int, required=True, help="number of features")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--device", default=None, help="only backends that run there (cpu, cuda)")
    parser.add_argument("--measure", action="store_true",
                        help="time a short trial now instead of using recorded results")
    parser.add_argument("--results", default=None,
                        help="asv results folder (default: .asv/default/results, else the newest "
                             ".asv/<profile>/results)")
    parser.add_argument("--backend", action="append", help="only these backends (repeatable)")
    parser.add_argument("--iters", type=int, default=3, help="timed iterations per backend in a trial")


def run(args) -> int:
    from kmbench.core.validation import check_int

    if args.family == "linkage":
        return run_linkage(args)
    if args.k is None:
        raise ValueError("--k is required for K-Means (or pass --family linkage --method METHOD)")
    n, k, d = (check_int(name, getattr(args, name), 1) for name in ("n", "k", "d"))
    if k > n:
        raise ValueError(f"--k={k} must be <= --n={n}")
    ranking = [] if args.measure else rank_recorded(n, k, d, args.dtype, args.device,
                                                    results_dir=args.results, names=args.backend)
    why = "from recorded results"
    if not ranking:
        if not args.measure:
            print("No recorded results for this machine and dtype; measuring a short trial instead.")
        ranking = rank_measured(n, k, d, args.dtype, args.device, names=args.backend, iters=args.iters)
        why = "from a short trial just now"
    _, refused = candidates(n, k, d, args.dtype, args.device, args.backend)
    print(format_ranking(ranking, refused, n, k, d, args.dtype, why))
    return 0 if ranking else 1


def format_ranking(ranking, refused, n, k, d, dtype, why: str) -> str:
    where = next((r["machine"] for r in ranking if r.get("machine")), None) or machine_name()
    lines = [f"Backends for n={n}, k={k}, d={d}, {dtype} on {where}, {why}:", ""]
    header = ("rank", "backend", "per iteration", "vs best", "basis")
    body = []
    for i, r in enumerate(ranking, 1):
        body.append((str(i), r["backend"], fmt_time(r["per_iter"]),
                     f"{r['per_iter'] / ranking[0]['per_iter']:.2f}x",
                     r["how"] + (f" [{r['note']}]" if r["note"] else "")))
    widths = [max(len(row[j]) for row in body + [header]) for j in range(len(header) - 1)]
    for row in [header] + body:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[-1])
    if not ranking:
        lines.append("(no backend could run this case)")
    if refused:
        lines += ["", "Not ranked:"] + [f"  {name}: {reason}" for name, reason in refused.items()]
    if ranking:
        lines += ["", f"Recommendation: {ranking[0]['backend']}: {ranking[0]['reason']}"]
        if any("extrapolated" in r["how"] for r in ranking):
            lines.append("Some estimates extrapolate beyond the recorded shapes; --measure times a short trial "
                         "at this shape instead.")
    return "\n".join(lines)


def run_linkage(args) -> int:
    """The linkage family's ranking: recorded results, else (with --measure, or when none) a short trial."""
    from kmbench.advise.linkage import measure, print_ranking, rank_recorded
    from kmbench.core.linkage import check_method
    from kmbench.core.validation import check_int

    n, d = check_int("n", args.n, 2), check_int("d", args.d, 1)
    method = check_method(args.method)
    rows = [] if args.measure else rank_recorded(n, d, args.dtype, method, args.device, results_dir=args.results)
    if not rows:
        if not args.measure:
            print("No recorded linkage results for this machine and dtype; measuring a short trial instead.")
        rows = measure(n, d, args.dtype, method, names=args.backend)
    print_ranking(rows, n, d, args.dtype, method)
    return 0 if any(r["eligible"] for r in rows) else 1
