"""Lloyd on a dask.distributed cluster: the identity kernel mapped over row blocks, partial sums reduced.

Each iteration runs one task per row block on the workers (labels through the GEMM
identity, float64 per-cluster sums and counts, labels changed since the last
iteration) and reduces the small per-block summaries in a tree. The labels stay on
the worker that computed them, for the next iteration's "labels repeat" test. Only
when clusters come out empty does a second, rare task per block send back its
farthest points, from which the client applies the contract's rule through
``impls.lloyd.new_centers``; the data itself never leaves the workers, so X may be a
file on disk larger than any one worker's memory.

Where it runs: the ``scheduler=`` address if given, else the caller's active
``distributed.Client``, else a ``LocalCluster`` started in ``prepare`` (untimed) and
closed in ``close`` (which the harness calls after every fit, failed or not).
"""
from __future__ import annotations

import numbers
import weakref

import numpy as np

from kmbench.core.measures import combine_moments, moments, scale_of

from .base import Backend, Fitted, Interval, distances_to_own, exact_inertia
from .identity import IdentityKMeans
from .lloyd import farthest_first, new_centers

#: fan-in of the tree that sums per-block summaries on the workers
FAN_IN = 8


class BlockKernel(IdentityKMeans):
    """The identity backend's ``step`` on one row block, without whole-data statistics."""

    def __init__(self, block: np.ndarray, k: int):
        super().__init__(threads=1)
        self.use_data(block, k)


# -- tasks run on the workers (module-level functions, so they pickle by reference) --------------------

def first_bad_row(block: np.ndarray):
    """``(row, what)`` of the block's first non-finite row, or None."""
    bad = ~np.isfinite(block).all(axis=1)
    if not bad.any():
        return None
    row = int(np.flatnonzero(bad)[0])
    return row, int(bad.sum()), "NaN" if np.isnan(block[row]).any() else "infinity"


def block_step(block, centers, previous, offset: int, first_pass: bool):
    """One Lloyd pass over a block: its labels (int32, kept on the worker) and a summary to reduce."""
    block = np.ascontiguousarray(block, dtype=centers.dtype)
    k = centers.shape[0]
    summary = {"rows": block.shape[0], "bad": None, "moments": None}
    if first_pass:
        bad = first_bad_row(block)
        if bad is not None:
            summary["bad"] = (offset + bad[0], bad[1], bad[2])
            return {"labels": None, "summary": summary}
        summary["moments"] = moments(block)
    labels, dist, sums, counts = BlockKernel(block, k).step(centers)
    labels = labels.astype(np.int32)
    changed = -1 if previous is None else int(np.count_nonzero(labels != previous["labels"]))
    summary.update(sums=sums, counts=counts, changed=changed, inertia=float(np.sum(dist, dtype=np.float64)))
    return {"labels": labels, "summary": summary}


def summary_of(step):
    return step["summary"]


def combine(*parts):
    """Sum per-block summaries: sums, counts, inertia and changed labels add; the first bad row wins."""
    out = dict(parts[0])
    for part in parts[1:]:
        out["rows"] += part["rows"]
        bad = [b for b in (out["bad"], part["bad"]) if b is not None]
        if bad:
            first = min(bad)
            out["bad"] = (first[0], sum(b[1] for b in bad), first[2])
            continue
        out["sums"] = out["sums"] + part["sums"]
        out["counts"] = out["counts"] + part["counts"]
        out["inertia"] += part["inertia"]
        out["changed"] = -1 if -1 in (out["changed"], part["changed"]) else out["changed"] + part["changed"]
        if out["moments"] is not None:
            out["moments"] = combine_moments([out["moments"], part["moments"]])
    return out


def block_candidates(block, step, centers, offset: int, m: int):
    """The block's ``m`` points farthest from their assigned centre, as the empty-cluster rule orders them.

    Distances by direct float64 differences, exactly as ``impls.base.distances_to_own`` computes
    them, so the union of every block's candidates contains the global choice.
    Returns global row indices (int64, ascending), labels (int32) and points (m', d).
    """
    block = np.ascontiguousarray(block, dtype=centers.dtype)
    labels = step["labels"]
    order = np.sort(farthest_first(distances_to_own(block, centers, labels), m))
    return offset + order, labels[order], block[order]


def block_final(block, centers):
    """Labels against the final centres (int32) and their inertia by direct float64 differences."""
    block = np.ascontiguousarray(block, dtype=centers.dtype)
    labels = BlockKernel(block, centers.shape[0]).assign(centers)[0].astype(np.int32)
    return labels, exact_inertia(block, centers.astype(np.float64), labels)


def worker_lost(exc: BaseException) -> bool:
    """True for the errors a dead worker or a dropped connection raises (worth one more try)."""
    import concurrent.futures

    from distributed.scheduler import KilledWorker

    return isinstance(exc, (concurrent.futures.CancelledError, KilledWorker, OSError)) \
        and not isinstance(exc, TimeoutError)


def warm_worker():
    """Import this module on a worker before the timed run, as the first task would."""
    import impls.dask_lloyd  # noqa: F401


class DaskKMeans(Backend):
    """Options: ``scheduler`` (address), ``n_workers`` and ``threads_per_worker`` (for the LocalCluster it
    starts; default: ``threads`` single-threaded workers), ``memory_limit`` (per worker),
    ``chunk_rows``, ``persist`` (keep X in worker memory; default: when it fills at most half
    of the cluster's memory), ``timeout`` (seconds one pass may take before the fit is abandoned),
    ``retries`` (passes redone after losing a worker, default 2)."""

    name = "dask"
    color, marker = "#e377c2", "<"
    distributed = True
    parameters = {"scheduler": [None, object], "n_workers": [Interval(numbers.Integral, 1, None)], "threads_per_worker": [Interval(numbers.Integral, 1, None)], "memory_limit": [None, str, Interval(numbers.Real, 0, None)], "chunk_rows": [None, Interval(numbers.Integral, 1, None)], "persist": [None, bool], "timeout": [None, Interval(numbers.Real, 0, None, closed="neither")], "retries": [Interval(numbers.Integral, 0, None)]}
    requires = ("dask", "distributed")
    extra = "dask"
    native_inputs = ("dask",)

    def prepare(self, X, centers):
        import kmbench.core.dask_input as dask_input

        opts = self.options
        self.client, self.where, self.owned = dask_input.connect(
            opts.get("scheduler"), n_workers=opts.get("n_workers", self.threads),
            threads_per_worker=opts.get("threads_per_worker", 1), memory_limit=opts.get("memory_limit", "auto"))
        # Close a cluster started here even if close() is never called (the object is collected).
        # A failure after this point is cleaned up by the harness, which calls close() after every fit.
        self._finalizer = weakref.finalize(self, dask_input.close_all, self.owned)
        resources = dask_input.cluster_resources(self.client)
        self.threads = max(1, resources["threads"])  # what actually runs, recorded by the harness
        self.init = np.array(centers, copy=True)
        dtype = self.init.dtype
        self.timeout = self.options.get("timeout")
        self.retries = int(self.options.get("retries", 2))
        n, d = X.shape
        source = X if hasattr(X, "__dask_graph__") else None
        backing = None if source is not None else dask_input.file_backing(X)
        rows = self.options.get("chunk_rows") or dask_input.default_chunk_rows(
            n, d, dtype.itemsize, resources["workers"])
        persist = self.options.get("persist")
        if persist is None:
            persist = resources["total_memory"] == 0 or n * d * dtype.itemsize <= resources["total_memory"] // 2
        if backing is not None:
            import dask.array as da

            # A memory-mapped file: each worker reads its own rows; nothing passes through here.
            source = da.from_array(backing, chunks=(rows, d), asarray=True, fancy=False)
        self.host, self.lazy, self.persisted = None, None, None
        if source is None:
            # In-memory NumPy: scatter the blocks once; they stay on the workers for every run.
            self.host = X
            self.offsets = list(range(0, n, rows))
            self.blocks = self._scatter(range(len(self.offsets)))
            persist = True
        else:
            source = dask_input.by_rows(source, self.options.get("chunk_rows"))
            if source.dtype != dtype:
                source = source.astype(dtype)
            self.lazy = source
            self.offsets = [int(v) for v in np.cumsum((0,) + source.chunks[0][:-1])]
            if persist:
                self.persisted = self.client.persist(source)
                source = self.persisted
            self.blocks = list(source.to_delayed().ravel())
        self.scale = None
        kind = "NumPy, scattered" if self.host is not None else f"file {backing.path}" if backing is not None \
            else "dask array"
        self.info = {"where": self.where, "input": kind, "workers": resources["workers"],
                     "worker_threads": resources["threads"], "blocks": len(self.blocks),
                     "chunk_rows": int(rows if self.lazy is None else self.lazy.chunks[0][0]),
                     "persisted": bool(persist), "scheduler": self.client.scheduler.address}

    def _scatter(self, which):
        stop = [*self.offsets[1:], self.host.shape[0]]
        pieces = [np.ascontiguousarray(self.host[self.offsets[i]:stop[i]], dtype=self.init.dtype) for i in which]
        return self.client.scatter(pieces, hash=False)

    def warm_up(self):
        self.client.run(warm_worker)

    # -- passes over the blocks -----------------------------------------------------------------------
    def _gather(self, futures, what):
        """The results of ``futures``, waiting at most ``timeout`` seconds (never forever, when set)."""
        from distributed import wait

        try:
            if self.timeout is not None:
                wait(futures, timeout=self.timeout)
            return self.client.gather(futures)
        except TimeoutError as exc:
            raise RuntimeError(f"dask {what} did not finish within timeout={self.timeout} s; "
                               f"the fit was abandoned") from exc

    def _map(self, func, *shared):
        """Futures of ``func(block, *shared)`` for every block; arrays in ``shared`` ship once."""
        from dask import delayed

        shared = [delayed(v, pure=True) if isinstance(v, np.ndarray) else v for v in shared]
        return self.client.compute([delayed(func, pure=False)(b, *shared) for b in self.blocks])

    def _reduce(self, steps):
        from dask import delayed

        level = [delayed(summary_of)(f) for f in steps]
        while len(level) > 1:
            level = [delayed(combine)(*level[i:i + FAN_IN]) for i in range(0, len(level), FAN_IN)]
        return self.client.compute(level[0])

    def _iteration(self, centers, previous, first_pass, what):
        """One Lloyd pass: the block steps (futures), their reduced summary, and re-seeding candidates."""
        from dask import delayed

        c = delayed(centers, pure=True)
        steps = self.client.compute([delayed(block_step, pure=False)(b, c, p, off, first_pass)
                                     for b, p, off in zip(self.blocks, previous, self.offsets)])
        total = self._gather(self._reduce(steps), what)
        if total["bad"] is not None:
            return steps, total, None
        empty = int(np.count_nonzero(total["counts"] == 0))
        if not empty:
            return steps, total, (np.empty((0, centers.shape[1]), centers.dtype), np.empty(0, np.int32))
        found = self._gather(self.client.compute(
            [delayed(block_candidates, pure=False)(b, s, c, off, empty)
             for b, s, off in zip(self.blocks, steps, self.offsets)]), what)
        order = np.argsort(np.concatenate([f[0] for f in found]), kind="stable")
        return steps, total, (np.concatenate([f[2] for f in found])[order],
                              np.concatenate([f[1] for f in found])[order])

    def _recover(self, previous, previous_centers):
        """After a lost worker: restore lost blocks, and recompute lost labels from the centres that made them."""
        from dask import delayed

        if self.host is not None:
            lost = [i for i, b in enumerate(self.blocks) if b.status != "finished"]
            for i, future in zip(lost, self._scatter(lost)):
                self.blocks[i] = future
        elif self.persisted is not None and any(f.status != "finished" for f in self.client.futures_of(self.persisted)):
            self.persisted = self.client.persist(self.lazy)
            self.blocks = list(self.persisted.to_delayed().ravel())
        if previous_centers is None:
            return previous
        c = delayed(previous_centers, pure=True)
        return [p if p is None or p.status == "finished" else
                self.client.compute(delayed(block_step, pure=False)(b, c, None, off, False))
                for p, b, off in zip(previous, self.blocks, self.offsets)]

    def _with_retries(self, attempt_pass, previous, previous_centers, what):
        for attempt in range(self.retries + 1):
            try:
                return attempt_pass(previous)
            except Exception as exc:
                if not worker_lost(exc):
                    raise
                if attempt == self.retries:
                    raise RuntimeError(f"dask workers were lost during {what} and {self.retries} retries did not "
                                       f"recover ({type(exc).__name__}: {exc}); the fit was abandoned") from exc
                previous = self._recover(previous, previous_centers)

    # -- the timed cycle -------------------------------------------------------------------------------
    def run(self, max_iter, tol):
        if not self.blocks:
            raise RuntimeError("the dask backend has no data: close() released it; call prepare() again")
        centers, previous_centers = self.init, None
        history, previous, converged, relocated = [], [None] * len(self.blocks), False, 0
        first_pass = self.scale is None
        for n_iter in range(1, max_iter + 1):
            what = f"iteration {n_iter}"
            steps, total, candidates = self._with_retries(
                lambda prev: self._iteration(centers, prev, first_pass, what), previous, previous_centers, what)
            if total["bad"] is not None:
                row, count, kind = total["bad"]
                raise ValueError(f"X contains {kind} (first at row {row}; {count} bad rows in all)")
            if first_pass:
                self.scale = scale_of(*total["moments"])
                first_pass = False
            history.append(total["inertia"])
            updated, moved = new_centers(candidates[0], centers, candidates[1],
                                         total["sums"], total["counts"])
            relocated += moved
            shift = float(np.sum((updated - centers) ** 2))
            previous, previous_centers = steps, centers
            centers = updated.astype(self.init.dtype)
            if tol >= 0 and (total["changed"] == 0 or shift <= tol * self.scale):
                converged = True
                break
        del previous, steps
        final = self._with_retries(lambda _: self._gather(self._map(block_final, centers), "final pass"),
                                   None, None, "the final pass")
        self.centers = centers
        self.labels = np.concatenate([f[0] for f in final])
        self.inertia = float(sum(f[1] for f in final))
        self.n_iter, self.converged, self.history, self.relocated = n_iter, converged, history, relocated

    def result(self):
        # The cluster stays up for another run() (asv repeats); the harness calls close().
        return Fitted(centers=self.centers, labels=self.labels, inertia=self.inertia, n_iter=self.n_iter,
                      converged=self.converged, inertia_history=self.history,
                      info=dict(self.info, relocated=self.relocated))

    def close(self) -> None:
        """Release the blocks held on the workers and close a cluster or client started for this fit."""
        self.blocks, self.lazy, self.persisted, self.host = [], None, None, None
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()
