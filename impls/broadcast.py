"""Lloyd with the whole (n, k, d) difference tensor: the first vectorisation people write."""
from __future__ import annotations

import numbers
import os

import numpy as np

from .base import Interval, limit_option
from .lloyd import HostLloyd


def default_budget() -> int:
    """A quarter of physical memory: the temporary must fit beside X and everything else."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 8 << 30
    return int(total // 4)


class BroadcastKMeans(HostLloyd):
    name = "broadcast"
    color, marker = "#bcbd22", "+"
    fallback_rank = 7
    parameters = {"memory_budget": [Interval(numbers.Real, 0, None, closed="neither"), str]}

    def budget(self) -> int:
        return int(limit_option(self.options, "memory_budget", "KMBENCH_MEMORY_BUDGET", default_budget()))

    def skip(self, n, k, d, dtype):
        itemsize = np.dtype(dtype).itemsize
        need = n * k * d * itemsize + n * k * itemsize
        if need > self.budget():
            return (f"the (n, k, d) temporary needs {need:,} bytes ({need / 2**30:.1f} GiB) "
                    f"> memory budget {self.budget():,} bytes (set memory_budget= or KMBENCH_MEMORY_BUDGET)")
        return super().skip(n, k, d, dtype)

    def assign(self, centers):
        X = self.X
        diff = X[:, None, :] - centers[None, :, :]
        np.square(diff, out=diff)
        D = diff.sum(axis=2)
        labels = D.argmin(axis=1)
        return labels, D[np.arange(X.shape[0]), labels]
