"""Draw the README's dendrogram: ward linkage of the iris flowers that ship with scikit-learn.

    python tools/linkage_figure.py [OUT.png]    (default: reports/figures/linkage_iris_dendrogram.png)

The pipeline itself is ``kmbench.report.dendrogram.iris`` (the report draws the same figure).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from kmbench.report.dendrogram import iris

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else ROOT / "reports" / "figures" / "linkage_iris_dendrogram.png"
    path, ari = iris(out)
    print(f"wrote {path} (ARI {ari:.3f} against the species)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
