"""fastcluster (Müllner): ``linkage_vector`` where it applies (single and ward, O(n*d) memory),
``linkage`` on the condensed matrix otherwise."""
from __future__ import annotations

import numpy as np

from .base import Linked, LinkageBackend, condensed_bytes, ordered

#: the methods fastcluster.linkage_vector serves from the points themselves (of the contract's four)
VECTOR_METHODS = ("single", "ward")


class FastclusterLinkage(LinkageBackend):
    """Options
    -------
    vector : bool, default True
        Use ``linkage_vector`` for single and ward; False forces ``linkage`` (condensed matrix).
    """

    name = "fastcluster"
    requires = ("fastcluster",)
    extra = "linkage"
    color, marker = "#9467bd", "s"
    fallback_rank = 2
    parameters = {**LinkageBackend.parameters, "vector": [bool]}

    def __init__(self, *, threads: int = 1, device=None, **options):
        super().__init__(threads=threads, device=device, **options)
        self.vector = options.get("vector", True)

    def bytes_needed(self, n, d, method):
        # linkage() on points builds one condensed matrix; linkage_vector none
        return 0 if self.vector and method in VECTOR_METHODS else condensed_bytes(n)

    def prepare(self, X, method):
        import fastcluster

        self.method = method
        self.use_vector = self.vector and method in VECTOR_METHODS
        self.call = fastcluster.linkage_vector if self.use_vector else fastcluster.linkage
        # fastcluster computes in float64 whatever it is given.
        self.X = np.ascontiguousarray(X, dtype=np.float64)

    def run(self):
        self.Z = self.call(self.X, method=self.method, metric="euclidean")

    def result(self):
        import fastcluster

        return Linked(Z=ordered(self.Z), info={
            "function": "linkage_vector" if self.use_vector else "linkage",
            "memory": "O(n*d)" if self.use_vector else "n x n (condensed)",
            "fastcluster": fastcluster.__version__})

    def close(self):
        self.X = self.Z = None
