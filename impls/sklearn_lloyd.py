"""scikit-learn's ``KMeans(algorithm="lloyd")`` started from the given centres: the reference users know."""
from __future__ import annotations

import warnings

import numpy as np

from .base import Backend, Fitted, exact_inertia


class SklearnKMeans(Backend):
    name = "sklearn"
    color, marker = "#2ca02c", "P"
    fallback_rank = 3
    parameters = {}
    requires = ("sklearn",)
    deviations = {
        "degenerate-empty": "a cluster left empty after re-seeding (or when every point sits on its "
                            "centre) moves to the largest cluster's centre instead of keeping its own",
    }
    # scikit-learn always stops once labels stop changing, even when asked for fixed work.
    stops_early = True

    def prepare(self, X, centers):
        # Imported here, not in run(): a first import would be timed as iterations.
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning

        self.KMeans, self.ConvergenceWarning = KMeans, ConvergenceWarning
        self.X = np.ascontiguousarray(X, dtype=centers.dtype)
        self.init = np.array(centers, copy=True)

    def run(self, max_iter, tol):
        KMeans, ConvergenceWarning = self.KMeans, self.ConvergenceWarning
        # scikit-learn scales tol by mean(var(X)) itself, as the contract does; it rejects tol < 0.
        self.model = KMeans(n_clusters=self.init.shape[0], init=self.init, n_init=1, max_iter=max_iter,
                            tol=max(tol, 0.0), algorithm="lloyd", copy_x=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(self.X)
        self.max_iter = max_iter

    def result(self):
        m = self.model
        centers = m.cluster_centers_.astype(self.X.dtype, copy=False)
        labels = m.labels_.astype(np.int32)
        # scikit-learn sums float32 inertia in float32; the contract wants float64 for every dtype.
        return Fitted(centers=centers, labels=labels, inertia=exact_inertia(self.X, centers, labels),
                      n_iter=int(m.n_iter_), converged=bool(m.n_iter_ < self.max_iter),
                      inertia_history=[], info={"inertia_history": "not exposed by scikit-learn"})
