"""``kmbench linkage DATA --method ward [--n-clusters K | --height H]``: hierarchical clustering of a file.

Reads .npy, .csv and .parquet files as ``kmbench fit`` does, and writes, in the input's format and
next to the data or into ``--out``: ``STEM.linkage.EXT`` (SciPy's Z: a, b, height, size), with a
flat cut ``STEM.labels.EXT`` (0-based labels from ``scipy.cluster.hierarchy.fcluster``), and
``STEM.dendrogram.png``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

Z_COLUMNS = ["a", "b", "height", "size"]


def configure(parser):
    parser.add_argument("data", metavar="DATA", help="a .npy, .csv (header optional) or .parquet file")
    parser.add_argument("--columns", help="comma-separated column names or 0-based positions to use (default: all)")
    parser.add_argument("--header", choices=["auto", "yes", "no"], default="auto",
                        help="CSV only: whether the first line holds column names (default: detected)")
    parser.add_argument("--method", default="ward", help="single, complete, average or ward (default ward)")
    cut = parser.add_mutually_exclusive_group()
    cut.add_argument("--n-clusters", "-k", type=int, help="cut the tree into this many clusters")
    cut.add_argument("--height", type=float, help="cut the tree at this merge height")
    parser.add_argument("--backend", default="auto", help="a name from `kmbench list`, or auto (default)")
    parser.add_argument("--dtype", choices=["float32", "float64"], help="working precision (default: the data's)")
    parser.add_argument("--threads", type=int, help="threads (default: KMBENCH_THREADS or every core)")
    parser.add_argument("--out", metavar="DIR", help="directory for the outputs (default: next to DATA)")


def write_table(table, values: np.ndarray, kind: str, columns: list, out=None) -> Path:
    """``values`` (1-D: one column) written as ``STEM.KIND.EXT`` in the input's format, in ``out`` or
    beside the data."""
    import pandas as pd

    directory = Path(out) if out else table.path.parent
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{table.path.stem}.{kind}{table.fmt}"
    if table.fmt == ".npy":
        np.save(path, values)
        return path
    frame = pd.DataFrame(values.reshape(len(values), -1), columns=columns)
    if table.fmt == ".csv":
        frame.to_csv(path, index=False, float_format="%.17g")
    else:
        frame.to_parquet(path, index=False)
    return path


def run(args) -> int:
    from scipy.cluster.hierarchy import fcluster

    from kmbench.api.linking import linkage
    from kmbench.cli.fitfile import read_data
    from kmbench.report.dendrogram import cut_height, draw

    if args.n_clusters is not None and args.n_clusters < 1:
        raise ValueError(f"--n-clusters={args.n_clusters} must be >= 1")
    if args.height is not None and not (np.isfinite(args.height) and args.height >= 0):
        raise ValueError(f"--height={args.height} must be a finite number >= 0")
    table = read_data(args)
    n = table.X.shape[0]
    if args.n_clusters is not None and args.n_clusters > n:
        raise ValueError(f"--n-clusters={args.n_clusters} must be <= n_samples={n}")
    result = linkage(table.X, args.method, backend=args.backend, dtype=args.dtype, threads=args.threads)
    written = [write_table(table, result.Z, "linkage", Z_COLUMNS, args.out)]
    cut = None
    if args.n_clusters is not None or args.height is not None:
        if args.n_clusters is not None:
            labels = fcluster(result.Z, args.n_clusters, criterion="maxclust")
            cut = cut_height(result.Z, args.n_clusters)
        else:
            labels = fcluster(result.Z, args.height, criterion="distance")
            cut = args.height
        labels = (labels - 1).astype(np.int32)
        written.append(write_table(table, labels, "labels", ["label"], args.out))
    directory = Path(args.out) if args.out else table.path.parent
    written.append(draw(result.Z, directory / f"{table.path.stem}.dendrogram.png", cut=cut,
                        title=f"{result.method} linkage of {table.path.name} (n={n}, {result.backend})"))
    flat = f"; {int(labels.max()) + 1} flat clusters" if cut is not None else ""
    print(f"{result.method} linkage of {n} x {table.X.shape[1]} ({result.dtype}) on {result.backend} in "
          f"{result.timings['fit']:.3g} s{flat}; wrote {', '.join(str(p) for p in written)}")
    return 0
