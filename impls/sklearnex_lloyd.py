"""scikit-learn-intelex's ``sklearnex.cluster.KMeans`` (oneDAL) as its users call it, from the given centres.

The estimator is scikit-learn's API on oneDAL's Lloyd kernels: ``init=array``,
``n_init=1``, ``tol`` and ``max_iter`` mean what they mean to scikit-learn, and oneDAL
computes in the data's dtype (float32 or float64). Where oneDAL cannot serve a call,
sklearnex silently falls back to scikit-learn; ``result().info["accelerated"]`` records
whether oneDAL ran (the fitted model then holds its oneDAL estimator).
"""
from __future__ import annotations

import warnings

import numpy as np

from .base import Backend, Fitted, exact_inertia


class SklearnexKMeans(Backend):
    name = "sklearnex"
    requires = ("sklearnex",)
    extra = "sklearnex"
    # Found by the oracle check (tests/test_sklearnex.py): where clusters empty out with points
    # left to take, oneDAL re-seeds them as the contract does; only the degenerate case differs.
    deviations = {
        "degenerate-empty": "a cluster left empty when every point sits on its centre does not keep its "
                            "own centre: oneDAL re-seeds it at a data point all the same (distance 0)",
    }
    # Like scikit-learn it stops once an iteration moves no centre (labels repeat), even at tol=0.
    stops_early = True
    # a darker shade of scikit-learn's green: the same API on another engine
    color, marker = "#1a6b1a", "p"

    def prepare(self, X, centers):
        # Imported here, not in run(): the first import (oneDAL, TBB) takes a second or more.
        from sklearn.exceptions import ConvergenceWarning
        from sklearnex.cluster import KMeans

        self.KMeans, self.ConvergenceWarning = KMeans, ConvergenceWarning
        self.X = np.ascontiguousarray(X, dtype=centers.dtype)
        self.init = np.array(centers, copy=True)

    def run(self, max_iter, tol):
        # sklearnex scales tol by mean(var(X)) itself, as the contract does; it rejects tol < 0.
        self.model = self.KMeans(n_clusters=self.init.shape[0], init=self.init, n_init=1, max_iter=max_iter,
                                 tol=max(tol, 0.0), algorithm="lloyd", copy_x=True,
                                 # oneDAL runs on TBB, which the harness's threadpoolctl limits do
                                 # not reach; sklearnex's n_jobs does.
                                 n_jobs=self.threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self.ConvergenceWarning)
            self.model.fit(self.X)
        self.max_iter = max_iter

    def result(self):
        m = self.model
        centers = np.asarray(m.cluster_centers_).astype(self.X.dtype, copy=False)
        labels = np.asarray(m.labels_).astype(np.int32)
        return Fitted(centers=centers, labels=labels, inertia=exact_inertia(self.X, centers, labels),
                      n_iter=int(m.n_iter_), converged=bool(m.n_iter_ < self.max_iter),
                      inertia_history=[],
                      info={"inertia_history": "not exposed by scikit-learn-intelex", "n_jobs": self.threads,
                            "accelerated": "_onedal_estimator" in vars(m)})
