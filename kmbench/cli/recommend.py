"""``kmbench recommend``: rank the backends for one shape on this machine (K-Means, or ``--family linkage``),
or validate the ranking's models."""
from __future__ import annotations

import json

from kmbench.advise.ranking import (candidates, fmt_time, machine_name, rank_recorded, rank_scaled,
                                    recorded_table, validation)
from kmbench.advise.predict import whole_fit
from kmbench.advise.trials import rank_measured


def configure(parser):
    parser.add_argument("--family", choices=["kmeans", "linkage"], default="kmeans",
                        help="kmeans (default) or linkage (hierarchical clustering; give --method, not --k)")
    parser.add_argument("--n", type=int, default=None, help="number of samples")
    parser.add_argument("--k", type=int, default=None, help="number of clusters (K-Means)")
    parser.add_argument("--method", default="ward", help="linkage method: single, complete, average or ward")
    parser.add_argument("--d", type=int, default=None, help="number of features")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--device", default=None, help="only backends that run there (cpu, cuda)")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="rank by a whole fit of this many iterations (per-call part included)")
    parser.add_argument("--measure", action="store_true",
                        help="time a short trial now instead of using recorded results")
    parser.add_argument("--validate", action="store_true",
                        help="leave each recorded shape out, predict it from the rest, and print per backend the "
                             "median and worst error and how often the pick would have been slower (no --n/--k/--d)")
    parser.add_argument("--json", action="store_true", help="print the ranking (or the validation) as JSON")
    parser.add_argument("--results", default=None,
                        help="asv results folder (default: .asv/default/results, else the newest "
                             ".asv/<profile>/results)")
    parser.add_argument("--backend", action="append", help="only these backends (repeatable)")
    parser.add_argument("--iters", type=int, default=6,
                        help="a trial times run at 1 and at this many iterations, to separate the per-call part")


def run(args) -> int:
    from kmbench.core.validation import check_int

    if args.validate:
        return _validate(args)
    needed = ("n", "d") if args.family == "linkage" else ("n", "k", "d")
    missing = [f"--{name}" for name in needed if getattr(args, name) is None]
    if missing:
        raise ValueError(f"{', '.join(missing)} required (or --validate)")
    if args.family == "linkage":
        return run_linkage(args)
    n, k, d = (check_int(name, getattr(args, name), 1) for name in ("n", "k", "d"))
    if k > n:
        raise ValueError(f"--k={k} must be <= --n={n}")
    max_iter = None if args.max_iter is None else check_int("--max-iter", args.max_iter, 1)
    ranking = [] if args.measure else rank_recorded(n, k, d, args.dtype, args.device, results_dir=args.results,
                                                    names=args.backend, max_iter=max_iter)
    why = "from recorded results"
    if not ranking and not args.measure:
        ranking = rank_scaled(n, k, d, args.dtype, args.device, names=args.backend, max_iter=max_iter,
                              results_dir=args.results, measure=True)
        if ranking:
            why = ("from another machine's records, scaled by the two machines' measured ceilings (none recorded "
                   "here: `make bench` records this machine's own)")
    if not ranking:
        if not args.measure and not args.json:
            print("No recorded results for this machine and dtype; measuring a short trial instead.")
        ranking = rank_measured(n, k, d, args.dtype, args.device, names=args.backend, iters=args.iters,
                                progress=not args.json)
        why = "from a short trial just now"
        if max_iter is not None:
            for r in ranking:
                r["total"] = whole_fit(r["per_iter"], r["per_call"], max_iter)
            ranking.sort(key=lambda r: r["total"])
    if args.json:
        from kmbench.advise.predict import as_json

        print(json.dumps(dict(as_json(ranking, n, k, d, args.dtype, max_iter), why=why), indent=1))
        return 0 if ranking else 1
    _, refused = candidates(n, k, d, args.dtype, args.device, args.backend)
    print(format_ranking(ranking, refused, n, k, d, args.dtype, why, max_iter))
    return 0 if ranking else 1


def _validate(args) -> int:
    from kmbench.advise.predict import format_validation

    table, machine = recorded_table(args.results)
    result = validation(args.results, table=table, machine=machine)
    if args.json:
        print(json.dumps({"machine": machine,
                          "backends": [dict(backend=b, dtype=dt, **{k: v for k, v in s.items() if k != "errors"})
                                       for (b, dt), s in sorted(result["backends"].items())],
                          "picks": {dt: {k: v for k, v in p.items() if k != "details"}
                                    for dt, p in result["picks"].items()}}, indent=1))
    else:
        print(format_validation(result, machine))
    return 0 if result["backends"] else 1


def format_ranking(ranking, refused, n, k, d, dtype, why: str, max_iter=None) -> str:
    where = next((r["machine"] for r in ranking if r.get("machine")), None) or machine_name()
    lines = [f"Backends for n={n}, k={k}, d={d}, {dtype} on {where}, {why}:", ""]
    header = ("rank", "backend", "per iteration", "likely within", "per call", "vs best", "basis")
    if max_iter is not None:
        header = header[:5] + (f"{max_iter} iterations",) + header[5:]
    key = "total" if max_iter is not None else "per_iter"
    body = []
    for i, r in enumerate(ranking, 1):
        interval = (f"{fmt_time(r['low'])} - {fmt_time(r['high'])}" if r.get("low") is not None
                    else "(measured)")
        call = ("?" if r.get("per_call") is None else
                ("~" if r.get("per_call_basis") == "assumed" else "") + fmt_time(r["per_call"]))
        row = [str(i), r["backend"], fmt_time(r["per_iter"]), interval, call]
        if max_iter is not None:
            row.append(fmt_time(r["total"]))
        row += [f"{r[key] / ranking[0][key]:.2f}x", r["how"] + (f" [{r['note']}]" if r["note"] else "")]
        body.append(tuple(row))
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
            lines.append("Some predictions extrapolate beyond the recorded shapes (their intervals are wider); "
                         "--measure times a short trial at this shape instead.")
        if any(r.get("per_call_basis") == "assumed" for r in ranking):
            lines.append("'per call' (what a fit pays once: the final assignment, set-up) is recorded by the Design "
                         "suite of the default and full profiles and by --measure; '~' marks one assignment pass "
                         "of the model, assumed where none was recorded.")
        if any(r.get("low") is not None for r in ranking):
            lines.append("'likely within': the model's leave-one-out error on this machine's records (90% of "
                         "them), widened with the distance to the nearest recorded shape; "
                         "`kmbench recommend --validate` shows the figures.")
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
