"""``kmbench list``: every backend of both families, whether it can run here, and why not."""
from __future__ import annotations

import json


def configure(parser):
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--family", choices=["kmeans", "linkage"], help="only this family (default: both)")


def run(args) -> int:
    from kmbench.core import linkage, registry

    families = [args.family] if args.family else ["kmeans", "linkage"]
    listing = {family: linkage.backends() if family == "linkage" else registry.backends(family)
               for family in families}
    if args.json:
        print(json.dumps(listing if len(families) > 1 else listing[families[0]], indent=2))
        return 0
    for family, rows in listing.items():
        if len(families) > 1:
            print(("K-Means" if family == "kmeans" else "\nHierarchical clustering (kmbench.linkage)") + ":")
        methods = family == "linkage"
        print(f"{'backend':<11} {'available':<9} {'devices':<9} {'dtypes':<16} "
              + (f"{'methods':<30} " if methods else "") + "reason / declared deviations")
        for row in rows:
            note = row["reason"] or "; ".join(f"{k}: {v}" for k, v in row["deviations"].items())
            print(f"{row['name']:<11} {'yes' if row['available'] else 'no':<9} {','.join(row['devices']):<9} "
                  f"{','.join(row['dtypes']):<16} " + (f"{','.join(row['methods']):<30} " if methods else "")
                  + note)
    return 0
