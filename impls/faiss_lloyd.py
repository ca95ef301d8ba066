"""``faiss.Kmeans`` as its users call it, started from the given centres: the peer to beat.

faiss trains with ``train(x, init_centroids=...)`` and then labels points with a
search of its flat L2 index against the final centroids. Subsampling is switched
off (``max_points_per_centroid`` huge) so it sees every point, as the other
backends do; everything else is faiss's own, including the differences declared
in ``deviations``.
"""
from __future__ import annotations

import numpy as np

from .base import Backend, Fitted, exact_inertia

#: faiss subsamples to k * max_points_per_centroid points; this turns that off for any n we can hold
NO_SUBSAMPLING = 1 << 30


class FaissKMeans(Backend):
    name = "faiss"
    color, marker = "#9467bd", "*"
    parameters = {}
    requires = ("faiss",)
    extra = "faiss"
    dtypes = ("float32",)
    deviations = {
        "empty-clusters": "faiss re-seeds an empty cluster by splitting a large one (chosen at random, "
                          "in proportion to its size) into two slightly perturbed copies of its centre, "
                          "not at the point farthest from its centre",
        "degenerate-empty": "there is no 'keep the old centre' case: every empty cluster is filled by "
                            "splitting another",
        "convergence": "faiss does not apply the contract's rules (labels repeat, or squared centre "
                       "shift <= tol * mean(var(X))). At tol >= 0 it stops, as a faiss user gets by "
                       "default, when an iteration does not lower its objective by more than "
                       "early_stop_threshold=0 (relative), which is one iteration after the labels "
                       "repeat, and never because the centres barely moved; tol < 0 runs exactly "
                       "max_iter iterations",
    }

    def prepare(self, X, centers):
        # faiss computes in float32 only; train() would copy on every call, so copy once here.
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        self.init = np.ascontiguousarray(centers, dtype=np.float32)

    def run(self, max_iter, tol):
        import faiss

        n_threads = faiss.omp_get_max_threads()
        if n_threads != self.threads:
            # The harness caps OpenMP through threadpoolctl, which finds faiss's bundled libgomp;
            # should that ever fail, set it here so faiss still runs at the recorded count.
            faiss.omp_set_num_threads(self.threads)
        try:
            k, d = self.init.shape
            self.model = faiss.Kmeans(
                d, k, niter=max_iter, max_points_per_centroid=NO_SUBSAMPLING,
                # Only silences faiss's "please provide at least 39*k points" warning.
                min_points_per_centroid=1,
                # faiss's default (0.0) stops once the objective stops falling; fixed work needs none.
                early_stop_threshold=0.0 if tol >= 0 else -np.inf,
            )
            self.model.train(self.X, init_centroids=self.init)
            self.omp_threads = faiss.omp_get_max_threads()
        finally:
            if n_threads != self.threads:
                faiss.omp_set_num_threads(n_threads)
        self.max_iter, self.tol = max_iter, tol

    def result(self):
        m = self.model
        centers = np.asarray(m.centroids, dtype=np.float32).reshape(self.init.shape)
        # Kmeans.assign reloads the index with the final centroids and searches it (k=1).
        _, nearest = m.assign(self.X)
        labels = nearest.astype(np.int32)
        n_iter = len(m.obj)
        # faiss stops early only through its objective rule; at max_iter that rule may also have held.
        converged = self.tol >= 0 and (n_iter < self.max_iter or (n_iter >= 2 and m.obj[-1] >= m.obj[-2]))
        stats = m.iteration_stats
        return Fitted(centers=centers, labels=labels, inertia=exact_inertia(self.X, centers, labels),
                      n_iter=n_iter, converged=bool(converged),
                      # faiss's obj is the summed distance of each iteration's assignment search.
                      inertia_history=[float(v) for v in m.obj],
                      info={"relocated": int(sum(s["nsplit"] for s in stats)),
                            "omp_threads": self.omp_threads})
