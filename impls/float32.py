"""The GEMM identity in single precision: half the memory traffic, twice the SIMD lanes."""
from __future__ import annotations

from .identity import IdentityKMeans


class Float32KMeans(IdentityKMeans):
    """Distances in float32; cluster sums and inertia accumulate in float64 (see ``impls.lloyd``)."""

    name = "float32"
    color, marker = "#17becf", "s"
    fallback_rank = 4
    dtypes = ("float32",)
