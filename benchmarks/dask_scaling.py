"""Scaling the ``dask`` backend: 1 and 2 worker processes, in memory and from a file larger than a worker.

A script, not an asv suite (asv imports this module; all work happens under
``__main__``). Run it with

    python benchmarks/dask_scaling.py [--n-memory 1000000] [--n-file 6000000] [--iters 4]

It prints seconds per Lloyd iteration (median over ``--repeats`` fits) and the
speed-up of two workers over one, for

* data in the client's memory, scattered to the workers once (untimed), and
* a float32 ``.npy`` file on disk read through ``numpy.memmap`` by the workers every
  iteration, with each worker's ``memory_limit`` below the file's size, so no single
  worker could hold the data.

The single-process ``float32`` backend on the in-memory data is printed as a
baseline: the cost of distribution on one machine.
"""
from __future__ import annotations


def write_blobs_npy(path, n: int, d: int, k: int, *, seed: int = 0, rows_per_write: int = 500_000) -> int:
    """Gaussian blobs (float32, shape (n, d)) written to ``path`` piece by piece; returns bytes on disk."""
    import os

    import numpy as np

    rng = np.random.default_rng(seed)
    means = rng.uniform(-10.0, 10.0, size=(k, d))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, rows_per_write):
        m = min(rows_per_write, n - start)
        truth = rng.integers(k, size=m)
        out[start:start + m] = means[truth] + rng.standard_normal((m, d))
    out.flush()
    del out
    return os.path.getsize(path)


def fit_on_cluster(X, centers, *, workers: int, memory_limit, iters: int, repeats: int, **options):
    """Median seconds per iteration of the dask backend on a fresh LocalCluster, and the last result."""
    import logging
    import statistics

    from distributed import Client, LocalCluster

    from kmbench.core.kmeans import create, execute

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster, set_as_default=False)
    try:
        per_iter, result = [], None
        with client.as_current():
            for _ in range(repeats):
                backend = create("dask", n=X.shape[0], k=centers.shape[0], d=X.shape[1], dtype="float32",
                                 **options)
                result = execute(backend, X, centers, max_iter=iters, tol=-1.0)
                per_iter.append(result.timings["per_iter"])
        return statistics.median(per_iter), result
    finally:
        client.close()
        cluster.close()


def main(argv=None) -> int:
    import argparse
    import os
    import statistics
    import tempfile

    import numpy as np

    from kmbench.core.kmeans import create, execute
    from kmbench.core.threads import available_cores

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-memory", type=int, default=1_000_000, help="rows of the in-memory case")
    parser.add_argument("--n-file", type=int, default=6_000_000, help="rows of the on-disk case")
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iters", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=125_000)
    parser.add_argument("--dir", default=None, help="where to write the .npy (default: a temporary directory)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(1)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        # -- in memory ---------------------------------------------------------------------------------
        path = os.path.join(tmp, "memory.npy")
        write_blobs_npy(path, args.n_memory, args.d, args.k, seed=0)
        X = np.load(path)  # a plain in-memory array: scattered to the workers in prepare
        centers = X[rng.choice(X.shape[0], args.k, replace=False)].copy()
        shape = f"{args.n_memory}x{args.d} k={args.k} float32, {X.nbytes / 2**20:.0f} MiB in memory"
        for threads in (1, 2):
            times = []
            for _ in range(args.repeats):
                backend = create("float32", n=X.shape[0], k=args.k, d=args.d, dtype="float32", threads=threads)
                times.append(execute(backend, X, centers, max_iter=args.iters, tol=-1.0).timings["per_iter"])
            rows.append((shape, f"float32 backend, {threads} thread(s)", statistics.median(times), None))
        for workers in (1, 2):
            t, result = fit_on_cluster(X, centers, workers=workers, memory_limit="2GiB", iters=args.iters,
                                       repeats=args.repeats, chunk_rows=args.chunk_rows)
            rows.append((shape, f"dask, {workers} worker(s), scattered", t, result.info))
        del X

        # -- on disk, larger than a worker's memory limit ---------------------------------------------
        path = os.path.join(tmp, "file.npy")
        size = write_blobs_npy(path, args.n_file, args.d, args.k, seed=1)
        limit = max(256 << 20, size // 2)
        Xm = np.load(path, mmap_mode="r")
        centers = np.array(Xm[np.sort(rng.choice(Xm.shape[0], args.k, replace=False))])
        shape = (f"{args.n_file}x{args.d} k={args.k} float32, {size / 2**20:.0f} MiB .npy; "
                 f"worker memory_limit {limit / 2**20:.0f} MiB")
        for workers in (1, 2):
            t, result = fit_on_cluster(Xm, centers, workers=workers, memory_limit=limit, iters=args.iters,
                                       repeats=args.repeats, chunk_rows=args.chunk_rows, persist=False)
            assert not result.info["persisted"] and result.info["input"].startswith("file ")
            rows.append((shape, f"dask, {workers} worker(s), read from file", t, result.info))
        del Xm

    print(f"\nmachine: {available_cores()} cores; Lloyd iterations per fit: {args.iters}; "
          f"median of {args.repeats} fits; chunk_rows={args.chunk_rows}\n")
    base = {}
    for shape, what, t, _ in rows:
        if what.startswith("dask, 1 worker"):
            base[shape] = t
        speedup = f"x{base[shape] / t:.2f} vs 1 worker" if what.startswith("dask") and shape in base else ""
        print(f"{shape:70s}  {what:36s}  {t:8.3f} s/iter  {speedup}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
