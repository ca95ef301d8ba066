"""``kmbench list``: every backend, whether it can run here, and why not."""
from __future__ import annotations

import json


def configure(parser):
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from kmbench.core.kmeans import backends

    rows = backends()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'backend':<11} {'available':<9} {'devices':<9} {'dtypes':<16} reason / declared deviations")
    for row in rows:
        note = row["reason"] or "; ".join(f"{k}: {v}" for k, v in row["deviations"].items())
        print(f"{row['name']:<11} {'yes' if row['available'] else 'no':<9} {','.join(row['devices']):<9} "
              f"{','.join(row['dtypes']):<16} {note}")
    return 0
