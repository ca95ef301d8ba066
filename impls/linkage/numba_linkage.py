"""The project's own linkage in numba: Prim's tree for single, the nearest-neighbour chain on
centroids for ward (both O(n*d) memory), and the chain on the condensed matrix for complete
and average. Kernels in ``numba_kernels``.

Every step of these algorithms is one scan over the active points, so threads fork and join
n to 3n times a fit. Threads can share a long scan (the kernels split scans of 32,768
coordinates or more); but on a loaded machine a thread that is not scheduled stalls every join
(measured on 2 shared cores, load average 5: 10x slower than one thread). So with ``parallel="auto"`` (the default) ``warm_up`` times
scans of this case's size with one thread and with the harness's count, in alternating pairs,
and the fit uses the threads only when every pair shows them at least PROBE_GAIN faster: a
load that comes and goes shows as pairs that disagree, and then one thread is the safe side
(1.8x slower at worst, against 10x). ``parallel=True``/``False`` decides without a probe; the
choice is in ``result.info["parts"]``.
"""
from __future__ import annotations

import time

import numpy as np

from .base import Linked, LinkageBackend

#: the probe scans at most this many points, this many coordinates in all per timing
PROBE_ROWS = 20_000
PROBE_COORDS = 4_000_000
PROBE_PAIRS = 5
PROBE_GAIN = 1.3

ALGORITHMS = {"single": "Prim's minimum spanning tree, distances on the fly",
              "ward": "nearest-neighbour chain on centroids and sizes",
              "complete": "nearest-neighbour chain on the condensed matrix",
              "average": "nearest-neighbour chain on the condensed matrix"}


class NumbaLinkage(LinkageBackend):
    name = "numba"
    requires = ("numba",)
    extra = "numba"
    color, marker = "#d62728", "D"
    fallback_rank = 1
    compiles = True
    # The kernels compute in float64 whatever the input: exact differences need no float32 variant.
    matrices = {"single": 0, "ward": 0, "complete": 1, "average": 1}
    parameters = {**LinkageBackend.parameters, "parallel": [{"auto"}, bool]}

    def prepare(self, X, method):
        from . import numba_kernels

        self.kernels = numba_kernels
        self.method = method
        self.X = np.ascontiguousarray(X, dtype=np.float64)

    def warm_up(self):
        # Compiles (or loads from the cache) every kernel this method calls, on a tiny copy.
        self._linkage(self.X[:3], 1)
        self._linkage(self.X[:3], 2)
        self.parts, self.probe = self._choose_parts()

    def _choose_parts(self):
        """How many threads share each scan: see the module's docstring."""
        from .numba_kernels import PARALLEL_MIN as K_PARALLEL_MIN

        threads = max(1, int(self.threads))
        parallel = self.options.get("parallel", "auto")
        if isinstance(parallel, bool):
            return (threads if parallel else 1), None
        if threads == 1 or self.X.size < K_PARALLEL_MIN:
            return 1, None  # the kernels would scan on one thread anyway
        K = self.kernels
        sample = np.ascontiguousarray(self.X[:min(len(self.X), PROBE_ROWS)])
        reps = max(4, PROBE_COORDS // sample.size)
        K.probe_scans(sample[:8], 1, 1)
        K.probe_scans(sample[:8], threads, 1)
        gains = []
        for _ in range(PROBE_PAIRS):
            pair = {}
            for parts in (1, threads):
                t0 = time.perf_counter()
                K.probe_scans(sample, parts, reps)
                pair[parts] = time.perf_counter() - t0
            gains.append(pair[1] / pair[threads])
            if gains[-1] < PROBE_GAIN:
                break  # one pair against the threads settles it
        chosen = threads if min(gains) >= PROBE_GAIN else 1
        return chosen, {"gain of threads per pair": [round(g, 2) for g in gains]}

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
        self.Z = self._linkage(self.X, self.parts)

    def result(self):
        from kmbench.core.threads import threading_layer

        info = {"algorithm": ALGORITHMS[self.method],
                "memory": "n x n (condensed)" if self.matrices[self.method] else "O(n*d)", "parts": self.parts,
                "threading_layer": threading_layer()}
        if self.probe:
            info["parts_probe"] = self.probe
        return Linked(Z=self.Z, info=info)

    def close(self):
        self.X = self.Z = None
