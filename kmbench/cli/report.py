"""``kmbench report``: write figures and pages from recorded results."""
from __future__ import annotations

from kmbench.report.pages import write_report


def configure(parser):
    parser.add_argument("--results", default=None,
                        help="asv results folder (default: .asv/default/results, else the newest "
                             ".asv/<profile>/results)")
    parser.add_argument("--out", default="reports", help="output folder (default: reports/)")
    parser.add_argument("--machine", default=None, help="machine to report on (default: this one)")
    parser.add_argument("--sweep", action="append", default=None,
                        help="sweep JSONL file to include (repeatable; default: results/*.jsonl)")
    parser.add_argument("--no-convergence", action="store_true",
                        help="skip the convergence run (the figure and its quality rows)")


def run(args) -> int:
    paths = write_report(args.results, args.out, machine=args.machine, sweeps=args.sweep,
                         convergence=not args.no_convergence)
    for name, path in paths.items():
        print(f"{name:<18} {path}")
    return 0


