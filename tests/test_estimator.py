"""``kmbench.KMeans``: scikit-learn's conventions, restarts, predictions, dtypes, reproducibility.

Behaviour is checked across the backends a user is most likely to pick (identity,
numba, torch-cpu, sklearn); a backend that cannot run here is skipped with the
reason ``kmbench.backends()`` gives. scikit-learn's own ``check_estimator`` runs on
the fast "identity" backend.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import THREADS, backend_rows
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import impls
import kmbench.check.data as data
import kmbench.check.oracle as oracle
from kmbench import KMeans
from kmbench.check.crosscheck import compare
from kmbench.api.estimator import center_distances, nearest_centers
from kmbench.core.seeding import initial_centers

USER_BACKENDS = ("identity", "numba", "torch-cpu", "sklearn")


def _backend_params():
    rows = backend_rows()
    return [pytest.param(name, id=name, marks=[] if rows[name]["available"]
                         else [pytest.mark.skip(reason=f"{name}: {rows[name]['reason']}")])
            for name in USER_BACKENDS]


@pytest.fixture(params=_backend_params())
def backend(request):
    return request.param


@pytest.fixture(scope="module")
def blobs():
    """Four well separated blobs, (X (800, 5) float64, k=4), and held-out points from the same blobs."""
    X, _ = data.blobs(1000, 5, 4, seed=7)
    return X[:800], X[800:], 4


def make(k, backend, **params):
    return KMeans(k, backend=backend, threads=THREADS, **params)


# -- scikit-learn's own checks --------------------------------------------------------------
@parametrize_with_checks([KMeans(backend="identity", threads=THREADS)])
def test_sklearn_check_estimator(estimator, check):
    check(estimator)


# -- against the oracle, through the estimator ----------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fit_agrees_with_oracle(backend, dtype, blobs):
    X, _, k = blobs
    X = X.astype(dtype)
    km = make(k, backend, max_iter=8, tol=-1.0, random_state=3).fit(X)
    seed = km.restarts_[0]["seed"]
    work = km.result_.dtype
    Xw = X.astype(work)
    reference = oracle.lloyd(Xw, initial_centers(Xw, k, "k-means++", seed).astype(work), 8, -1.0)
    cls = impls.load(km.backend_)
    c = compare(km.result_, reference, Xw, work, deviations=cls.deviations, stops_early=cls.stops_early)
    assert c.ok, c.status
    assert km.cluster_centers_.dtype == np.dtype(dtype)
    assert km.labels_.dtype == np.int32 and km.labels_.shape == (X.shape[0],)


def test_predict_transform_score(backend, blobs):
    X, X_new, k = blobs
    km = make(k, backend, random_state=0)
    labels = km.fit_predict(X)
    assert np.array_equal(labels, km.labels_)
    assert np.array_equal(km.predict(X), km.labels_)
    D = oracle.squared_distances(X_new, km.cluster_centers_)
    assert np.array_equal(km.predict(X_new), D.argmin(axis=1))
    T = km.transform(X_new)
    assert T.shape == (X_new.shape[0], k)
    # Euclidean, not squared, as in scikit-learn.
    np.testing.assert_allclose(T, np.sqrt(D), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(km.score(X), -km.inertia_, rtol=1e-10)
    np.testing.assert_allclose(km.score(X_new), -D.min(axis=1).sum(), rtol=1e-10)
    np.testing.assert_allclose(make(k, backend, random_state=0).fit_transform(X), km.transform(X), rtol=1e-12)


def test_float32_stays_float32(backend, blobs):
    X, X_new, k = blobs
    X32 = X.astype(np.float32)
    km = make(k, backend, random_state=0).fit(X32)
    assert km.cluster_centers_.dtype == np.float32
    assert km.transform(X_new.astype(np.float32)).dtype == np.float32
    assert km.predict(X_new).dtype == np.int32
    assert isinstance(km.inertia_, float)
    # ints become float64, as the contract says
    assert make(k, backend, random_state=0).fit((X * 10).astype(np.int64)).cluster_centers_.dtype == np.float64


def test_inertia_history_is_lloyds(backend, blobs):
    X, _, k = blobs
    km = make(k, backend, init="random", random_state=1).fit(X)
    h = np.asarray(km.inertia_history_)
    if backend == "sklearn":
        assert h.size == 0  # scikit-learn does not expose it; the backend says so rather than inventing one
        return
    assert h.size == km.n_iter_
    # Lloyd never increases the objective; and the final inertia is at most the last assignment's.
    assert np.all(np.diff(h) <= 1e-9 * h[0])
    assert km.inertia_ <= h[-1] * (1 + 1e-9)


# -- restarts and reproducibility -----------------------------------------------------------
def test_restarts_keep_the_best(backend):
    # Uniform noise with random starts: restarts reach different local minima.
    X = data.uniform(500, 2, seed=5)
    km = make(12, backend, init="random", n_init=6, random_state=0).fit(X)
    inertias = [r["inertia"] for r in km.restarts_]
    assert len(inertias) == 6 and len({r["seed"] for r in km.restarts_}) == 6
    assert len(set(np.round(inertias, 9))) > 1, "the restarts should not all land on the same solution"
    assert km.inertia_ == min(inertias)
    np.testing.assert_allclose(km.score(X), -km.inertia_, rtol=1e-9)
    # The first restart's seed does not depend on n_init, so more restarts never do worse.
    one = make(12, backend, init="random", n_init=1, random_state=0).fit(X)
    assert one.restarts_[0]["seed"] == km.restarts_[0]["seed"]
    assert km.inertia_ <= one.inertia_


def test_reproducible(backend, blobs):
    X = data.uniform(400, 3, seed=2)
    a = make(6, backend, init="random", n_init=3, random_state=42).fit(X)
    b = make(6, backend, init="random", n_init=3, random_state=42).fit(X)
    assert np.array_equal(a.cluster_centers_, b.cluster_centers_)
    assert np.array_equal(a.labels_, b.labels_) and a.inertia_ == b.inertia_
    c = make(6, backend, init="random", n_init=3, random_state=43).fit(X)
    assert [r["seed"] for r in c.restarts_] != [r["seed"] for r in a.restarts_]
    assert not np.array_equal(np.sort(c.cluster_centers_, axis=0), np.sort(a.cluster_centers_, axis=0))
    # A RandomState instance is accepted, as in scikit-learn.
    d = make(6, backend, init="random", n_init=3, random_state=np.random.RandomState(42)).fit(X)
    assert np.array_equal(d.cluster_centers_, a.cluster_centers_)


def test_n_init_auto_and_array_init(blobs):
    X, _, k = blobs
    assert len(make(k, "identity", n_init="auto", random_state=0).fit(X).restarts_) == 1
    assert len(make(k, "identity", n_init="auto", init="random", random_state=0).fit(X).restarts_) == 10
    init = X[:k]
    with pytest.warns(RuntimeWarning, match="n_init=3 with an explicit init array runs once"):
        km = make(k, "identity", init=init, n_init=3).fit(X)
    assert len(km.restarts_) == 1
    ref = oracle.lloyd(X, init, 300, 1e-4)
    np.testing.assert_allclose(km.cluster_centers_, ref.centers, rtol=1e-9, atol=1e-12)


def test_auto_records_what_ran(blobs):
    X, _, k = blobs
    km = KMeans(k, random_state=0, threads=THREADS).fit(X)
    assert km.backend_ in impls.REGISTRY
    assert "auto" in km.result_.info


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("params, message", [
    ({"n_init": 0}, "n_init=0 must be >= 1"),
    ({"n_init": "many"}, "n_init must be an integer >= 1 or 'auto'; got 'many'"),
    ({"n_clusters": 20}, "n_clusters=20 must be <= n_samples=10"),
    ({"max_iter": 0}, "max_iter=0 must be >= 1"),
    ({"backend": "nope"}, "unknown backend 'nope'"),
    ({"init": "kmeans"}, "init must be one of"),
    ({"init": np.zeros((3, 2))}, r"init has shape \(3, 2\); expected \(n_clusters, n_features\) = \(4, 3\)"),
])
def test_bad_parameters_name_the_value(params, message):
    X = data.uniform(10, 3)
    with pytest.raises(ValueError, match=message):
        KMeans(**{"n_clusters": 4, "backend": "identity", **params}).fit(X)


def test_use_before_fit_and_wrong_width(blobs):
    X, _, k = blobs
    with pytest.raises(NotFittedError):
        make(k, "identity").predict(X)
    km = make(k, "identity", random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but KMeans is expecting 5 features"):
        km.predict(X[:, :3])


# -- the scikit-learn ecosystem ---------------------------------------------------------------
def test_clone_pickle_dataframe(blobs):
    pd = pytest.importorskip("pandas")
    X, X_new, k = blobs
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    km = make(k, "identity", random_state=0).fit(frame)
    assert list(km.feature_names_in_) == list(frame.columns) and km.n_features_in_ == 5
    assert list(km.get_feature_names_out()) == [f"kmeans{j}" for j in range(k)]
    fresh = clone(km)
    assert not hasattr(fresh, "cluster_centers_") and fresh.get_params() == km.get_params()
    back = pickle.loads(pickle.dumps(km))
    new_frame = pd.DataFrame(X_new, columns=frame.columns)
    assert np.array_equal(back.predict(new_frame), km.predict(new_frame))
    out = make(k, "identity", random_state=0).set_output(transform="pandas").fit_transform(frame)
    assert list(out.columns) == [f"kmeans{j}" for j in range(k)]


def test_pipeline_and_grid_search(blobs):
    X, X_new, k = blobs
    pipe = make_pipeline(StandardScaler(), make(k, "identity", random_state=0)).fit(X)
    labels = pipe.predict(X_new)
    assert labels.shape == (X_new.shape[0],) and set(labels) <= set(range(k))
    assert pipe.transform(X_new).shape == (X_new.shape[0], k)
    # score is -inertia, so a larger k always scores higher: GridSearchCV must pick the largest.
    search = GridSearchCV(make(2, "identity", random_state=0), {"n_clusters": [2, 3, 4]}, cv=3).fit(X)
    assert search.best_params_ == {"n_clusters": 4}
    scores = search.cv_results_["mean_test_score"]
    assert np.all(scores < 0) and np.all(np.diff(scores) > 0)


def test_torch_tensor_input():
    rows = backend_rows()
    if not rows["torch-cpu"]["available"]:
        pytest.skip(f"torch-cpu: {rows['torch-cpu']['reason']}")
    import torch

    X, _ = data.blobs(300, 3, 3, seed=1)
    km = make(3, "torch-cpu", random_state=0).fit(torch.from_numpy(X))
    ref = make(3, "torch-cpu", random_state=0).fit(X)
    assert km.n_features_in_ == 3
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-12)
    assert np.array_equal(km.predict(torch.from_numpy(X)), km.labels_)


# -- the shared assignment helpers ------------------------------------------------------------
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-9), ("float32", 1e-4)])
def test_assignment_helpers_match_exact_distances(dtype, rtol):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 7)).astype(dtype)
    C = rng.standard_normal((300, 7)).astype(dtype)  # 300 centres: several row blocks at the default block size
    D = oracle.squared_distances(X.astype(np.float64), C.astype(np.float64))
    got = center_distances(X, C)
    assert got.dtype == np.dtype(dtype) and got.shape == (3000, 300)
    np.testing.assert_allclose(got, D, rtol=rtol, atol=rtol * D.max())
    np.testing.assert_allclose(center_distances(X, C, squared=False), np.sqrt(got), rtol=1e-6)
    labels = nearest_centers(X, C)
    best = D.min(axis=1)
    # equal to the exact argmin except at near-ties of the dtype's width
    assert np.all(D[np.arange(3000), labels] - best <= rtol * best)
