"""``dask_ml.cluster.KMeans`` started from the given centres: the scale-out K-Means dask users reach for.

It runs on the ``scheduler=`` address or the caller's active ``distributed.Client``
when there is one, else on dask's threaded scheduler with the harness's thread
count. X becomes a dask array chunked by rows and, on a cluster, is persisted on the
workers in ``prepare`` so that the timed fit does not ship it.
"""
from __future__ import annotations

import numbers
import weakref

import numpy as np

from .base import Backend, Fitted, Interval, exact_inertia


class DaskMLKMeans(Backend):
    name = "dask-ml"
    color, marker = "#000000", ">"
    compiles = True
    distributed = True
    parameters = {"scheduler": [None, object], "chunk_rows": [None, Interval(numbers.Integral, 1, None)]}
    requires = ("dask_ml", "dask", "distributed")
    extra = "dask"
    native_inputs = ("dask",)
    deviations = {
        "empty-clusters": "dask-ml divides each cluster's sum by max(count, 1), so an empty cluster's "
                          "centre moves to the origin (all zeros) instead of to the farthest point",
        "degenerate-empty": "an empty cluster is never left in place: its centre becomes the origin",
        "convergence": "dask-ml stops when the squared centre shift is < its tol (kmbench passes just "
                       "above tol * mean(var(X)), so that rule matches) but has no 'labels repeat' rule "
                       "(at tol=0 it stops one iteration after the labels repeat, when nothing moves), "
                       "and when it stops it returns the centres from before that last update; "
                       "tol < 0 runs exactly max_iter iterations",
        "final-labels": "labels are re-assigned against the final centres only when the last squared "
                        "shift is > 1e-7; otherwise they are the last iteration's (differences at near-ties)",
    }

    def prepare(self, X, centers):
        import kmbench.core.dask_input as dask_input

        self.init = np.array(centers, copy=True)
        dtype = self.init.dtype
        self.client, self.where, self.owned = None, f"threaded scheduler, {self.threads} threads", []
        self._finalizer = weakref.finalize(self, dask_input.close_all, self.owned)
        scheduler = self.options.get("scheduler")
        if scheduler is not None or _active_client() is not None:
            self.client, self.where, owned = dask_input.connect(scheduler)
            self.owned.extend(owned)
            self.threads = max(1, dask_input.cluster_resources(self.client)["threads"])
        try:
            import dask.array as da

            if hasattr(X, "__dask_graph__"):
                Xd = dask_input.by_rows(X, self.options.get("chunk_rows"))
            else:
                rows = self.options.get("chunk_rows") or dask_input.default_chunk_rows(
                    X.shape[0], X.shape[1], dtype.itemsize, self.threads)
                Xd = da.from_array(np.ascontiguousarray(X, dtype=dtype), chunks=(rows, X.shape[1]))
            if Xd.dtype != dtype:
                Xd = Xd.astype(dtype)
            self.X = self.client.persist(Xd) if self.client is not None else Xd
            self.scale = float(self._compute(_mean_variance(self.X)))
        except BaseException:
            self.close()
            raise

    def _compute(self, value):
        import dask

        if self.client is not None:
            return self.client.gather(self.client.compute(value))
        with dask.config.set(scheduler="threads", num_workers=self.threads):
            return dask.compute(value)[0]

    def _fit(self, X, max_iter, tol):
        import dask
        from dask_ml.cluster import KMeans

        model = KMeans(n_clusters=self.init.shape[0], init=self.init, oversampling_factor=1,
                       max_iter=max_iter, tol=tol)
        if self.client is not None:
            with self.client.as_current(), dask.config.set(scheduler=self.client.get):
                return model.fit(X)
        with dask.config.set(scheduler="threads", num_workers=self.threads):
            return model.fit(X)

    def warm_up(self):
        # dask-ml sums clusters in a Numba function, compiled on first call in every worker process;
        # one iteration on a few rows of every block pays for that here rather than in the timed fit.
        import dask.array as da

        k = self.init.shape[0]
        head = [self.X.blocks[i][:k] for i in range(self.X.numblocks[0]) if self.X.chunks[0][i] >= k]
        if head:
            self._fit(da.concatenate(head) if len(head) > 1 else head[0], 1, -1.0)

    def run(self, max_iter, tol):
        # dask-ml stops at shift < tol, absolute; the contract at shift <= tol * mean(var(X)).
        threshold = np.nextafter(tol * self.scale, np.inf) if tol >= 0 else -1.0
        self.model = self._fit(self.X, max_iter, float(threshold))
        self.max_iter, self.tol = max_iter, tol

    def result(self):
        from dask import delayed

        m = self.model
        centers = np.asarray(m.cluster_centers_, dtype=self.init.dtype)
        labels_d = m.labels_.rechunk((self.X.chunks[0],))
        wide = centers.astype(np.float64)
        # The harness's inertia (float64, direct differences), block by block where the data lives.
        parts = [delayed(exact_inertia)(xb, wide, lb)
                 for xb, lb in zip(self.X.to_delayed().ravel(), labels_d.to_delayed().ravel())]
        labels, inertia = self._compute((labels_d, delayed(sum)(parts)))
        return Fitted(centers=centers, labels=np.asarray(labels, dtype=np.int32), inertia=float(inertia),
                      n_iter=int(m.n_iter_), converged=self.tol >= 0 and int(m.n_iter_) < self.max_iter,
                      inertia_history=[], info={"where": self.where, "chunk_rows": int(self.X.chunks[0][0]),
                                                "inertia_history": "not exposed by dask-ml"})

    def close(self) -> None:
        self.X = None
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()


def _active_client():
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def _mean_variance(X):
    """``mean(var(X, axis=0))`` of a dask array, lazily: centred moments per row block, merged exactly."""
    from dask import delayed

    from kmbench.core.measures import blockwise_mean_variance, moments

    return delayed(blockwise_mean_variance)([delayed(moments)(b) for b in X.to_delayed().ravel()])
