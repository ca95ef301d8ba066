"""The one seeded initialiser: every backend starts from the centres it returns."""
from __future__ import annotations

import math

import numpy as np
import pytest

import kmbench.check.data as data
from kmbench.core.seeding import initial_centers, kmeans_plusplus


def rows_of(X, centers) -> np.ndarray:
    """Index in X of each centre (-1 where a centre is not a row of X)."""
    match = (centers[:, None, :] == X[None, :, :]).all(axis=2)
    return np.where(match.any(axis=1), match.argmax(axis=1), -1)


@pytest.mark.parametrize("seed", [0, 7, 12345])
def test_random_init_is_rng_choice_rows(seed):
    X = data.uniform(200, 3, seed=1)
    got = initial_centers(X, 9, "random", seed)
    idx = np.random.default_rng(seed).choice(200, 9, replace=False)
    np.testing.assert_array_equal(got, X[idx])
    assert got.dtype == np.float64 and got.shape == (9, 3)


def test_random_init_with_k_equal_n_takes_every_row_once():
    X = data.uniform(30, 2, seed=2)
    got = initial_centers(X, 30, "random", 0)
    assert sorted(rows_of(X, got)) == list(range(30))


def test_random_init_from_float32_is_exact_float64():
    X = data.uniform(50, 4, seed=3, dtype="float32")
    got = initial_centers(X, 5, "random", 4)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got.astype(np.float32), X[np.random.default_rng(4).choice(50, 5, replace=False)])


@pytest.mark.parametrize("k", [1, 2, 7, 20])
def test_kmeans_plusplus_reproducible_and_made_of_distinct_rows(k):
    X = data.uniform(300, 3, seed=5)
    a = initial_centers(X, k, "k-means++", 42)
    b = initial_centers(X, k, "k-means++", 42)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (k, 3) and a.dtype == np.float64
    idx = rows_of(X, a)
    assert (idx >= 0).all(), "every centre must be a data row"
    assert len(set(idx.tolist())) == k, "distinct data must give distinct centres"


def test_kmeans_plusplus_depends_on_seed():
    X = data.uniform(300, 3, seed=5)
    picks = {tuple(rows_of(X, initial_centers(X, 6, "k-means++", s))) for s in range(5)}
    assert len(picks) > 1


def test_kmeans_plusplus_k_equal_n_picks_every_row():
    X = data.uniform(25, 2, seed=6)
    got = initial_centers(X, 25, "k-means++", 0)
    assert sorted(rows_of(X, got)) == list(range(25))


def test_kmeans_plusplus_covers_well_separated_blobs():
    # One point per far-apart blob: what makes k-means++ worth having; a uniform pick of 8
    # rows out of 8 equal blobs almost never manages it (8!/8^8 = 0.24%).
    X, truth = data.blobs(800, 2, 8, seed=9, spread=0.01, box=100.0)
    for seed in range(5):
        idx = rows_of(X, initial_centers(X, 8, "k-means++", seed))
        assert sorted(truth[idx]) == list(range(8)), f"seed {seed} missed a blob"


class CountingRng:
    """A Generator stand-in that records how many candidates each k-means++ step draws."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.draws = []

    def integers(self, *args, **kwargs):
        return self.rng.integers(*args, **kwargs)

    def random(self, size=None):
        self.draws.append(size)
        return self.rng.random(size)


@pytest.mark.parametrize("k", [1, 2, 3, 8, 100])
def test_kmeans_plusplus_draws_2_plus_int_ln_k_candidates(k):
    X = data.uniform(400, 2, seed=8)
    rng = CountingRng(0)
    kmeans_plusplus(X, k, rng)
    assert rng.draws == [2 + int(math.log(k))] * (k - 1)


def test_kmeans_plusplus_keeps_the_best_candidate():
    # Greedy step: among the drawn candidates, the chosen one lowers the potential most.
    X = data.uniform(150, 2, seed=10)
    rng = CountingRng(3)
    centers = kmeans_plusplus(X, 4, rng)
    replay = np.random.default_rng(3)
    first = replay.integers(150)
    np.testing.assert_array_equal(centers[0], X[first])
    chosen = [X[first]]
    for c in range(1, 4):
        closest = ((X[:, None, :] - np.array(chosen)[None]) ** 2).sum(axis=2).min(axis=1)
        draws = replay.random(rng.draws[c - 1]) * closest.sum()
        candidates = np.minimum(np.searchsorted(np.cumsum(closest), draws), 149)
        potentials = [np.minimum(closest, ((X - X[i]) ** 2).sum(axis=1)).sum() for i in candidates]
        assert (X[candidates] == centers[c]).all(axis=1).any(), f"centre {c} is not one of the drawn candidates"
        got = np.minimum(closest, ((X - centers[c]) ** 2).sum(axis=1)).sum()
        assert got == pytest.approx(min(potentials), rel=1e-12)
        chosen.append(centers[c])


def test_kmeans_plusplus_on_duplicate_rows_still_returns_rows():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]]), 10, axis=0)
    got = initial_centers(X, 5, "k-means++", 0)
    assert (rows_of(X, got) >= 0).all() and np.isfinite(got).all()


def test_seed_none_gives_valid_centres():
    X = data.uniform(40, 2, seed=1)
    for init in ("random", "k-means++"):
        got = initial_centers(X, 4, init, None)
        assert (rows_of(X, got) >= 0).all()


def test_array_init_returned_as_float64_copy():
    X = data.uniform(20, 3, seed=0)
    init = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = initial_centers(X, 2, init, 0)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, init)
    got[0, 0] = 99.0
    assert init[0, 0] == 0.0, "the caller's array must not be written through"


def test_array_init_list_accepted():
    X = data.uniform(20, 2, seed=0)
    np.testing.assert_array_equal(initial_centers(X, 2, [[0, 0], [1, 1]], 0), [[0.0, 0.0], [1.0, 1.0]])


@pytest.mark.parametrize("shape", [(3, 3), (2, 2), (2,), (2, 3, 1)])
def test_array_init_wrong_shape_gives_expected_shape(shape):
    X = data.uniform(20, 3, seed=0)
    with pytest.raises(ValueError, match=r"expected .*\(2, 3\)") as err:
        initial_centers(X, 2, np.zeros(shape), 0)
    assert str(shape) in str(err.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_array_init_non_finite_rejected(bad):
    X = data.uniform(20, 2, seed=0)
    init = np.zeros((2, 2))
    init[1, 0] = bad
    with pytest.raises(ValueError, match="init contains NaN or infinity"):
        initial_centers(X, 2, init, 0)


def test_array_init_complex_rejected():
    X = data.uniform(20, 2, seed=0)
    with pytest.raises(TypeError, match="complex"):
        initial_centers(X, 2, np.zeros((2, 2), dtype=complex), 0)


@pytest.mark.parametrize("name", ["kmeans++", "Random", "k-means||", ""])
def test_unknown_init_name(name):
    X = data.uniform(20, 2, seed=0)
    with pytest.raises(ValueError, match="init must be one of") as err:
        initial_centers(X, 2, name, 0)
    assert repr(name) in str(err.value)


def test_kmeans_plusplus_on_a_dask_array_never_gathers_x(monkeypatch):
    """Same centres as the eager version, and no task result ever holds all rows of X."""
    pytest.importorskip("dask")
    import dask.array as da
    from dask.callbacks import Callback

    import kmbench.core.seeding as seeding

    rng = np.random.default_rng(3)
    X = rng.normal(size=(8000, 4)) + rng.integers(0, 6, size=(8000, 1)) * 4.0
    expected = seeding.initial_centers(X, 6, "k-means++", 11)

    def refuse(X):
        raise AssertionError("k-means++ on a dask array must not bring X to the client")

    monkeypatch.setattr(seeding, "as_host_array", refuse)
    biggest = []

    class Largest(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if getattr(result, "ndim", 0) == 2:
                biggest.append(result.shape[0])

    with Largest():
        got = seeding.initial_centers(da.from_array(X, chunks=(1000, 4)), 6, "k-means++", 11)
    np.testing.assert_allclose(got, expected)
    assert biggest and max(biggest) <= 1000
