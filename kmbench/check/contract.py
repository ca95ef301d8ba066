"""``check_backend``: the contract (docs/contract.md) as a suite any K-Means backend class can be run through.

    >>> from kmbench.check.contract import check_backend
    >>> check_backend("identity")                        # a registered name
    >>> check_backend("mypackage.fast:FastKMeans")       # a class not registered yet
    >>> check_backend(FastKMeans, dtypes=["float32"])    # the class itself

As scikit-learn's ``check_estimator``: each check runs in turn, and a failure raises
:class:`ContractFailure` naming every check that failed and why. A backend that cannot
run here (``unavailable()``, or ``skip()`` refusing a case) is reported, not failed.
The project's own test suite (tests/test_contract.py) goes further, line by line.
"""
from __future__ import annotations

import numbers

import numpy as np

import kmbench.check.data as data
import kmbench.check.oracle as oracle
from kmbench.check.crosscheck import compare
from kmbench.core.engine import session, time_run
from kmbench.core.kmeans import execute
from kmbench.core.registry import load
from kmbench.core.seeding import initial_centers
from kmbench.core.validation import FLOAT_DTYPES


class ContractFailure(AssertionError):
    """One or more contract checks failed; ``failures`` maps each check to why."""

    def __init__(self, name: str, failures: dict):
        self.failures = failures
        super().__init__(f"backend {name!r} breaks the contract: "
                         + "; ".join(f"{check}: {why}" for check, why in failures.items()))


def _facts(cls) -> list[str]:
    problems = []
    if not isinstance(cls.name, str) or not cls.name:
        problems.append(f"name should be a non-empty string; got {cls.name!r}")
    if not cls.dtypes or not set(cls.dtypes) <= set(FLOAT_DTYPES):
        problems.append(f"dtypes should be a non-empty subset of {FLOAT_DTYPES}; got {cls.dtypes!r}")
    if not cls.devices or not all(isinstance(d, str) for d in cls.devices):
        problems.append(f"devices should be a non-empty tuple of strings; got {cls.devices!r}")
    if not isinstance(cls.deviations, dict) or not all(isinstance(v, str) for v in cls.deviations.values()):
        problems.append(f"deviations should map contract keys to explanations; got {cls.deviations!r}")
    if cls.parameters is not None and not (isinstance(cls.parameters, dict)
                                           and all(isinstance(v, list) for v in cls.parameters.values())):
        problems.append(f"parameters should be None or {{option: [constraint, ...]}}; got {cls.parameters!r}")
    if not (isinstance(cls.color, str) and isinstance(cls.marker, str)):
        problems.append(f"color and marker should be strings; got {cls.color!r}, {cls.marker!r}")
    if cls.fallback_rank is not None and not isinstance(cls.fallback_rank, numbers.Integral):
        problems.append(f"fallback_rank should be None or an int; got {cls.fallback_rank!r}")
    for flag in ("compiles", "distributed", "stops_early"):
        if not isinstance(getattr(cls, flag), bool):
            problems.append(f"{flag} should be True or False; got {getattr(cls, flag)!r}")
    return problems


def check_backend(backend, *, dtypes=None, threads: int = 1, device=None, **options) -> dict:
    """Run the contract checks on one K-Means backend class.

    Parameters
    ----------
    backend : str or class
        A registered name, a ``"module:Class"`` spec, or the class.
    dtypes : list of str, optional
        Only these of the class's dtypes.
    threads : int
    device : str, optional
    **options
        Passed to the backend's constructor.

    Returns
    -------
    dict
        ``{check: "ok" | "skipped: reason"}`` for every check run.

    Raises
    ------
    ContractFailure
        naming each failed check and why.
    """
    cls = load(backend) if isinstance(backend, str) else backend
    name = getattr(cls, "name", None) or str(backend)
    outcome, failures = {}, {}
    problems = _facts(cls)
    if problems:
        failures["declared facts"] = "; ".join(problems)
    else:
        outcome["declared facts"] = "ok"
    reason = cls.unavailable()
    if reason is not None:
        outcome["runs here"] = f"skipped: {reason}"
        if failures:
            raise ContractFailure(name, failures)
        return outcome
    X = data.blobs(600, 4, 5, seed=3)[0]
    for dtype in dtypes or cls.dtypes:
        Xd = np.ascontiguousarray(X, dtype=dtype)
        centers = initial_centers(Xd, 5, "k-means++", 0).astype(dtype)

        def fresh():
            b = cls(threads=threads, device=device, **options)
            why = b.skip(Xd.shape[0], 5, Xd.shape[1], dtype)
            return b, why

        checks = {
            f"{dtype}: agrees with the oracle": lambda: _agrees(fresh, Xd, centers, dtype),
            f"{dtype}: run() repeats from the prepared centres": lambda: _repeatable(fresh, Xd, centers),
            f"{dtype}: converges with tol >= 0": lambda: _converges(fresh, Xd, centers),
            f"{dtype}: close() twice is safe": lambda: _closes_twice(fresh, Xd, centers),
        }
        for check, run in checks.items():
            try:
                outcome[check] = run() or "ok"
            except AssertionError as exc:
                failures[check] = str(exc)
            except Exception as exc:  # a crash is a failure of that check, not of the suite
                failures[check] = f"{type(exc).__name__}: {exc}"
    if failures:
        raise ContractFailure(name, failures)
    return outcome


def _agrees(fresh, X, centers, dtype):
    b, why = fresh()
    if why:
        return f"skipped: {why}"
    result = execute(b, X, centers, max_iter=10, tol=-1.0)
    ref = oracle.lloyd(X, centers, 10, -1.0)
    c = compare(result, ref, X, dtype, deviations=b.deviations, stops_early=b.stops_early)
    assert c.ok, c.status
    assert result.centers.dtype == np.dtype(dtype), f"centres came back as {result.centers.dtype}, not {dtype}"
    assert result.labels.shape == (X.shape[0],), f"labels have shape {result.labels.shape}"


def _repeatable(fresh, X, centers):
    b, why = fresh()
    if why:
        return f"skipped: {why}"
    with session(b, (X, centers)):
        time_run(b, (5, -1.0))
        first = b.result()
        time_run(b, (5, -1.0))
        second = b.result()
    assert np.array_equal(np.asarray(first.labels), np.asarray(second.labels)), "labels differ between two run()s"
    np.testing.assert_allclose(np.asarray(first.centers), np.asarray(second.centers), rtol=1e-6,
                               err_msg="centres differ between two run()s")


def _converges(fresh, X, centers):
    b, why = fresh()
    if why:
        return f"skipped: {why}"
    result = execute(b, X, centers, max_iter=300, tol=1e-4)
    assert result.converged and result.n_iter < 300, \
        f"well-separated blobs: converged={result.converged} after n_iter={result.n_iter}"


def _closes_twice(fresh, X, centers):
    b, why = fresh()
    if why:
        return f"skipped: {why}"
    execute(b, X, centers, max_iter=1, tol=-1.0)
    b.close()
