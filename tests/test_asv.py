"""The asv suites: asv accepts them, the profiles cover every axis, skips carry reasons, bench resumes.

asv runs from the project's own environment (``-E existing``), as ``kmbench bench`` does.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is asv's folder, not an installed package
    sys.path.insert(0, str(ROOT))
PARAM_NAMES = ["backend", "n", "k", "d", "dtype"]
#: the names kmbench.bench.records and kmbench.report.pages read (benchmarks/README.md); changing them breaks the report
EXPECTED = {
    "suites.SweepN.track_per_iter", "suites.SweepN.track_gflops",
    "suites.SweepK.track_per_iter", "suites.SweepK.track_gflops",
    "suites.SweepD.track_per_iter", "suites.SweepD.track_gflops",
    "suites.Grid.track_per_iter", "suites.Grid.track_gflops",
    "suites.Dtype.track_per_iter",
    "suites.Design.track_per_iter",  # and track_per_call, outside the fast profile
    "suites.Convergence.time_converge", "suites.Convergence.track_n_iter",
    "suites.WarmUp.timeraw_warm_up",
    "suites.Memory.peakmem_fit",
    "suites.Quality.track_inertia_rel_error", "suites.Quality.track_ari",
}
#: the linkage family's suites (benchmarks/linkage_suites.py), read as the "linkage" family
LINKAGE_PARAM_NAMES = ["backend", "n", "d", "method", "dtype"]
EXPECTED_LINKAGE = {
    "linkage_suites.LinkageTime.track_linkage", "linkage_suites.LinkageTimeD.track_linkage",
    "linkage_suites.LinkageMemory.peakmem_linkage", "linkage_suites.LinkageQuality.track_height_error",
    "linkage_suites.LinkageQuality.track_min_ari", "linkage_suites.LinkageQuality.track_reference",
}


def env_for(profile: str = "fast", **extra) -> dict:
    env = dict(os.environ, KMBENCH_PROFILE=profile, **extra)
    env.pop("KMBENCH_BACKENDS", None) if "KMBENCH_BACKENDS" not in extra else None
    return env


def suite_params(profile: str, backends: str | None = None) -> dict:
    """``{class name: (param_names, params)}`` of benchmarks/suites.py under a profile, in a fresh interpreter
    (the profile is read once, at import)."""
    code = ("import json\nfrom benchmarks import suites as s\n"
            "print(json.dumps({c: [getattr(s, c).param_names, getattr(s, c).params] for c in "
            "['SweepN', 'SweepK', 'SweepD', 'Grid', 'Dtype', 'Convergence', 'WarmUp', 'Memory', 'Quality']}))")
    extra = {"KMBENCH_BACKENDS": backends} if backends else {}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env_for(profile, **extra), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def asv(*args, env, cwd=ROOT, timeout=300):
    return subprocess.run([sys.executable, "-m", "asv", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_asv_check_passes_in_this_environment():
    out = asv("check", "-E", f"existing:{sys.executable}", env=env_for("fast"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No problems found" in out.stdout


def test_discovery_finds_every_benchmark_with_the_five_parameters(tmp_path):
    from kmbench.cli.bench import benchmark_list, write_config

    from kmbench.bench.machine import describe_machine, write_asv_machine_file

    config = write_config(ROOT, tmp_path / "results", tmp_path / "html", "fast")
    # asv needs a machine entry in HOME; one of its own, as kmbench bench writes it, not the user's
    info = describe_machine(measure=False)
    write_asv_machine_file(tmp_path / "home", info)
    out = asv("run", "--config", str(config), "-E", f"existing:{sys.executable}", "--bench", "just-discover",
              "--machine", info["machine"], env=env_for("fast", HOME=str(tmp_path / "home")))
    assert out.returncode == 0, out.stdout + out.stderr
    found = benchmark_list(tmp_path / "results")
    assert EXPECTED | EXPECTED_LINKAGE <= set(found), sorted(EXPECTED | EXPECTED_LINKAGE - set(found))
    # the scripts beside the suites (side_by_side.py, ...) must not leak names asv takes for benchmarks
    assert set(found) == EXPECTED | EXPECTED_LINKAGE, \
        f"unexpected asv benchmarks: {sorted(set(found) - EXPECTED - EXPECTED_LINKAGE)}"
    for name in EXPECTED:
        assert found[name]["param_names"] == PARAM_NAMES, name
    for name in EXPECTED_LINKAGE:
        assert found[name]["param_names"] == LINKAGE_PARAM_NAMES, name
    assert found["linkage_suites.LinkageMemory.peakmem_linkage"]["type"] == "peakmemory"
    assert found["suites.SweepN.track_per_iter"]["unit"] == "seconds"
    assert found["suites.Memory.peakmem_fit"]["type"] == "peakmemory"


@pytest.mark.parametrize("profile", ["fast", "default", "full"])
def test_profile_grid_covers_backend_n_k_d(profile):
    import impls

    suites = suite_params(profile)
    expected_backends = [b for b in impls.REGISTRY if b not in ("dask", "dask-ml")]
    for name, (names, params) in suites.items():
        assert names == PARAM_NAMES, name
        assert len(params) == 5, name
    assert suites["SweepN"][1][0] == expected_backends  # torch-cuda included: it shows n/a with its reason
    assert len(suites["SweepN"][1][1]) >= 2 and len(suites["SweepN"][1][2]) == len(suites["SweepN"][1][3]) == 1
    assert len(suites["SweepK"][1][2]) >= 2 and len(suites["SweepK"][1][1]) == len(suites["SweepK"][1][3]) == 1
    assert len(suites["SweepD"][1][3]) >= 2 and len(suites["SweepD"][1][1]) == len(suites["SweepD"][1][2]) == 1
    grid = suites["Grid"][1]
    assert len(grid[1]) * len(grid[2]) * len(grid[3]) >= 2
    assert suites["SweepN"][1][4] == ["float32"]
    assert suites["Dtype"][1][4] == ["float32", "float64"]
    assert set(suites["WarmUp"][1][0]) >= {"numba", "torch-cpu"}


@pytest.mark.parametrize("profile", ["fast", "default", "full"])
def test_design_is_a_latin_square_within_its_caps(profile):
    """Every pair of axes sees each pair of the design's levels at most once, and the square covers the levels."""
    from benchmarks.common import PROFILES, design_shapes

    shapes, levels = design_shapes(profile)
    spec = PROFILES[profile]["design"]
    assert len(shapes) >= spec["levels"] ** 2 * 3 // 4
    for a, b in ((0, 1), (0, 2), (1, 2)):
        pairs = [(s[a], s[b]) for s in shapes]
        assert len(pairs) == len(set(pairs))
    for axis in range(3):
        assert {s[axis] for s in shapes} == set(levels[axis])
    assert all(n * k * d <= spec["work_cap"] and n * d <= spec["rows_cap"] and k <= n for n, k, d in shapes)


def test_profiles_grow_from_fast_to_full():
    sizes = {}
    for profile in ("fast", "default", "full"):
        s = suite_params(profile)
        sizes[profile] = sum(len(s[c][1][1]) * len(s[c][1][2]) * len(s[c][1][3]) for c in s)
    assert sizes["fast"] < sizes["default"] < sizes["full"]


def test_unknown_profile_and_backend_are_named():
    for extra, needle in (({"KMBENCH_PROFILE": "quick"}, "KMBENCH_PROFILE='quick'"),
                          ({"KMBENCH_BACKENDS": "float32,cuda-magic"}, "'cuda-magic'")):
        out = subprocess.run([sys.executable, "-c", "import benchmarks.common"], cwd=ROOT,
                             env=dict(os.environ, **extra), capture_output=True, text=True, timeout=60)
        assert out.returncode != 0
        assert needle in out.stderr


def test_skip_reasons_come_from_the_backend_and_the_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("KMBENCH_SKIP_LOG", str(tmp_path / "skips.jsonl"))
    from benchmarks import common

    assert common.skip_reason("float32", 1000, 8, 4, "float32") is None
    loop = common.skip_reason("loop", 1_000_000, 64, 32, "float32")
    assert "too large for the pure-Python loop" in loop
    assert "does not support dtype=float32" in common.skip_reason("identity", 1000, 8, 4, "float32")
    huge = common.skip_reason("float32", 10**7, 4096, 1024, "float32")
    assert "profile's cap" in huge and common.PROFILE in huge
    with pytest.raises(NotImplementedError, match="pure-Python loop"):
        common.skip_if_unserved("SweepN", "loop", 1_000_000, 64, 32, "float32")
    logged = [json.loads(line) for line in (tmp_path / "skips.jsonl").read_text().splitlines()]
    assert logged == [{"benchmark": "SweepN", "params": ["loop", "1000000", "64", "32", "float32"], "reason": loop}]


def test_data_and_centres_are_generated_once_and_shared(tmp_path, monkeypatch):
    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path))
    from benchmarks import common

    monkeypatch.setattr(common, "_MEMO", {})
    X, C = common.dataset(500, 4, 3, "float32")
    assert X.shape == (500, 3) and C.shape == (4, 3) and X.dtype == C.dtype == "float32"
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    monkeypatch.setattr(common, "_MEMO", {})  # a new process: read back from disk, same numbers
    X2, C2 = common.dataset(500, 4, 3, "float32")
    assert (X2 == X).all() and (C2 == C).all()
    X64, C64 = common.dataset(500, 4, 3, "float64")
    assert (X64.astype("float32") == X).all() and len(list(tmp_path.glob("*.npz"))) == 1


@pytest.mark.slow
def test_bench_runs_saves_each_benchmark_records_skips_and_resumes(tmp_path):
    """The main command on a slice of the fast profile: saved per benchmark, n/a with reasons, resumable.

    It runs from an empty home, as on a newcomer's machine: nothing an earlier run left in
    ``~/.asv-machine.json`` or ``~/.cache`` may be needed (asv issue 944 broke exactly that).
    """
    results = tmp_path / "results"
    home = tmp_path / "home"
    home.mkdir()
    cmd = [sys.executable, "-m", "kmbench.cli", "bench", "--profile", "fast", "--results", str(results),
           "--bench", "SweepN.track_per_iter", "--no-report"]
    env = env_for("fast", KMBENCH_BACKENDS="loop,float32", HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert "[1/1] suites.SweepN.track_per_iter: saved" in first.stdout
    assert (tmp_path / "html" / "index.html").is_file()
    machine = json.loads((results / "kmbench-machine.json").read_text())
    assert machine["gemm_peak"]["float32"] > 0 and machine["gpu"]
    skips = [json.loads(line) for line in (results / "kmbench-skips.jsonl").read_text().splitlines()]
    assert any(s["params"][0] == "loop" and "pure-Python loop" in s["reason"] for s in skips), skips

    import itertools

    from asv.results import iter_results_for_machine_and_hash

    from kmbench.cli.bench import benchmark_list, head_commit

    params = benchmark_list(results)["suites.SweepN.track_per_iter"]["params"]
    [res] = list(iter_results_for_machine_and_hash(str(results), machine["machine"], head_commit(ROOT)))
    values = res.get_result_value("suites.SweepN.track_per_iter", params)
    cases = [(eval(b), int(n)) for b, n, *_ in itertools.product(*params)]
    by_case = dict(zip(cases, values))
    small, large = min(n for _, n in cases), max(n for _, n in cases)
    assert by_case[("float32", small)] > 0 and by_case[("float32", large)] > by_case[("float32", small)]
    assert by_case[("loop", large)] != by_case[("loop", large)]  # NaN: asv's "n/a" for a skipped case

    assert not (home / ".asv-machine.json").exists()  # the user's home is left as it was

    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    assert "already saved" in again.stdout


def test_results_folder_of_another_profile_is_refused(tmp_path):
    from kmbench.cli.bench import check_state, save_state

    save_state(tmp_path, "default", "abc123", ["suites.SweepN.track_per_iter"])
    check_state(tmp_path, "default")
    with pytest.raises(ValueError, match="profile 'default', not 'fast'"):
        check_state(tmp_path, "fast")


def test_dashboard_is_pointed_at_local_scripts(tmp_path):
    from kmbench.cli.bench import VENDORED, localise_dashboard

    page = tmp_path / "index.html"
    page.write_text(
        '<script src="https://code.jquery.com/jquery-3.3.1.min.js" integrity="sha256-x" crossorigin="anonymous" '
        'onerror="js_load_failure()"></script>\n'
        '<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css">\n'
        '<script src="https://example.org/new-in-a-later-asv.js"></script>\n'
        '<a href="https://github.com/airspeed-velocity/asv/">asv</a>\n')
    unknown = localise_dashboard(tmp_path, ROOT)
    text = page.read_text()
    assert '<script src="vendor/jquery.min.js"></script>' in text
    assert '<link rel="stylesheet" href="vendor/bootstrap.min.css">' in text
    assert unknown == ["https://example.org/new-in-a-later-asv.js"]
    assert 'href="https://github.com/airspeed-velocity/asv/"' in text  # links are not scripts
    for local in set(VENDORED.values()):
        assert (tmp_path / "vendor" / local).is_file(), local
    assert localise_dashboard(tmp_path, ROOT) == unknown and page.read_text() == text  # idempotent


def test_dashboard_links_its_own_stylesheet_once(tmp_path):
    from kmbench.cli.bench import OWN_STYLE, localise_dashboard

    page = tmp_path / "index.html"
    page.write_text("<html><head><title>asv</title></head><body></body></html>")
    for _ in range(2):
        localise_dashboard(tmp_path, ROOT)
    assert page.read_text().count(f'href="{OWN_STYLE}"') == 1
    assert "min-width" in (tmp_path / OWN_STYLE).read_text()


def test_machine_description_is_saved_once_with_a_measured_peak(tmp_path, monkeypatch):
    import kmbench.bench.machine as machine

    calls, bw_calls = [], []
    real, real_bw = machine.gemm_peak, machine.memory_bandwidth
    monkeypatch.setattr(machine, "gemm_peak", lambda **kw: calls.append(kw) or real(size=256, repeats=2, **kw))
    monkeypatch.setattr(machine, "memory_bandwidth",
                        lambda **kw: bw_calls.append(kw) or real_bw(mib=16, repeats=2, **kw))
    monkeypatch.setattr(machine, "gpu_name", lambda: "none")
    path = machine.save_machine(tmp_path)
    info = machine.load_machine(tmp_path)
    assert path.name == "kmbench-machine.json" and len(calls) == len(bw_calls) == 1
    assert info["gemm_peak"]["float32"] > 0 and info["cores"] >= 1 and info["memory_bytes"] > 0
    assert info["memory_bandwidth"]["GB/s"] > 0 and info["memory_bandwidth"]["threads"] >= 1
    assert info["versions"]["numpy"] and info["blas"] and info["gpu"] == "none"
    # keyed by host and CPU: cloud hosts share names across CPUs
    assert info["machine"] == machine.machine_id() and info["machine"].endswith(info["cpu_tag"])
    machine.save_machine(tmp_path)  # again: the stored ceilings are reused, not measured twice
    assert len(calls) == len(bw_calls) == 1
    written = json.loads(machine.write_asv_machine_file(tmp_path / "home", info).read_text())
    entry = written[info["machine"]]
    assert written["version"] == 1 and entry["machine"] == info["machine"] and "GPU: none" in entry["cpu"]
    with pytest.raises(ValueError, match="size=4 should be >= 16"):
        real(size=4)
