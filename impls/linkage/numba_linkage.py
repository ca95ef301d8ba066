"""The project's own linkage in numba: Prim's tree for single, the nearest-neighbour chain on
centroids for ward (both O(n*d) memory), and the chain on the condensed matrix for complete
and average. Kernels in ``numba_kernels``; scans split over the harness's thread count."""
from __future__ import annotations

import numpy as np

from .base import Linked, LinkageBackend

ALGORITHMS = {"single": "Prim's minimum spanning tree, distances on the fly",
              "ward": "nearest-neighbour chain on centroids and sizes",
              "complete": "nearest-neighbour chain on the condensed matrix",
              "average": "nearest-neighbour chain on the condensed matrix"}


class NumbaLinkage(LinkageBackend):
    name = "numba"
    requires = ("numba",)
    extra = "numba"
    # The kernels compute in float64 whatever the input: exact differences need no float32 variant.
    matrices = {"single": 0, "ward": 0, "complete": 1, "average": 1}

    def prepare(self, X, method):
        from . import numba_kernels

        self.kernels = numba_kernels
        self.method = method
        self.X = np.ascontiguousarray(X, dtype=np.float64)

    def warm_up(self):
        # Compiles (or loads from the cache) every kernel this method calls, on a tiny copy.
        self._linkage(self.X[:3], 1)
        self._linkage(self.X[:3], 2)

    def _linkage(self, X, parts):
        K, n = self.kernels, X.shape[0]
        if self.method == "single":
            merges = K.prim_tree(X, parts)
        elif self.method == "ward":
            merges = K.ward_chain(X, parts)
        else:
            D = K.condensed_distances(X, parts)
            merges = K.matrix_chain(D, n, self.method == "average", parts)
            del D
        return K.merges_to_linkage(*merges)

    def run(self):
        self.Z = self._linkage(self.X, max(1, int(self.threads)))

    def result(self):
        return Linked(Z=self.Z, info={"algorithm": ALGORITHMS[self.method],
                                      "memory": "n x n (condensed)" if self.matrices[self.method] else "O(n*d)",
                                      "parts": max(1, int(self.threads))})

    def close(self):
        self.X = self.Z = None
