"""scikit-learn's ``AgglomerativeClustering`` with the full tree and its distances, converted to Z."""
from __future__ import annotations

import numpy as np

from .base import Linked, LinkageBackend


class SklearnLinkage(LinkageBackend):
    name = "sklearn"
    requires = ("sklearn",)
    color, marker = "#2ca02c", "P"
    fallback_rank = 4
    # Without a connectivity graph scikit-learn hands ward, complete and average to SciPy's
    # linkage (pdist plus the chain's copy); single linkage is its own MST over the points.
    matrices = {"single": 0, "complete": 2, "average": 2, "ward": 2}
    # No contract deviation: its single-linkage MST and SciPy's give the same heights (checked by
    # the contract tests); Z's sizes are counted from children_ here, as scikit-learn omits them.

    def prepare(self, X, method):
        from sklearn.cluster import AgglomerativeClustering

        self.model = AgglomerativeClustering(n_clusters=1, linkage=method, metric="euclidean",
                                             compute_full_tree=True, compute_distances=True)
        self.X = np.ascontiguousarray(X)
        self.method = method

    def run(self):
        self.model.fit(self.X)

    def result(self):
        children = np.sort(np.asarray(self.model.children_, dtype=np.int64), axis=1)
        n = children.shape[0] + 1
        sizes = np.ones(2 * n - 1)
        for row, (a, b) in enumerate(children):
            sizes[n + row] = sizes[a] + sizes[b]
        Z = np.column_stack([children.astype(np.float64), np.asarray(self.model.distances_, np.float64), sizes[n:]])
        return Linked(Z=Z, info={"memory": "O(n*d)" if self.method == "single" else "n x n (condensed)",
                                 "algorithm": "own MST" if self.method == "single" else "scipy.cluster.hierarchy"})

    def close(self):
        self.model = self.X = None
