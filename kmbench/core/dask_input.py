"""Data and clusters for the dask backends: files on disk as dask arrays, and where to compute.

Nothing here imports dask at module level; every function that needs it imports it
when called, so ``kmbench list`` stays light.

    >>> from kmbench.core.dask_input import open_array
    >>> X = open_array("points.npy")          # lazy, chunked by rows, read by the workers
    >>> kmbench.fit(X, 64, backend="dask", init="random", scheduler="tcp://head:8786")
"""
from __future__ import annotations

import logging
import math
import os

import numpy as np

#: bytes of one row block; large enough to keep BLAS busy, small enough for many per worker
BLOCK_BYTES = 64 << 20


class FileRows:
    """A 2-D array stored raw in a file (a .npy or any ``numpy.memmap``), read by row slices.

    Pickles as its path and layout only, so a dask graph built on it ships no data: each
    worker maps the file itself and reads just the rows of its block.

    Parameters
    ----------
    path : str
    dtype : numpy dtype
    shape : tuple of (n_samples, n_features)
    offset : int, bytes before the first element (the .npy header)
    """

    ndim = 2

    def __init__(self, path, dtype, shape, offset=0):
        self.path = os.fspath(path)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.offset = int(offset)

    @classmethod
    def from_npy(cls, path):
        array = np.load(path, mmap_mode="r")
        if array.ndim != 2:
            raise ValueError(f"{path} holds a {array.ndim}-D array of shape {array.shape}; expected 2-D")
        if not array.flags.c_contiguous:
            raise ValueError(f"{path} is stored in Fortran order; rows must be contiguous (save it C-ordered)")
        return cls(path, array.dtype, array.shape, array.offset)

    def __getitem__(self, index):
        rows = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape)
        return np.array(rows[index])

    def __repr__(self):
        return f"FileRows({self.path!r}, dtype={self.dtype}, shape={self.shape})"


def file_backing(X) -> FileRows | None:
    """The file behind X when X is the whole of a C-ordered ``numpy.memmap`` (or a view of all of it)."""
    base = X
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    if base is None or getattr(base, "filename", None) is None or not isinstance(X, np.ndarray):
        return None
    whole = (X.shape == base.shape and X.dtype == base.dtype and X.flags.c_contiguous
             and X.__array_interface__["data"][0] == base.__array_interface__["data"][0])
    return FileRows(base.filename, base.dtype, base.shape, base.offset) if whole and X.ndim == 2 else None


def default_chunk_rows(n: int, d: int, itemsize: int, n_workers: int = 1) -> int:
    """Rows per block: at most ``BLOCK_BYTES``, and at least four blocks per worker when n allows."""
    by_bytes = max(1, BLOCK_BYTES // max(1, d * itemsize))
    by_workers = max(1, math.ceil(n / (4 * max(1, n_workers))))
    return int(min(by_bytes, by_workers, n))


def open_array(path, *, chunk_rows: int | None = None):
    """A .npy file or a zarr store as a dask array chunked by rows, without reading it.

    Parameters
    ----------
    path : str or path-like
        ``*.npy`` (read through a memory map by whichever worker holds a block) or a zarr
        array (a directory or any store path ``dask.array.from_zarr`` accepts).
    chunk_rows : int, optional
        Rows per block; by default blocks of about 64 MiB.

    Returns
    -------
    dask.array.Array of shape (n_samples, n_features), chunks ``(chunk_rows, n_features)``
    """
    import dask.array as da

    path = os.fspath(path)
    if path.endswith(".npy"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such .npy file: {path}")
        source = FileRows.from_npy(path)
        n, d = source.shape
        rows = chunk_rows or default_chunk_rows(n, d, source.dtype.itemsize, n_workers=n)
        return da.from_array(source, chunks=(rows, d), asarray=True, fancy=False, name=f"npy-{_token(source)}")
    X = da.from_zarr(path)
    if X.ndim != 2:
        raise ValueError(f"{path} holds a {X.ndim}-D array of shape {X.shape}; expected 2-D")
    return by_rows(X, chunk_rows or default_chunk_rows(X.shape[0], X.shape[1], X.dtype.itemsize, n_workers=X.shape[0]))


def _token(source: FileRows) -> str:
    from dask.base import tokenize

    try:
        mtime = os.stat(source.path).st_mtime_ns
    except OSError:
        mtime = 0
    return tokenize(source.path, mtime, str(source.dtype), source.shape, source.offset)


def by_rows(X, chunk_rows: int | None = None):
    """X with every block holding whole rows: its own row chunks kept, or ``chunk_rows`` rows each."""
    if chunk_rows is None:
        return X if len(X.chunks[1]) == 1 else X.rechunk({1: -1})
    return X.rechunk({0: chunk_rows, 1: -1})


def connect(scheduler: str | None = None, *, n_workers: int = 1, threads_per_worker: int = 1,
            memory_limit="auto", timeout: float = 60):
    """Where to compute: ``(client, how, owned)``.

    In order: the scheduler at ``scheduler`` (an address such as ``"tcp://head:8786"``),
    else the caller's active ``distributed.Client``, else a ``LocalCluster`` of worker
    processes started now. ``owned`` lists what this call started (to close, in reverse
    order); it is empty when the caller's client is used.
    """
    from distributed import Client, LocalCluster, default_client

    if scheduler is not None:
        if not isinstance(scheduler, str):
            raise ValueError(f"scheduler must be an address such as 'tcp://host:8786'; got {scheduler!r}")
        client = Client(scheduler, set_as_default=False, timeout=timeout)
        return client, f"scheduler {scheduler}", [client]
    try:
        return default_client(), "active client", []
    except ValueError:
        pass
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                           memory_limit=memory_limit, dashboard_address=None, silence_logs=logging.ERROR)
    try:
        client = Client(cluster, set_as_default=False, timeout=timeout)
    except Exception:
        cluster.close()
        raise
    # The client closes first, so the cluster does not see workers leave while data is still wanted.
    return client, f"LocalCluster({n_workers} x {threads_per_worker} threads)", [cluster, client]


def close_all(owned) -> None:
    """Close what ``connect`` started, newest first; errors while closing are not the caller's problem."""
    while owned:
        thing = owned.pop()
        try:
            thing.close()
        except Exception:  # noqa: BLE001 - a half-dead cluster must not mask the fit's own outcome
            pass


def cluster_resources(client) -> dict:
    """Workers, total threads and the smallest worker memory limit (bytes, 0 = none) of a client's cluster."""
    workers = client.scheduler_info(n_workers=-1)["workers"] if _takes_n_workers(client) \
        else client.scheduler_info()["workers"]
    limits = [w.get("memory_limit") or 0 for w in workers.values()]
    return {"workers": len(workers), "threads": sum(w.get("nthreads", 1) for w in workers.values()),
            "memory_limit": min(limits) if limits else 0, "total_memory": sum(limits)}


def _takes_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters
