"""The tidy loader on real asv output, and ``kmbench report`` writing figures, pages and the CSV.

One tiny asv suite (three backends, a 2x2x2 shape grid) is run once per module in a
throwaway git repository with asv's ``existing`` environment, as ``kmbench bench`` does,
so the loader reads files asv itself wrote. ``HOME`` is redirected so asv's machine file
is written there, not in the user's home.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

import kmbench.bench.records as results

SUITE = textwrap.dedent('''
    from kmbench.check.data import blobs
    from kmbench.core.kmeans import create, execute
    from kmbench.core.seeding import initial_centers


    class Tiny:
        params = [["identity", "sklearn"], [300, 600], [2], [2], ["float64"]]
        param_names = ["backend", "n", "k", "d", "dtype"]
        repeat, number, rounds, warmup_time = 1, 1, 1, 0.0

        def setup(self, backend, n, k, d, dtype):
            if backend == "sklearn" and n == 300:
                raise NotImplementedError("skipped on purpose: asv records n/a")
            self.backend = create(backend, n=n, k=k, d=d, dtype=dtype, threads=1)
            X, _ = blobs(n, d, k, seed=0)
            self.X = X.astype(dtype)
            self.C = initial_centers(self.X, k, "random", 0)

        def track_per_iter(self, backend, n, k, d, dtype):
            return execute(self.backend, self.X, self.C, max_iter=2, tol=-1.0).timings["per_iter"]

        track_per_iter.unit = "seconds"

        def peakmem_fit(self, backend, n, k, d, dtype):
            execute(self.backend, self.X, self.C, max_iter=2, tol=-1.0)
''')

#: parameter combinations asv measures: 2 backends x 2 n, less sklearn's skipped one
MEASURED = 3
BENCHMARKS = 2

#: the shapes of the report fixture: a sweep over each of n, k and d through (1000, 4, 3)
SHAPES = sorted({(n, 4, 3) for n in (500, 1000, 2000)} | {(1000, k, 3) for k in (2, 4, 8)}
                | {(1000, 4, d) for d in (2, 3, 6)})
PARAM_NAMES = ["backend", "n", "k", "d", "dtype"]


def write_asv_results(results_dir, machine, benchmarks, *, commit="0123456789abcdef0123456789abcdef01234567",
                      date_ms=1767225600000):
    """Save results through asv's own API (``Results.add_result``/``save``), as ``asv run`` would.

    ``benchmarks``: ``{name: (kind, unit, {(backend, n, k, d, dtype): value})}``; combinations
    missing from a benchmark's dict are stored as asv's "n/a" (None).
    """
    import itertools

    from asv import util
    from asv.benchmarks import Benchmarks
    from asv.results import Results
    from asv.runner import BenchmarkResult

    results_dir.mkdir(parents=True, exist_ok=True)
    res = Results({"machine": machine, "python": "3.11"}, {}, commit, date_ms, "3.11", "existing-py", {})
    metas = {}
    for name, (kind, unit, values) in benchmarks.items():
        axes = [sorted({case[i] for case in values}) for i in range(5)]
        combos = list(itertools.product(*axes))
        meta = {"name": name, "params": [[repr(v) for v in axis] for axis in axes], "param_names": PARAM_NAMES,
                "type": kind, "unit": unit, "version": "1"}
        metas[name] = meta
        result = [values.get(c) for c in combos]
        res.add_result(meta, BenchmarkResult(result=result, samples=[None] * len(result),
                                             number=[None] * len(result), errcode=0, stderr="", profile=None))
    res.save(str(results_dir))
    util.write_json(str(results_dir / "benchmarks.json"), metas, api_version=Benchmarks.api_version)
    util.write_json(str(results_dir / machine / "machine.json"), {"machine": machine}, api_version=1)
    return results_dir


@pytest.fixture(scope="module")
def measured_results(tmp_path_factory):
    """Real measurements taken here (``runner.execute``) over :data:`SHAPES`, stored in asv's format."""
    import tracemalloc

    import kmbench.check.oracle as oracle
    from kmbench.check.crosscheck import compare
    from kmbench.check.data import blobs
    from kmbench.core.kmeans import create, execute
    from kmbench.core.seeding import initial_centers

    per_iter, gflops, peak, error = {}, {}, {}, {}
    X, _ = blobs(100, 2, 2, seed=0)
    execute(create("sklearn", n=100, k=2, d=2, dtype="float64", threads=1), X, X[:2], max_iter=1, tol=-1.0)
    for n, k, d in SHAPES:
        X, _ = blobs(n, d, k, seed=0)
        C = initial_centers(X, k, "random", 0)
        reference = oracle.lloyd(X, C, 2, -1.0)
        for name in ("identity", "broadcast", "sklearn"):
            case = (name, n, k, d, "float64")
            backend = create(name, n=n, k=k, d=d, dtype="float64", threads=1)
            tracemalloc.start()  # Python and NumPy allocations of the fit: its peak working memory
            result = execute(backend, X, C, max_iter=2, tol=-1.0)
            peak[case] = float(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            per_iter[case] = result.timings["per_iter"]
            gflops[case] = 2.0 * n * k * d / per_iter[case] / 1e9
            error[case] = compare(result, reference, X, "float64", stops_early=backend.stops_early).inertia_error
    root = tmp_path_factory.mktemp("measured") / "results"
    return write_asv_results(root, "measuredbox", {
        "suites.Grid.track_per_iter": ("track", "seconds", per_iter),
        "suites.Grid.track_gflops": ("track", "GFLOP/s", gflops),
        "suites.Memory.peakmem_fit": ("peakmemory", "bytes", peak),
        "suites.Quality.track_inertia_rel_error": ("track", "relative", error),
    }), per_iter


@pytest.fixture(scope="module")
def asv_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("asvrepo")
    (root / "benchmarks").mkdir()
    (root / "benchmarks" / "__init__.py").write_text("")
    (root / "benchmarks" / "tiny.py").write_text(SUITE)
    (root / "asv.conf.json").write_text(json.dumps({
        "version": 1, "project": "tiny", "repo": ".", "environment_type": "existing",
        "benchmark_dir": "benchmarks", "results_dir": "results", "html_dir": "html", "env_dir": "env"}))
    home = root / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "KMBENCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    subprocess.run(git + ["commit", "-qm", "tiny suite"], cwd=root, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True, capture_output=True,
                          text=True).stdout.strip()
    asv = [sys.executable, "-m", "asv"]
    subprocess.run(asv + ["machine", "--yes", "--machine", "tinybox"], cwd=root, env=env, check=True,
                   capture_output=True)
    out = subprocess.run(asv + ["run", "-E", f"existing:{sys.executable}", "--machine", "tinybox",
                                "--set-commit-hash", head], cwd=root, env=env, capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return root / "results", head


@pytest.mark.slow
def test_tidy_table_reads_what_asv_wrote(asv_results):
    results_dir, head = asv_results
    df = results.load_asv(results_dir)
    assert list(df.columns) == results.COLUMNS
    assert len(df) == BENCHMARKS * MEASURED
    assert set(df["metric"]) == {"per_iter", "peakmem"}
    assert set(df["machine"]) == {"tinybox"} and set(df["source"]) == {"asv"}
    assert set(df["commit"]) == {head[:8]}
    assert df["date"].notna().all()
    # parameters come back typed, from asv's repr strings
    assert set(df["backend"]) == {"identity", "sklearn"}
    assert set(df["n"]) == {300, 600} and set(df["k"]) == {2} and set(df["d"]) == {2}
    assert set(df["dtype"]) == {"float64"}
    # asv's "n/a" (the skipped sklearn case) is left out, not turned into a number
    assert df[(df["backend"] == "sklearn") & (df["n"] == 300)].empty
    per_iter = df[df["metric"] == "per_iter"]
    assert (per_iter["value"] > 0).all() and set(per_iter["unit"]) == {"s"}
    assert (df[df["metric"] == "peakmem"]["value"] > 1e6).all()  # bytes of a whole Python process


def test_tidy_table_from_results_saved_by_asvs_api(measured_results):
    results_dir, per_iter = measured_results
    df = results.load_asv(results_dir)
    assert len(df) == 4 * len(per_iter)
    assert set(df["metric"]) == {"per_iter", "gflops", "peakmem", "inertia_error"}
    times = df[df["metric"] == "per_iter"]
    for row in times.itertuples():
        assert row.value == per_iter[(row.backend, row.n, row.k, row.d, row.dtype)]
    assert (df[df["metric"] == "inertia_error"]["value"] < 1e-10).all()  # float64 backends agree with the oracle


def test_tidy_adds_sweep_rows_after_asv_rows(measured_results, tmp_path):
    results_dir, _ = measured_results
    sweep = tmp_path / "sweep.jsonl"
    records = [
        {"backend": "identity", "n": 5000, "k": 8, "d": 4, "dtype": "float64", "max_iter": 10, "threads": 1,
         "status": "ok", "per_iter_median": 0.002, "peak_rss_mb": 150.0, "machine": {"hostname": "measuredbox"},
         "time": "2026-01-01T00:00:00+00:00"},
        {"backend": "loop", "n": 5000, "k": 8, "d": 4, "dtype": "float64", "status": "skipped",
         "reason": "too large", "per_iter_median": None, "machine": {"hostname": "measuredbox"}},
    ]
    sweep.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"backend": "cut sh')
    df = results.tidy(results_dir, machine="measuredbox", sweeps=[sweep], trials=False)
    assert list(df["source"].unique()) == ["asv", "sweep"]
    rows = df[df["source"] == "sweep"]
    assert set(rows["metric"]) == {"per_iter", "peakmem"}  # the skipped line and the torn line give nothing
    assert rows[rows["metric"] == "per_iter"]["value"].item() == 0.002
    assert rows[rows["metric"] == "peakmem"]["value"].item() == 150.0 * 2 ** 20


def test_report_writes_figures_pages_and_csv(measured_results, tmp_path):
    from kmbench.report.pages import write_report

    results_dir, per_iter = measured_results
    out = tmp_path / "report"
    written = write_report(results_dir, out, convergence_shape=(400, 3, 2),
                           convergence_backends=["identity", "broadcast"], progress=False, sweeps=[])
    figures = sorted((out / "figures").glob("*.png"))
    assert len(figures) >= 5, [f.name for f in figures]
    for name in ("time_vs_n", "time_vs_k", "time_vs_d", "speedup_heatmap", "roofline", "peakmem_vs_n",
                 "convergence"):
        path = out / "figures" / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert written[name] == path
    page = (out / "index.html").read_text()
    readme = (out / "README.md").read_text()
    for text in (page, readme):
        assert "measuredbox" in text
        assert "figures/speedup_heatmap.png" in text and "figures/convergence.png" in text
        assert "results.csv" in text
    csv = pd.read_csv(out / "results.csv")
    assert len(csv) == 4 * len(per_iter)
    assert set(csv.columns) >= {"benchmark", "backend", "n", "k", "d", "dtype", "value", "unit", "machine",
                                "commit", "date", "source"}
    # the recommendation row for each shape names the backend with the lowest recorded time there
    fastest = min(("identity", "broadcast", "sklearn"), key=lambda b: per_iter[(b, 2000, 4, 3, "float64")])
    row = next(line for line in readme.splitlines() if line.startswith("| float64 | 2,000 | 4 | 3 |"))
    assert row.split(" | ")[4] == fastest
    # the convergence run's own quality rows: both backends agree with the oracle
    assert "report run 400x2, k=3" in readme


def test_convergence_runs_start_every_backend_from_the_same_centres():
    from kmbench.report.pages import convergence_runs

    runs, rows, title = convergence_runs((500, 3, 2), ["identity", "broadcast", "float32"], progress=False)
    by = {r["backend"]: r for r in runs}
    assert set(by) == {"oracle", "identity", "broadcast", "float32"}
    assert by["float32"]["dtype"] == "float32"  # float32-only backends run in their own dtype
    assert by["identity"]["history"][0] == pytest.approx(by["oracle"]["history"][0], rel=1e-12)
    assert {r["backend"]: r["status"] for r in rows} == {"identity": "ok", "broadcast": "ok", "float32": "ok"}
    assert "n=500, k=3, d=2" in title


def test_report_command_needs_a_machine_when_results_hold_several(tmp_path):
    from kmbench.cli import main

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "machine.json").write_text(json.dumps({"machine": name, "version": 1}))
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "out"), "--no-convergence"]) == 2
