"""One ``kmbench sweep`` case, run in its own process.

    python -m kmbench.bench.worker CASE_JSON RESULT_PATH

The sweep starts one of these per case so that a segfault, an ``os._exit``, an
out-of-memory kill or a hang takes down only that case. The child generates its
own data (fixed seed per shape), times the fit through ``kmbench.core.kmeans.execute``
``repeats`` times and writes one JSON object to RESULT_PATH (atomically: written
to a temporary name, then renamed). No file means the child died; the parent then
records the case as crashed from the exit status.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import sys
import traceback

from kmbench.bench.machine import versions
from kmbench.core import registry

#: statuses a sweep record can carry
STATUSES = ("ok", "skipped", "failed", "timeout", "crashed")

#: what every record carries (None where a case did not get that far), so readers need no guessing
RESULT_FIELDS = ("status", "reason", "per_iter_median", "per_iter_all", "prepare", "warmup", "fit",
                 "n_iter", "inertia", "peak_rss_mb", "versions")


def load_class(spec: str):
    """The backend class for ``spec``: a registered name, or a ``"module:Class"`` string.

    ``module:Class`` specs let a sweep time test doubles and backends under development
    without registering them. Raises ValueError for an unknown name, ImportError where
    the backend's module does not import.
    """
    return registry.load(spec, "kmeans")


def resolve_backend(spec: str) -> str:
    """``spec`` if it names a backend class that loads; ValueError naming it otherwise."""
    try:
        load_class(spec)
    except ImportError as exc:
        if spec in registry.REGISTRY["kmeans"]:  # registered but its module is broken: reported per case, as a skip
            return spec
        raise ValueError(f"backend {spec!r} could not be loaded: {exc}") from None
    return spec


def create(spec: str, case: dict):
    """A created backend for this case, or ``runner.BackendUnavailable`` with the backend's reason."""
    import kmbench.core.kmeans as runner
    from kmbench.core.validation import check_n_clusters

    check_n_clusters(case["k"], case["n"])
    try:
        return runner.create(spec, n=case["n"], k=case["k"], d=case["d"],
                             dtype=case["dtype"], threads=case["threads"])
    except ImportError as exc:  # a backend module that does not import is unavailable, as in `kmbench list`
        raise runner.BackendUnavailable(f"backend {spec!r} could not be loaded: {exc}") from None


def run_case(case: dict) -> dict:
    """Generate the data, time ``repeats`` fits and summarise them; never raises."""
    import numpy as np

    import kmbench.check.data as data
    import kmbench.core.kmeans as runner
    from kmbench.core.seeding import initial_centers

    record = dict.fromkeys(RESULT_FIELDS)
    record["status"] = "failed"
    try:
        backend = create(case["backend"], case)
    except (runner.BackendUnavailable, ValueError) as exc:
        return dict(record, status="skipped", reason=str(exc), versions=versions())
    record["versions"] = versions(backend.requires)
    try:
        X, _ = data.blobs(case["n"], case["d"], case["k"], seed=case["seed"], dtype=case["dtype"])
        centers = initial_centers(X, case["k"], "random", case["seed"]).astype(case["dtype"])
        # The peak so far (interpreter, imports, data generation): what the fit adds shows above it.
        record["rss_before_fit_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results = [runner.execute(backend, X, centers, max_iter=case["max_iter"], tol=-1.0)
                   for _ in range(case["repeats"])]
    except Exception as exc:  # a failing backend is a result, not a reason to stop the sweep
        record["reason"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        record["traceback"] = traceback.format_exc()[-4000:]
        return record
    finally:
        close = getattr(backend, "close", None)  # e.g. dask's LocalCluster: reap its worker processes
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001 -- the measurement is taken; a failed shutdown cannot spoil it
                pass
    # Helper processes (dask workers) are not in this process's peak: the largest reaped one, in MiB.
    record["peak_rss_subprocesses_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 or None
    per_iter = [r.timings["per_iter"] for r in results]
    last = results[-1]
    record.update(
        status="ok",
        per_iter_median=statistics.median(per_iter),
        per_iter_all=per_iter,
        # prepare and warm-up of the first repeat: later repeats find JIT caches warm
        prepare=results[0].timings["prepare"],
        warmup=results[0].timings["warmup"],
        fit=statistics.median(r.timings["fit"] for r in results),
        n_iter=last.n_iter,
        inertia=last.inertia,
        recorded_threads=last.threads,
        device=last.device,
        info=_jsonable(last.info),
    )
    if not np.isfinite(last.inertia):
        record.update(status="failed", reason=f"non-finite inertia {last.inertia}")
    return record


def _jsonable(value):
    """``value`` with everything JSON cannot hold turned into its ``repr``."""
    try:
        json.dumps(value, allow_nan=True)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_jsonable(v) for v in value]
        return repr(value)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when the sweep dies, so a ``kill -9`` leaves no orphan running."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    case, path = json.loads(argv[0]), argv[1]
    if case.get("parent"):
        _die_with_parent(case["parent"])
    record = run_case(case)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(record, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return 0 if record["status"] in ("ok", "skipped") else 1


if __name__ == "__main__":
    sys.exit(main())
