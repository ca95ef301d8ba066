"""SciPy's ``linkage``: the function the contract is written against, called as its users call it."""
from __future__ import annotations

import numpy as np

from .base import Linked, LinkageBackend, ordered


class ScipyLinkage(LinkageBackend):
    name = "scipy"
    requires = ("scipy",)
    color, marker = "#1f77b4", "o"
    fallback_rank = 3
    # pdist's condensed matrix; the nearest-neighbour chain (all but single) works on a copy.
    matrices = {"single": 1, "complete": 2, "average": 2, "ward": 2}

    def prepare(self, X, method):
        from scipy.cluster.hierarchy import linkage

        self.linkage = linkage
        self.X = np.ascontiguousarray(X)
        self.method = method

    def run(self):
        self.Z = self.linkage(self.X, method=self.method, metric="euclidean")

    def result(self):
        return Linked(Z=ordered(self.Z), info={"memory": "n x n (condensed)",
                                               "algorithm": "MST" if self.method == "single" else "NN-chain"})

    def close(self):
        self.X = self.Z = None
