"""The interface every linkage backend implements.

The family-neutral facts live on ``kmbench.core.backend.Backend`` (name, requires, devices,
dtypes, deviations, parameters, color, marker, fallback_rank, compiles); this base adds what a
linkage backend declares (the methods it serves, the distance matrices it holds) and its cycle,
which only the harness times (``kmbench.core.engine``):

    prepare(X, method)  untimed: casts, copies, host-to-device transfers
    warm_up()           untimed: JIT compilation, first-call costs
    run()               timed: the whole linkage; returns after device work is done
    result()            untimed: SciPy's Z on the host, as a :class:`Linked`
    close()             untimed: release what prepare acquired

``skip()`` refuses a method the backend does not serve, a dtype, a device, and work whose
distance matrices would exceed the memory budget, naming the bytes, before anything is allocated.
"""
from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field

import numpy as np

from kmbench.core.backend import Backend, Interval

METHODS = ("single", "complete", "average", "ward")
#: fraction of the memory available when a fit starts that its distance matrices may take
BUDGET_FRACTION = 0.5


@dataclass
class Linked:
    """What a backend hands back; the harness adds timings and provenance.

    Attributes
    ----------
    Z : ndarray of shape (n_samples - 1, 4), float64, SciPy's linkage matrix
    info : dict, backend-specific facts worth recording (memory model, algorithm, ...)
    """

    Z: np.ndarray
    info: dict = field(default_factory=dict)


def condensed_bytes(n: int) -> int:
    """Bytes of one float64 condensed distance matrix of n points."""
    return 8 * (n * (n - 1) // 2)


def memory_budget(options: dict | None = None) -> int:
    """Bytes one fit may spend on distance matrices: ``options["max_bytes"]``, else the
    ``KMBENCH_MAX_BYTES`` environment variable, else half of the memory available now."""
    options = options or {}
    if options.get("max_bytes") is not None:
        return int(options["max_bytes"])
    value = os.environ.get("KMBENCH_MAX_BYTES")
    if value is not None:
        try:
            budget = int(float(value))
        except ValueError:
            budget = 0
        if budget <= 0:
            raise ValueError(f"KMBENCH_MAX_BYTES={value!r} should be a positive number of bytes")
        return budget
    import psutil

    return int(psutil.virtual_memory().available * BUDGET_FRACTION)


class LinkageBackend(Backend):
    """Base of the linkage backends: the core base's facts plus the linkage cycle."""

    #: the methods this backend serves; others are refused by skip() with ``method_reason``
    methods: tuple = METHODS
    method_reason: str = ""
    #: per method, how many float64 condensed n x n matrices the backend holds at its peak
    #: (absent or 0: O(n*d) memory); skip() refuses work whose matrices exceed the budget
    matrices: dict = {}
    parameters = {"max_bytes": [Interval(numbers.Real, 0, None, closed="neither"), None]}

    def accepts_device(self) -> bool:
        return self.device in self.devices

    def bytes_needed(self, n: int, d: int, method: str) -> int:
        """Bytes of the distance matrices this backend would hold for the case (0 when O(n*d))."""
        return self.matrices.get(method, 0) * condensed_bytes(n)

    def skip(self, n: int, d: int, dtype: str, method: str) -> str | None:
        """Why this backend will not run this case, or None."""
        if method not in self.methods:
            return f"{self.name} does not serve method={method!r}" + (f": {self.method_reason}" if self.method_reason else "")
        if dtype not in self.dtypes:
            return f"{self.name} does not support dtype={dtype}; supported: {', '.join(self.dtypes)}"
        if not self.accepts_device():
            return f"{self.name} does not run on device={self.device!r}; devices: {', '.join(self.devices)}"
        needed = self.bytes_needed(n, d, method)
        if needed:
            budget = memory_budget(self.options)
            if needed > budget:
                return (f"{method} linkage of n={n} points holds {needed:,} bytes of distances, over the "
                        f"memory budget of {budget:,} bytes (max_bytes= or KMBENCH_MAX_BYTES to change it)")
        return None

    def prepare(self, X, method: str) -> None:
        raise NotImplementedError

    def run(self) -> None:
        raise NotImplementedError

    def result(self) -> Linked:
        raise NotImplementedError


def ordered(Z) -> np.ndarray:
    """Z as float64 with each row's two cluster ids ascending, as SciPy writes them."""
    Z = np.array(Z, dtype=np.float64)
    Z[:, :2] = np.sort(Z[:, :2], axis=1)
    return Z


def tree_to_linkage(a, b, heights) -> np.ndarray:
    """SciPy's Z (n - 1, 4) from merges given as any point of each side and a height (a spanning
    tree's edges, or a chain's merges), as SciPy does it: sorted by height (stably, so a cluster
    is made before it merges again) and named by a union-find. Points are 0..n-1, the cluster
    made at row r is n + r, and Z[r, 0] < Z[r, 1]."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    heights = np.asarray(heights, dtype=np.float64)
    n = len(heights) + 1
    parent = list(range(2 * n - 1))
    size = [1] * (2 * n - 1)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    Z = np.empty((n - 1, 4))
    for row, e in enumerate(np.argsort(heights, kind="stable").tolist()):
        x, y = sorted((root(int(a[e])), root(int(b[e]))))
        Z[row] = (x, y, heights[e], size[x] + size[y])
        parent[x] = parent[y] = n + row
        size[n + row] = size[x] + size[y]
    return Z
