"""The convergence scale ``mean(var(X))`` far from the origin, in every place it is computed.

At an offset of 1e8 the one-pass ``E[x^2] - E[x]^2`` returns 1.0 (or 0) for a true mean
variance of 0.01; every form here must return 0.01.
"""
from __future__ import annotations

import numpy as np
import pytest

from kmbench.core.measures import blockwise_mean_variance, combine_moments, mean_variance, moments, scale_of

OFFSET = 1e8


@pytest.fixture(scope="module")
def far():
    rng = np.random.default_rng(0)
    X = OFFSET + rng.normal(scale=0.1, size=(6000, 3))
    return X, float(np.mean(np.var(X, axis=0)))


def one_pass(X) -> float:
    wide = np.asarray(X, dtype=np.float64)
    mean = wide.mean(axis=0)
    return float(np.mean(np.maximum((wide * wide).mean(axis=0) - mean * mean, 0.0)))


def test_the_one_pass_form_fails_here(far):
    X, truth = far
    assert truth == pytest.approx(0.01, rel=0.05)
    assert one_pass(X) != pytest.approx(truth, rel=0.01)  # so the tests below can tell the forms apart


def test_host_two_pass(far):
    X, truth = far
    assert mean_variance(X) == pytest.approx(truth, rel=1e-6)


def test_moments_merged_over_uneven_blocks(far):
    X, truth = far
    edges = [0, 1, 1000, 1001, 4000, 6000]
    parts = [moments(X[a:b]) for a, b in zip(edges[:-1], edges[1:])]
    assert scale_of(*combine_moments(parts)) == pytest.approx(truth, rel=1e-6)
    assert blockwise_mean_variance(parts) == pytest.approx(truth, rel=1e-6)


def test_dask_ml_scale(far):
    pytest.importorskip("dask")
    import dask.array as da

    from impls.dask_ml_lloyd import _mean_variance

    X, truth = far
    value = float(_mean_variance(da.from_array(X, chunks=(1000, 3))).compute(scheduler="sync"))
    assert value == pytest.approx(truth, rel=1e-6)


def test_dask_scale_from_its_block_summaries(far):
    pytest.importorskip("dask")
    from impls.dask_lloyd import block_step, combine

    X, truth = far
    centers = X[:4].copy()
    steps = [block_step(X[a:a + 1500], centers, None, a, True) for a in range(0, 6000, 1500)]
    total = combine(*[s["summary"] for s in steps])
    assert scale_of(*total["moments"]) == pytest.approx(truth, rel=1e-6)
