"""The cost model (kmbench.advise.costmodel) and the shape design (kmbench.advise.design)."""
import math

import numpy as np
import pytest

from kmbench.advise import costmodel as cm
from kmbench.advise.design import latin_shapes

SHAPES = latin_shapes(24, n=(1_000, 1_000_000), k=(2, 1024), d=(2, 256), work_cap=1e10, seed=3)


def synthetic(backend, coef, shapes=SHAPES, noise=0.0, seed=0, call=None, dtype="float32"):
    rng = np.random.default_rng(seed)
    rows = []
    for n, k, d in shapes:
        t = float(cm.features(n, k, d)[0] @ np.asarray(coef)) * math.exp(noise * rng.standard_normal())
        row = {"backend": backend, "n": n, "k": k, "d": d, "dtype": dtype, "per_iter": t}
        if call is not None:
            row["per_call"] = float(cm.features(n, k, d)[0] @ np.asarray(call))
        rows.append(row)
    return rows


#             call   n      nd     nkd     nk     kd    kk
GEMMISH = [2e-4, 0.0, 1e-9, 5e-12, 1e-10, 0.0, 0.0]
FUSED = [2e-5, 3e-10, 1e-10, 2e-11, 0.0, 1e-9, 1e-10]


def test_features_are_the_terms_work():
    f = cm.features(1000, 8, 4)
    assert f.shape == (1, len(cm.TERMS))
    assert dict(zip(cm.TERMS, f[0])) == {"call": 1, "n": 1000, "nd": 4000, "nkd": 32000, "nk": 8000, "kd": 32,
                                         "kk": 64}


def test_exact_data_is_recovered_and_extrapolates():
    model = cm.fit_one(synthetic("a", GEMMISH), "a", "float32")
    for shape in [(5_000_000, 3, 2), (20_000, 4096, 512), (1_000, 2, 2)]:  # all outside the recorded box
        truth = cm.features(*shape)[0] @ GEMMISH
        assert model.per_iter(*shape) == pytest.approx(truth, rel=1e-3)
    assert np.abs(model.loo).max() < 1e-3


def test_loo_error_grows_with_noise():
    clean = cm.validate(synthetic("a", FUSED))["backends"][("a", "float32")]
    noisy = cm.validate(synthetic("a", FUSED, noise=0.3))["backends"][("a", "float32")]
    assert clean["median"] < 1.001
    assert noisy["median"] > 1.05 and noisy["worst"] >= noisy["median"]
    assert noisy["shapes"] == len(SHAPES)


def test_pick_follows_the_crossing_costs():
    records = synthetic("gemm", GEMMISH) + synthetic("fused", FUSED)
    models = cm.fit(records)
    small_d, big = (2_000_000, 4, 2), (20_000, 2048, 256)
    truth = {s: min(("gemm", GEMMISH), ("fused", FUSED), key=lambda b: cm.features(*s)[0] @ b[1])[0]
             for s in (small_d, big)}
    assert truth[small_d] != truth[big]  # the two backends really cross
    for s in (small_d, big):
        assert cm.rank(models, *s, "float32")[0]["backend"] == truth[s]
    picks = cm.validate(records)["picks"]["float32"]
    assert picks["worst_regret"] == pytest.approx(1.0)
    assert picks["shapes"] == len(SHAPES)


def test_interval_contains_prediction_and_widens_away_from_records():
    model = cm.fit_one(synthetic("a", FUSED, noise=0.2), "a", "float32")
    near, far = SHAPES[5], (50_000_000, 3, 2)
    for shape in (near, far):
        low, high = model.interval(*shape)
        assert low < model.per_iter(*shape) < high
    assert model.spread(*far) > model.spread(*near)
    assert model.outside(*far) and not model.outside(*near)


def test_per_call_part_and_whole_fit():
    call = [1e-3, 0.0, 1e-9, 5e-12, 0.0, 0.0, 0.0]
    models = cm.fit(synthetic("a", GEMMISH, call=call))
    entry = cm.rank(models, 100_000, 100, 300, "float32", max_iter=300)[0]
    truth_call = cm.features(100_000, 100, 300)[0] @ call
    assert entry["per_call"] == pytest.approx(truth_call, rel=1e-3)
    slope = max(entry["per_iter"] - truth_call / 10, entry["per_iter"] / 3)
    assert entry["total"] == pytest.approx(truth_call + 300 * slope)
    no_call = cm.fit(synthetic("a", GEMMISH))
    assert cm.rank(no_call, 100_000, 100, 300, "float32")[0]["per_call"] is None


def test_scaled_model_moves_each_kind_of_work():
    model = cm.fit_one(synthetic("a", GEMMISH), "a", "float32")
    faster = model.scaled({"nkd": 2.0})
    shape = (100_000, 1000, 500)
    terms, moved = model.terms(*shape), faster.terms(*shape)
    assert moved["nkd"] == pytest.approx(terms["nkd"] / 2)
    assert moved["nd"] == pytest.approx(terms["nd"])


def test_bad_records_are_ignored_or_named():
    rows = synthetic("a", FUSED)[:4] + [{"backend": "a", "n": 10, "k": 2, "d": 2, "dtype": "float32",
                                          "per_iter": 0.0}, {"backend": "b", "per_iter": 1.0}]
    assert set(cm.group(rows)) == {("a", "float32")}
    with pytest.raises(ValueError, match="no positive per_iter"):
        cm.fit_one([{"n": 10, "k": 2, "d": 2, "per_iter": -1.0}], "z", "float32")


def test_design_spreads_within_caps_and_is_repeatable():
    shapes = latin_shapes(16, n=(1_000, 2_000_000), k=(2, 2048), d=(2, 512), work_cap=3e8, rows_cap=1e7, seed=0)
    assert shapes == latin_shapes(16, n=(1_000, 2_000_000), k=(2, 2048), d=(2, 512), work_cap=3e8,
                                  rows_cap=1e7, seed=0)
    assert len(shapes) >= 14  # rounding may merge a pair, no more
    for n, k, d in shapes:
        assert 1_000 <= n <= 2_000_000 and 2 <= k <= min(n, 2048) and 2 <= d <= 512
        assert n * k * d <= 3e8 and n * d <= 1e7
    # every axis is spread: each half of its log range holds shapes
    logs = np.log(np.array(shapes, float))
    for axis, (lo, hi) in enumerate([(1e3, 2e6), (2, 2048), (2, 512)]):
        mid = (math.log(lo) + math.log(hi)) / 2
        assert (logs[:, axis] < mid).sum() >= 3 and (logs[:, axis] > mid).sum() >= 3


def test_design_rejects_bad_ranges():
    with pytest.raises(ValueError, match="count=0"):
        latin_shapes(0)
    with pytest.raises(ValueError, match=r"k=\(5, 2\)"):
        latin_shapes(4, k=(5, 2))
    with pytest.raises(ValueError, match="work_cap"):
        latin_shapes(4, n=(1_000, 10_000), work_cap=10)


def _table(rows, machine="m1"):
    import pandas as pd

    out = []
    for r in rows:
        for metric in ("per_iter", "per_call"):
            if metric in r:
                out.append({"benchmark": f"suites.Design.track_{metric}", "metric": metric, "backend": r["backend"],
                            "n": r["n"], "k": r["k"], "d": r["d"], "dtype": r["dtype"], "value": r[metric],
                            "source": "asv", "machine": machine})
    return pd.DataFrame(out)


def test_predict_ranks_from_a_tidy_table_and_says_how():
    from kmbench.advise import predict

    rows = synthetic("gemm", GEMMISH, call=[1e-3, 0, 0, 0, 0, 0, 0]) + synthetic("fused", FUSED)
    recs = predict.records(_table(rows), "float32")
    assert len(recs) == len(rows)
    ranking = predict.entries(recs, 20_000, 2048, 256, "float32", ["gemm", "fused"], max_iter=300)
    assert [r["backend"] for r in ranking] == ["gemm", "fused"]
    top = ranking[0]
    assert top["low"] < top["per_iter"] < top["high"] and top["basis"] == "model"
    assert top["per_call"] == pytest.approx(1e-3, rel=1e-3)
    assert "extrapolated" in top["how"] and "d" in top["how"]
    n, k, d = SHAPES[3]
    at_record = predict.entries(recs, n, k, d, "float32", ["gemm"])[0]
    assert at_record["basis"] == "recorded"
    assert at_record["per_iter"] == pytest.approx(float(cm.features(n, k, d)[0] @ GEMMISH))


def test_machines_side_by_side_normalises_by_ceilings():
    from kmbench.advise import machines

    slow = synthetic("gemm", GEMMISH)
    fast = [dict(r, per_iter=r["per_iter"] / 2) for r in slow]
    desc = {"m1": {"gemm_peak": {"float32": 100.0}, "memory_bandwidth": {"GB/s": 10.0}},
            "m2": {"gemm_peak": {"float32": 200.0}, "memory_bandwidth": {"GB/s": 20.0}}}
    frame = machines.side_by_side({"m1": _table(slow, "m1"), "m2": _table(fast, "m2")}, desc)
    assert len(frame) == len(SHAPES)
    [row] = machines.summary(frame, ["m1", "m2"])
    assert row["time a/b"] == pytest.approx(2.0)
    # twice the speed on twice the ceilings: the same fraction of each
    assert row["gemm % b/a"] == pytest.approx(1.0) and row["bandwidth % b/a"] == pytest.approx(1.0)
    factors, how = machines.scale_factors(desc["m1"], desc["m2"])
    assert factors["nkd"] == 2.0 and factors["nd"] == 2.0 and "call" not in factors and "bandwidth x2" in how
    factors, how = machines.scale_factors(desc["m1"], {"gemm_peak": {"float32": 50.0}})
    assert factors["nd"] == 0.5 and "not measured" in how
    assert machines.scale_factors(desc["m1"], {})[0] is None


def test_a_dtype_recorded_at_one_shape_borrows_the_other_dtypes_model():
    from kmbench.advise import predict

    f32 = synthetic("a", GEMMISH)
    n0, k0, d0 = SHAPES[10]
    f64 = [{"backend": "a", "n": n0, "k": k0, "d": d0, "dtype": "float64",
            "per_iter": 2 * float(cm.features(n0, k0, d0)[0] @ GEMMISH)}]
    recs = predict.records(_table(f32 + f64))
    far = (20_000, 2048, 256)
    [entry] = predict.entries(recs, *far, "float64", ["a"])
    assert entry["per_iter"] == pytest.approx(2 * float(cm.features(*far)[0] @ GEMMISH), rel=1e-3)
    assert entry["how"].startswith("float32 cost model of 24 recorded shapes times 2")
    # alone, one shape says nothing about the terms: time proportional to n*k*d
    alone = cm.fit_one(f64, "a", "float64")
    assert alone.per_iter(2 * n0, k0, d0) == pytest.approx(2 * f64[0]["per_iter"])


def test_the_gemm_rate_puts_a_floor_under_the_distance_term():
    # times with no n*k*d part at all: unconstrained, the fit makes the distances free
    rows = synthetic("a", [1e-4, 1e-8, 1e-9, 0.0, 1e-10, 0.0, 0.0])
    assert cm.fit_one(rows, "a", "float32").coef[cm.TERMS.index("nkd")] < 1e-20
    floor = cm.floors_for(100.0)["nkd"]
    assert floor == pytest.approx(1e-11) and cm.floors_for(100.0, "float64")["nkd"] == pytest.approx(2e-11)
    bounded = cm.fit(rows, gemm_gflops=100.0)[("a", "float32")]
    assert bounded.coef[cm.TERMS.index("nkd")] >= floor
    assert cm.floors_for(None) == {}
