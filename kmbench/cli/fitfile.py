"""``kmbench fit DATA --k K``: cluster a user's .npy/.csv/.parquet file.

Writes ``STEM.labels.EXT`` and ``STEM.centers.EXT`` in the input's format, next to
the data or into ``--out``, and prints a one-line summary.
"""
from __future__ import annotations

import warnings


def add_data_arguments(parser) -> None:
    """Arguments shared with ``kmbench elbow``: the file and how to read it, and the fit's knobs."""
    parser.add_argument("data", metavar="DATA", help="a .npy, .csv (header optional) or .parquet file")
    parser.add_argument("--columns", help="comma-separated column names or 0-based positions to use (default: all)")
    parser.add_argument("--header", choices=["auto", "yes", "no"], default="auto",
                        help="CSV only: whether the first line holds column names (default: detected)")
    parser.add_argument("--backend", default="auto", help="a name from `kmbench list`, or auto (default)")
    parser.add_argument("--max-iter", type=int, default=300, help="Lloyd iterations per run (default 300)")
    parser.add_argument("--tol", type=float, default=1e-4,
                        help="relative tolerance; < 0 runs exactly --max-iter iterations (default 1e-4)")
    parser.add_argument("--seed", type=int, default=0, help="seeds every restart (default 0: reproducible)")
    parser.add_argument("--dtype", choices=["float32", "float64"], help="working precision (default: the data's)")
    parser.add_argument("--threads", type=int, help="threads (default: KMBENCH_THREADS or every core)")
    parser.add_argument("--device", help="e.g. cpu or cuda (default: the backend's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def read_data(args):
    """The file as a ``Table``, its matrix checked by ``kmbench.core.validation`` for one-line messages."""
    from kmbench.cli.datafiles import read_matrix
    from kmbench.core.validation import check_data

    header = {"auto": None, "yes": True, "no": False}[args.header]
    table = read_matrix(args.data, columns=args.columns, header=header)
    table.X, _ = check_data(table.X)
    return table


def configure(parser):
    add_data_arguments(parser)
    parser.add_argument("--k", "-k", "--n-clusters", dest="k", type=int, required=True, help="number of clusters")
    parser.add_argument("--init", default="k-means++",
                        help="k-means++ (default), random, or a .npy/.csv/.parquet file of (k, d) starting centres")
    parser.add_argument("--n-init", default="1", help="restarts, keeping the lowest inertia (default 1; or auto)")
    parser.add_argument("--out", metavar="DIR", help="directory for the outputs (default: next to DATA)")


def run(args) -> int:
    import time

    from tqdm import tqdm

    from kmbench.api.estimator import KMeans
    from kmbench.cli.datafiles import read_matrix, write_results

    table = read_data(args)
    init = args.init
    if init not in ("k-means++", "random"):
        init = read_matrix(init).X
    n_init = args.n_init if args.n_init == "auto" else _int("--n-init", args.n_init)
    est = KMeans(args.k, backend=args.backend, init=init, n_init=n_init, max_iter=args.max_iter, tol=args.tol,
                 random_state=args.seed, device=args.device, dtype=args.dtype, threads=args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        total = est._check_params(table.X.shape[0])  # errors before the progress bar, not after it
    bar = tqdm(total=total, desc=f"kmbench fit k={args.k}", unit="restart", disable=args.quiet, leave=False)

    def progress(r, result, best):
        bar.set_postfix(backend=result.backend, inertia=f"{best.inertia:.6g}", refresh=False)
        bar.update(1)

    t0 = time.perf_counter()
    try:
        est._fit(table.X, progress=progress)
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    labels_path, centers_path = write_results(table, est.labels_, est.cluster_centers_, args.out)
    lloyd = sum(r["fit_seconds"] or 0.0 for r in est.restarts_)
    n, d = table.X.shape
    print(f"{table.path.name}: n={n} d={d} k={args.k} backend={est.backend_} dtype={est.cluster_centers_.dtype} "
          f"n_iter={est.n_iter_} inertia={est.inertia_:.6g} restarts={len(est.restarts_)} "
          f"time={wall:.3f}s (Lloyd {lloyd:.3f}s) -> {labels_path}, {centers_path}")
    return 0


def _int(flag: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{flag} must be an integer or 'auto'; got {value!r}") from None
