"""The asv suites: every backend over n, k and d, time to convergence, warm-up, memory and quality.

Every benchmark has the same parameters, ``backend, n, k, d, dtype`` (one-valued lists
where a suite holds an axis fixed), so a reader of the results never has to know which
suite fixed what. Names and parameters are documented in ``benchmarks/README.md`` and
read by ``kmbench.bench.records``/``kmbench.report.pages``: keep them stable.

Per-iteration time is a ``track_``: the median over a few calls of the backend's
``run(10, tol=-1)``, divided by the iterations it actually ran (``runner.execute``'s
``timings["per_iter"]``, final assignment included), so a backend that stops early
(scikit-learn stops once labels repeat) is not credited with iterations it skipped.
Cases a backend (or the profile) will not serve raise NotImplementedError with the
reason in ``setup``: asv shows "n/a", and ``kmbench bench`` keeps the reason.
"""
from __future__ import annotations

from . import common
from .common import BACKENDS, DTYPE, ITERATIONS, P

PARAM_NAMES = ["backend", "n", "k", "d", "dtype"]
#: time to convergence uses the library default tolerance, from the same centres
CONVERGENCE_TOL = 1e-4
CONVERGENCE_MAX_ITER = 300


def _asv_attributes(cls):
    """The profile's asv settings (rounds, repeat, ...), where the class does not set its own."""
    for key, value in P["asv"].items():
        if key not in cls.__dict__:
            setattr(cls, key, value)
    return cls


class _Case:
    """setup/teardown shared by every suite: skip with a reason, else a prepared backend."""

    param_names = PARAM_NAMES
    warm = True

    def setup(self, backend, n, k, d, dtype):
        self.case = None
        common.skip_if_unserved(type(self).__name__, backend, n, k, d, dtype)
        self.case = common.Prepared(backend, n, k, d, dtype, warm=self.warm)

    def teardown(self, *params):
        if getattr(self, "case", None) is not None:
            self.case.close()
            self.case = None


class _PerIteration(_Case):
    """Fixed work (``tol < 0``) from the same ``init="random"`` centres for every backend."""

    def track_per_iter(self, backend, n, k, d, dtype):
        seconds, n_iter = self.case.measure(ITERATIONS, -1.0)
        return seconds / n_iter

    track_per_iter.unit = "seconds"

    def track_gflops(self, backend, n, k, d, dtype):
        # 2*n*k*d: the multiply-adds of the distance computation, whichever way a backend does it
        seconds, n_iter = self.case.measure(ITERATIONS, -1.0)
        return 2.0 * n * k * d * n_iter / seconds / 1e9

    track_gflops.unit = "GFLOP/s"


def _one(value):
    return [value]


BASE_N, BASE_K, BASE_D = P["base"]


@_asv_attributes
class SweepN(_PerIteration):
    """n varies; k and d at the profile's base shape."""

    params = [BACKENDS, P["sweep_n"], _one(BASE_K), _one(BASE_D), _one(DTYPE)]


@_asv_attributes
class SweepK(_PerIteration):
    """k varies; n and d at the profile's base shape."""

    params = [BACKENDS, _one(BASE_N), P["sweep_k"], _one(BASE_D), _one(DTYPE)]


@_asv_attributes
class SweepD(_PerIteration):
    """d varies; n and k at the profile's base shape."""

    params = [BACKENDS, _one(BASE_N), _one(BASE_K), P["sweep_d"], _one(DTYPE)]


@_asv_attributes
class Grid(_PerIteration):
    """A coarse n x k x d grid: the data behind the recommendation map."""

    params = [BACKENDS, P["grid_n"], P["grid_k"], P["grid_d"], _one(DTYPE)]


@_asv_attributes
class Dtype(_Case):
    """float32 against float64 at the base shape."""

    params = [BACKENDS, _one(BASE_N), _one(BASE_K), _one(BASE_D), P["dtypes"]]
    track_per_iter = _PerIteration.track_per_iter


@_asv_attributes
class Convergence(_Case):
    """Lloyd to ``tol=1e-4`` (at most 300 iterations) from the shared random centres."""

    params = [BACKENDS, *P["convergence"], _one(DTYPE)]

    def time_converge(self, backend, n, k, d, dtype):
        self.case.backend.run(CONVERGENCE_MAX_ITER, CONVERGENCE_TOL)

    def track_n_iter(self, backend, n, k, d, dtype):
        self.case.backend.run(CONVERGENCE_MAX_ITER, CONVERGENCE_TOL)
        return self.case.backend.result().n_iter

    track_n_iter.unit = "iterations"


def _warms_up(name: str) -> bool:
    """Whether a backend has a warm-up step (JIT compilation, first-call costs) worth timing."""
    from kmbench.core.backend import Backend

    try:
        cls = common.registry.load(name)
    except ImportError:
        return True  # a backend whose module is missing still gets a row, so the dashboard says why
    return cls.compiles or cls.warm_up is not Backend.warm_up


WARMUP_BACKENDS = [name for name in BACKENDS if _warms_up(name)]

_WARMUP_SETUP = """
import importlib
from kmbench.check.data import blobs
from kmbench.core.kmeans import create
from kmbench.core.seeding import initial_centers
from kmbench.core.threads import limited_threads
X = blobs({n}, {d}, {k}, seed={seed})[0].astype({dtype!r})
C = initial_centers(X, {k}, "random", {seed}).astype({dtype!r})
backend = create({backend!r}, n={n}, k={k}, d={d}, dtype={dtype!r}, **{options!r})
for module in backend.requires:
    importlib.import_module(module)
limits = limited_threads(backend.threads)
limits.__enter__()
backend.prepare(X, C)
"""


@_asv_attributes
class WarmUp(_Case):
    """``warm_up()`` (JIT compilation, first-call costs) in a fresh interpreter for each sample."""

    params = [WARMUP_BACKENDS, *P["warmup"], _one(DTYPE)]
    repeat = P["warmup_repeat"]

    def setup(self, backend, n, k, d, dtype):
        # the timing happens in a child interpreter; here only decide whether it can run
        self.case = None
        common.skip_if_unserved(type(self).__name__, backend, n, k, d, dtype)

    def timeraw_warm_up(self, backend, n, k, d, dtype):
        setup = _WARMUP_SETUP.format(n=n, k=k, d=d, dtype=dtype, backend=backend, seed=common.SEED,
                                     options=common.options(backend))
        return "backend.warm_up()", setup


@_asv_attributes
class Memory(_Case):
    """Peak resident memory of the benchmark process over one whole fit (prepare to result).

    asv reports the process's peak RSS, so the data and the imported libraries count too;
    compare backends at one shape rather than reading the number as the fit's own.
    """

    params = [BACKENDS, *P["memory"], _one(DTYPE)]
    warm = False

    def peakmem_fit(self, backend, n, k, d, dtype):
        from kmbench.core.kmeans import execute

        execute(self.case.backend, self.case.X, self.case.C, max_iter=ITERATIONS, tol=-1.0)


@_asv_attributes
class Quality(_Case):
    """Agreement with the float64 oracle after the same fixed work from the same centres."""

    params = [BACKENDS, *P["quality"]]
    warm = False

    def setup(self, backend, n, k, d, dtype):
        super().setup(backend, n, k, d, dtype)
        self.reference = common.oracle_result(n, k, d, dtype)

    def _fit(self, dtype):
        from kmbench.core.kmeans import execute

        return execute(self.case.backend, self.case.X, self.case.C, max_iter=ITERATIONS, tol=-1.0)

    def track_inertia_rel_error(self, backend, n, k, d, dtype):
        from kmbench.check.crosscheck import compare

        result = self._fit(dtype)
        b = self.case.backend
        return compare(result, self.reference, self.case.X, dtype, deviations=b.deviations,
                       stops_early=b.stops_early).inertia_error

    track_inertia_rel_error.unit = "relative"

    def track_ari(self, backend, n, k, d, dtype):
        from sklearn.metrics import adjusted_rand_score

        result = self._fit(dtype)
        return float(adjusted_rand_score(self.reference.labels, result.labels))

    track_ari.unit = "ARI"
