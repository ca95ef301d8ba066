"""``kmbench recommend`` and ``backend="auto"``: ranking from recorded results, from a trial, and auto's choice.

Recorded results are saved through asv's own API (``test_report.write_asv_results``).
The ranking tests store chosen times, so the expected order is known; the trial tests
time real backends and assert only what holds whatever the machine's load.
"""
from __future__ import annotations

import json
import math

import pytest

import kmbench
import kmbench.advise.auto as choice
import kmbench.advise.ranking as recommend
import kmbench.advise.trials as trials
from kmbench.bench.records import trial_cache_path
from test_report import write_asv_results

#: chosen seconds per iteration: broadcast leads at small work, identity at large, loop is slow
GRID = [(n, k, d) for n in (1_000, 100_000) for k in (4, 64) for d in (4, 32)]


def chosen_time(backend: str, n: int, k: int, d: int) -> float:
    work = n * k * d
    return {"identity": 2e-4 + work * 1e-9, "broadcast": 5e-5 + work * 4e-9, "loop": work * 1e-7}[backend]


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    """A results folder for this host, and the environment pointing ``auto`` at it."""
    import platform

    per_iter = {(b, n, k, d, "float64"): chosen_time(b, n, k, d)
                for b in ("identity", "broadcast", "loop") for n, k, d in GRID}
    results_dir = write_asv_results(tmp_path / "results", platform.node(),
                                    {"suites.Grid.track_per_iter": ("track", "seconds", per_iter)})
    monkeypatch.setenv("KMBENCH_RESULTS", str(results_dir))
    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path / "cache"))
    return results_dir


@pytest.fixture
def nothing_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("KMBENCH_RESULTS", str(tmp_path / "no-results"))
    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_recorded_shape_uses_the_recorded_time(recorded):
    ranking = recommend.rank_recorded(1_000, 4, 4, "float64")
    assert [r["backend"] for r in ranking] == ["broadcast", "identity", "loop"]
    best = ranking[0]
    assert best["per_iter"] == pytest.approx(chosen_time("broadcast", 1_000, 4, 4))
    assert best["points"][0][:3] == (1_000, 4, 4) and best["how"] == "recorded at this shape"
    assert best["source"] == "asv" and best["basis"] == "recorded"
    # the reason states the lead over the next backend, from the same numbers
    lead = chosen_time("identity", 1_000, 4, 4) / chosen_time("broadcast", 1_000, 4, 4)
    assert f"{lead:.2g}x faster than identity" in best["reason"]


def test_large_shape_ranks_the_other_way_and_skips_what_refuses_it(recorded):
    ranking = recommend.rank_recorded(100_000, 64, 32, "float64")
    # loop's skip() refuses n*k*d = 2e8 > 1e7, whatever was recorded for it elsewhere
    assert [r["backend"] for r in ranking] == ["identity", "broadcast"]


def test_between_grid_points_interpolates_from_the_nearest_in_log_space(recorded):
    n, k, d = 10_000, 16, 8  # the log-space centre of the grid: every corner is equally near
    ranking = recommend.rank_recorded(n, k, d, "float64")
    identity = next(r for r in ranking if r["backend"] == "identity")
    assert len(identity["points"]) == recommend.NEIGHBOURS
    assert identity["how"].startswith("interpolated from the 4 nearest")
    # the estimate lies within what the points used say per unit of work
    rates = [p[3] / (p[0] * p[1] * p[2]) for p in identity["points"]]
    assert min(rates) * n * k * d <= identity["per_iter"] <= max(rates) * n * k * d
    # far outside the grid the ranking says it extrapolates
    far = recommend.rank_recorded(10_000_000, 64, 32, "float64")
    assert far[0]["how"].startswith("extrapolated from the 4 nearest recorded shapes (n outside")


def test_estimate_is_exact_at_a_point_and_linear_in_work_along_one_axis():
    points = [(1000, 8, 8, 0.01), (4000, 8, 8, 0.04)]
    assert recommend.estimate(points, 1000, 8, 8)[0] == 0.01
    value, used, nearest = recommend.estimate(points, 2000, 8, 8)
    assert value == pytest.approx(0.02) and nearest == pytest.approx(math.log(2))


def test_recorded_quality_failure_is_shown_but_not_eligible(recorded, tmp_path, monkeypatch):
    import platform

    per_iter = {(b, n, k, d, "float64"): chosen_time(b, n, k, d)
                for b in ("identity", "broadcast") for n, k, d in GRID}
    error = {("broadcast", 1_000, 4, 4, "float64"): 1e-3, ("identity", 1_000, 4, 4, "float64"): 1e-16}
    results_dir = write_asv_results(tmp_path / "bad", platform.node(), {
        "suites.Grid.track_per_iter": ("track", "seconds", per_iter),
        "suites.Quality.track_inertia_rel_error": ("track", "relative", error)})
    monkeypatch.setenv("KMBENCH_RESULTS", str(results_dir))
    ranking = recommend.rank_recorded(1_000, 4, 4, "float64")
    assert [(r["backend"], r["eligible"]) for r in ranking] == [("identity", True), ("broadcast", False)]
    assert "inertia error 1.0e-03" in ranking[1]["note"]
    assert choice.choose(1_000, 4, 4, "float64")[0] == "identity"


def test_other_dtype_and_other_machine_are_not_used(recorded, tmp_path, monkeypatch):
    assert recommend.rank_recorded(1_000, 4, 4, "float32") == []
    other = write_asv_results(tmp_path / "other", "not-this-host-a", {
        "suites.Grid.track_per_iter": ("track", "seconds", {("identity", 1000, 4, 4, "float64"): 0.1})})
    write_asv_results(other, "not-this-host-b", {
        "suites.Grid.track_per_iter": ("track", "seconds", {("identity", 1000, 4, 4, "float64"): 0.1})})
    monkeypatch.setenv("KMBENCH_RESULTS", str(other))
    assert recommend.rank_recorded(1_000, 4, 4, "float64") == []  # two machines, neither this one


def test_auto_records_its_choice_and_it_is_the_rankings_first(recorded):
    from kmbench.check.data import blobs

    X, _ = blobs(1_000, 4, 4, seed=0)
    result = kmbench.fit(X, 4, max_iter=3, tol=-1.0)
    ranking = recommend.rank_recorded(1_000, 4, 4, "float64")
    assert result.backend == ranking[0]["backend"] == "broadcast"
    assert result.info["auto"] == "ranked by recorded results: " + ranking[0]["reason"]
    big = choice.choose(100_000, 64, 32, "float64")
    assert big[0] == "identity" and "recorded" in big[1]


def test_auto_without_records_never_measures(nothing_recorded, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("auto must not run a trial inside fit")

    monkeypatch.setattr(trials, "rank_measured", refuse)
    name, reason = choice.choose(2_000, 8, 4, "float64")
    ok, _ = recommend.candidates(2_000, 8, 4, "float64", None, [name])
    assert ok == [name] and name in choice.fallback()
    assert reason.startswith("no recorded results for this machine")
    # a float64-only backend is never picked for float32 data, and vice versa
    name32, _ = choice.choose(2_000, 8, 4, "float32")
    from kmbench.core.kmeans import backend_class

    assert "float32" in backend_class(name32).dtypes


def test_trial_ranks_real_backends_caches_them_and_auto_uses_the_cache(nothing_recorded):
    ranking = trials.rank_measured(3_000, 4, 3, "float64", names=["identity", "broadcast"], iters=2,
                                      progress=False)
    assert sorted(r["backend"] for r in ranking) == ["broadcast", "identity"]
    assert ranking[0]["per_iter"] <= ranking[1]["per_iter"]
    assert all(r["per_iter"] > 0 and r["basis"] == "measured" for r in ranking)
    assert all(r["points"][0][0] == 3_000 for r in ranking)  # small enough to run whole
    lines = [json.loads(line) for line in trial_cache_path().read_text().splitlines()]
    assert {line["backend"] for line in lines} == {"identity", "broadcast"}
    # the cached trial is now this machine's record: auto picks the trial's winner
    recorded = recommend.rank_recorded(3_000, 4, 3, "float64")
    assert recorded[0]["source"] == "trial"
    assert recorded[0]["backend"] == ranking[0]["backend"]
    assert choice.choose(3_000, 4, 3, "float64")[0] == ranking[0]["backend"]


def test_trial_of_a_huge_shape_subsamples_n_and_scales_linearly(nothing_recorded):
    n = 10_000_000
    (entry,) = trials.rank_measured(n, 4, 2, "float64", names=["identity"], iters=1, max_work=2e4,
                                       progress=False, cache=False)
    rows, _, _, measured = entry["points"][0]
    assert rows < n
    assert entry["per_iter"] == pytest.approx(measured * n / rows)
    assert f"a subsample of n={n}" in entry["how"] and "scaled" in entry["how"]


def test_trial_skips_backends_that_refuse_the_shape(nothing_recorded):
    ok, refused = recommend.candidates(10_000_000, 64, 32, "float64", None, ["loop", "identity", "float32"])
    assert ok == ["identity"]
    assert "n*k*d too large" in refused["loop"] and "float32" in refused["float32"]


def test_recommend_command_prints_a_ranking(nothing_recorded, capsys):
    from kmbench.cli import main

    code = main(["recommend", "--n", "4000", "--k", "8", "--d", "4", "--backend", "identity",
                 "--backend", "broadcast", "--iters", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "No recorded results for this machine and dtype; measuring a short trial instead." in out
    assert "Backends for n=4000, k=8, d=4, float64" in out
    assert "identity" in out and "broadcast" in out and "Recommendation:" in out


def test_recommend_command_names_bad_values(nothing_recorded, capsys):
    from kmbench.cli import main

    assert main(["recommend", "--n", "5", "--k", "10", "--d", "2"]) == 2
    assert "--k=10 must be <= --n=5" in capsys.readouterr().err
    assert main(["recommend", "--n", "0", "--k", "1", "--d", "2"]) == 2
    assert "n" in capsys.readouterr().err
