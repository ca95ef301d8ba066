"""Textbook Lloyd in pure-Python loops: the baseline that vectorisation is measured against."""
from __future__ import annotations

import numbers

import numpy as np

from .base import Interval, limit_option
from .lloyd import HostLloyd

#: n*k*d above which one iteration would take seconds to minutes in CPython
DEFAULT_WORK_LIMIT = 1e7


def _short(x: float) -> str:
    """4.1e9, not 4.1e+09."""
    mantissa, _, exponent = f"{x:.2g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


class LoopKMeans(HostLloyd):
    name = "loop"
    color, marker = "#7f7f7f", "x"
    fallback_rank = 8
    parameters = {"work_limit": [Interval(numbers.Real, 0, None, closed="neither"), str]}

    def skip(self, n, k, d, dtype):
        limit = limit_option(self.options, "work_limit", "KMBENCH_LOOP_LIMIT", DEFAULT_WORK_LIMIT)
        if n * k * d > limit:
            return (f"n*k*d too large for the pure-Python loop: {_short(n * k * d)} > {_short(limit)} "
                    "(set work_limit= or KMBENCH_LOOP_LIMIT to allow it)")
        return super().skip(n, k, d, dtype)

    def prepare(self, X, centers):
        super().prepare(X, centers)
        # Python floats are doubles, so float32 data is computed in float64 and rounded back.
        self.rows = self.X.tolist()

    def step(self, centers):
        C = centers.tolist()
        k, d = len(C), len(C[0])
        labels, dists = [], []
        sums = [[0.0] * d for _ in range(k)]
        counts = [0] * k
        for x in self.rows:
            best, best_j = float("inf"), 0
            for j, c in enumerate(C):
                s = 0.0
                for a, b in zip(x, c):
                    s += (a - b) * (a - b)
                if s < best:
                    best, best_j = s, j
            labels.append(best_j)
            dists.append(best)
            row = sums[best_j]
            for t, a in enumerate(x):
                row[t] += a
            counts[best_j] += 1
        return (np.array(labels, dtype=np.int64), np.array(dists),
                np.array(sums), np.array(counts, dtype=np.int64))

    def assign(self, centers):
        labels, dists, _, _ = self.step(centers)
        return labels, dists
