"""``kmbench recommend`` and ``backend="auto"``: ranking from recorded results, from a trial, and auto's choice.

Recorded results are saved through asv's own API (``test_report.write_asv_results``).
The ranking tests store chosen times, so the expected order is known; the trial tests
time real backends and assert only what holds whatever the machine's load.
"""
from __future__ import annotations

import json

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
    monkeypatch.setenv("KMBENCH_ARCHIVES", str(tmp_path / "no-archives"))
    return tmp_path


def test_recorded_shape_uses_the_recorded_time(recorded):
    ranking = recommend.rank_recorded(1_000, 4, 4, "float64")
    assert [r["backend"] for r in ranking] == ["broadcast", "identity", "loop"]
    best = ranking[0]
    assert best["per_iter"] == pytest.approx(chosen_time("broadcast", 1_000, 4, 4))
    assert best["points"][0][:3] == (1_000, 4, 4) and best["how"] == "recorded at this shape (asv)"
    assert best["source"] == "asv" and best["basis"] == "recorded"
    # the reason states the lead over the next backend, from the same numbers
    lead = chosen_time("identity", 1_000, 4, 4) / chosen_time("broadcast", 1_000, 4, 4)
    assert f"{lead:.2g}x faster than identity" in best["reason"]


def test_large_shape_ranks_the_other_way_and_skips_what_refuses_it(recorded):
    ranking = recommend.rank_recorded(100_000, 64, 32, "float64")
    # loop's skip() refuses n*k*d = 2e8 > 1e7, whatever was recorded for it elsewhere
    assert [r["backend"] for r in ranking] == ["identity", "broadcast"]


def test_between_and_beyond_the_grid_the_cost_model_holds(recorded):
    # the chosen times are a per-call cost plus a cost per n*k*d: the model's own form, so it is exact
    for n, k, d in [(10_000, 16, 8), (10_000_000, 64, 32), (300, 2, 2)]:
        ranking = recommend.rank_recorded(n, k, d, "float64")
        for r in ranking:
            assert r["per_iter"] == pytest.approx(chosen_time(r["backend"], n, k, d), rel=1e-3)
            assert r["low"] < r["per_iter"] < r["high"] and r["basis"] == "model"
            assert r["how"].startswith(f"cost model of {len(GRID)} recorded shapes (asv; leave-one-out error")
    far = recommend.rank_recorded(10_000_000, 64, 32, "float64")
    assert far[0]["backend"] == "identity"  # broadcast refuses it: its (n, k, d) temporary
    assert "extrapolated (n outside the recorded range)" in far[0]["how"]
    # the interval widens away from the records
    near = recommend.rank_recorded(10_000, 16, 8, "float64")[0]
    assert far[0]["high"] / far[0]["low"] > near["high"] / near["low"]


def test_ranking_by_a_whole_fit_counts_the_per_call_part(recorded):
    ranking = recommend.rank_recorded(10_000, 16, 8, "float64", max_iter=300)
    for r in ranking:
        slope = max(r["per_iter"] - r["per_call"] / 10, r["per_iter"] / 3)  # a run of 10 holds the per-call part
        assert r["total"] == pytest.approx(r["per_call"] + 300 * slope)
        assert r["per_call_basis"] == "assumed"  # the fixture records no per-call times
    assert "for 300 iterations" in ranking[0]["reason"]


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
    ranking = trials.rank_measured(3_000, 4, 3, "float64", names=["identity", "broadcast"], iters=3,
                                      progress=False)
    assert sorted(r["backend"] for r in ranking) == ["broadcast", "identity"]
    assert ranking[0]["per_iter"] <= ranking[1]["per_iter"]
    assert all(r["per_iter"] > 0 and r["basis"] == "measured" for r in ranking)
    assert all(r["per_call"] >= 0 and "run timed at 1 and 3 iterations" in r["how"] for r in ranking)
    assert all(r["points"][0][0] == 3_000 for r in ranking)  # small enough to run whole
    lines = [json.loads(line) for line in trial_cache_path().read_text().splitlines()]
    assert {line["backend"] for line in lines} == {"identity", "broadcast"}
    assert all(line["per_call"] >= 0 for line in lines)
    # the cached trial is now this machine's record: auto picks the trial's winner
    recorded = recommend.rank_recorded(3_000, 4, 3, "float64")
    assert recorded[0]["source"] == "trial"
    assert recorded[0]["backend"] == ranking[0]["backend"]
    assert choice.choose(3_000, 4, 3, "float64")[0] == ranking[0]["backend"]


def test_trial_of_a_huge_shape_subsamples_n_and_scales_linearly(nothing_recorded):
    n = 10_000_000
    (entry,) = trials.rank_measured(n, 4, 2, "float64", names=["identity"], iters=2, max_work=2e4,
                                       progress=False, cache=False)
    rows, _, _, measured = entry["points"][0]
    assert rows < n
    if "scaled linearly in n through timings" in entry["how"]:  # a fixed cost plus a cost per row
        assert measured < entry["per_iter"] <= measured * n / rows
    else:
        assert entry["per_iter"] == pytest.approx(measured * n / rows)
    assert f"a subsample of n={n}" in entry["how"] and "scaled" in entry["how"]


def test_trial_skips_backends_that_refuse_the_shape(nothing_recorded):
    ok, refused = recommend.candidates(10_000_000, 64, 32, "float64", None, ["loop", "identity", "float32"])
    assert ok == ["identity"]
    assert "n*k*d too large" in refused["loop"] and "float32" in refused["float32"]


def test_recommend_command_prints_a_ranking(nothing_recorded, capsys):
    from kmbench.cli import main

    code = main(["recommend", "--n", "4000", "--k", "8", "--d", "4", "--backend", "identity",
                 "--backend", "broadcast", "--iters", "3"])
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


def test_recommend_json_and_validate(recorded, capsys):
    from kmbench.cli import main

    assert main(["recommend", "--n", "20000", "--k", "16", "--d", "8", "--json", "--max-iter", "50"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 20000 and out["max_iter"] == 50 and out["why"] == "from recorded results"
    first = out["ranking"][0]
    best = min(("identity", "broadcast"), key=lambda b: chosen_time(b, 20000, 16, 8))
    assert first["backend"] == best and first["basis"] == "model"
    low, high = first["interval"]
    assert low < first["per_iter"] < high
    slope = max(first["per_iter"] - first["per_call"] / 10, first["per_iter"] / 3)
    assert first["total"] == pytest.approx(first["per_call"] + 50 * slope)

    assert main(["recommend", "--validate"]) == 0
    text = capsys.readouterr().out
    assert "Leave-one-out validation" in text and "identity" in text and "median error" in text
    assert main(["recommend", "--validate", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    rows = {r["backend"]: r for r in figures["backends"]}
    # the recorded times are the model's own form: left-out shapes are predicted almost exactly
    assert rows["identity"]["median"] < 1.01 and rows["identity"]["shapes"] == len(GRID)
    assert figures["picks"]["float64"]["worst_regret"] == pytest.approx(1.0)


def test_recommend_without_a_shape_says_what_is_missing(recorded, capsys):
    from kmbench.cli import main

    assert main(["recommend", "--n", "100"]) == 2
    assert "--k, --d required (or --validate)" in capsys.readouterr().err


def test_a_machine_without_records_ranks_from_another_scaled_by_ceilings(nothing_recorded, monkeypatch, capsys):
    import pandas as pd

    from kmbench.bench.machine import machine_id

    other = nothing_recorded / "no-archives" / "machines" / "otherbox"
    other.mkdir(parents=True)
    rows = [{"benchmark": "suites.Grid.track_per_iter", "metric": "per_iter", "backend": b, "n": n, "k": k,
             "d": d, "dtype": "float64", "value": chosen_time(b, n, k, d), "machine": "otherbox", "source": "asv"}
            for b in ("identity", "broadcast") for n, k, d in GRID]
    pd.DataFrame(rows).to_csv(other / "results.csv", index=False)
    (other / "machine.json").write_text(json.dumps({"machine": "otherbox", "gemm_peak": {"float32": 100.0},
                                                    "memory_bandwidth": {"GB/s": 10.0}}))
    # this machine's ceilings, as a first `kmbench recommend` would have measured them: twice the other's
    cache = nothing_recorded / "cache"
    cache.mkdir()
    (cache / "machine.json").write_text(json.dumps({"machine": machine_id(), "gemm_peak": {"float32": 200.0},
                                                    "memory_bandwidth": {"GB/s": 20.0}}))
    ranking = recommend.rank_scaled(100_000, 64, 32, "float64")
    assert ranking[0]["backend"] == "identity"
    # every term twice as fast here, so half the other machine's time
    assert ranking[0]["per_iter"] == pytest.approx(chosen_time("identity", 100_000, 64, 32) / 2, rel=0.02)
    assert ("from otherbox's records, scaled by the two machines' measured ceilings: GEMM rate x2, memory "
            "bandwidth x2") in ranking[0]["how"]
    assert choice.choose(100_000, 64, 32, "float64")[1].startswith("ranked by another machine's records")
    from kmbench.cli import main

    assert main(["recommend", "--n", "100000", "--k", "64", "--d", "32"]) == 0
    assert "from another machine's records, scaled by the two machines' measured ceilings" in capsys.readouterr().out


def test_recommend_check_measures_unseen_shapes_against_the_ranking(recorded, capsys, tmp_path):
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks import recommend_check

    out = tmp_path / "figures.json"
    assert recommend_check.main(["--shapes", "3000x4x3,2000x8x5", "--backends", "identity,broadcast",
                                 "--dtype", "float64", "--repeats", "1", "--results", str(recorded),
                                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pick within 10% of the fastest:" in text and "backend='auto' made the same choice at 2 of 2" in text
    figures = json.loads(out.read_text())
    assert [tuple(f["shape"]) for f in figures] == [(3000, 4, 3), (2000, 8, 5)]
    for f in figures:
        assert f["regret"] >= 1.0 and set(f["measured"]) == {"identity", "broadcast"}


def test_recommend_check_measures_each_backend_in_its_own_process(tmp_path, capsys):
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks import recommend_check

    out = tmp_path / "rows.jsonl"
    assert recommend_check.main(["--shapes", "2000x3x4", "--backends", "identity,torch-cuda", "--repeats", "1",
                                 "--dtype", "float64", "--record", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["backend"] == "identity" and rows[0]["process"] == "own"
    assert rows[0]["per_iter"] > 0 and rows[0]["n"] == 2000
    from kmbench.core.kmeans import backends

    if not next(r for r in backends() if r["name"] == "torch-cuda")["available"]:
        # the child's reason comes back as a skip, not a crash
        assert len(rows) == 1 and "torch-cuda n=2000 k=3 d=4: skipped:" in capsys.readouterr().err
