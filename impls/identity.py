"""Lloyd through ``||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2``: one GEMM per row chunk."""
from __future__ import annotations

import numbers

import numpy as np

from .base import Interval
from .lloyd import HostLloyd

#: bytes of the (chunk, k) distance block; small enough to stay in the last-level cache
BLOCK_BYTES = 8 << 20


class IdentityKMeans(HostLloyd):
    name = "identity"
    color, marker = "#1f77b4", "o"
    fallback_rank = 5
    parameters = {"chunk": [None, Interval(numbers.Integral, 1, None)]}
    dtypes = ("float64",)

    def prepare(self, X, centers):
        super().prepare(X, centers)
        self.use_data(self.X, centers.shape[0])

    def use_data(self, X: np.ndarray, k: int) -> None:
        """Point the kernel at X (n, d), contiguous in the working dtype, without whole-data statistics:
        what ``assign`` needs, and all a per-block caller (the dask backend) should compute."""
        self.X = X
        self.row_norms = np.einsum("ij,ij->i", X, X)
        self.chunk = int(self.options.get("chunk", max(256, BLOCK_BYTES // (k * X.itemsize))))

    def assign(self, centers):
        X = self.X
        n = X.shape[0]
        labels = np.empty(n, dtype=np.int64)
        dist = np.empty(n, dtype=X.dtype)
        half_norms = 0.5 * np.einsum("ij,ij->i", centers, centers)
        for start in range(0, n, self.chunk):
            stop = min(start + self.chunk, n)
            # ||x||^2 is constant per row, so argmin needs only ||c||^2/2 - x.c.
            block = X[start:stop] @ centers.T
            np.subtract(half_norms, block, out=block)
            idx = block.argmin(axis=1)
            labels[start:stop] = idx
            best = block[np.arange(stop - start), idx]
            dist[start:stop] = np.maximum(self.row_norms[start:stop] + 2 * best, 0)
        return labels, dist
