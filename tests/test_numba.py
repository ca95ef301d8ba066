"""The numba backend: both strategies and the tiles against the oracle, ties, the blocked path, the plan,
compilation."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import kmbench  # noqa: E402
import kmbench.check.data as data  # noqa: E402
import kmbench.check.oracle as oracle  # noqa: E402
from kmbench.check.crosscheck import compare  # noqa: E402
from kmbench.core.kmeans import create, execute  # noqa: E402
from kmbench.core.seeding import initial_centers  # noqa: E402

STRATEGIES = [{"strategy": "fused"}, {"strategy": "fused", "panels": False}, {"strategy": "gemm", "chunk": 97},
              {"strategy": "rowdot"}, {"strategy": "stream"}, {"strategy": "grouped"},
              {"strategy": "grouped", "panels": False}, {"strategy": "pruned"}]
DTYPES = ["float64", "float32"]


def judged(X, k, init, dtype, options, max_iter=10, tol=-1.0):
    """Run numba and the oracle from the same centres; return (result, comparison)."""
    Xd = np.asarray(X, dtype=dtype)
    centers = initial_centers(Xd, k, init, 0)
    result = kmbench.fit(Xd, k, backend="numba", init=centers, max_iter=max_iter, tol=tol, **options)
    reference = oracle.lloyd(Xd, centers, max_iter, tol)
    return result, compare(result, reference, Xd, dtype)


@pytest.mark.parametrize("options", STRATEGIES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("dtype", DTYPES)
def test_agrees_with_oracle_on_blobs(dtype, options):
    # n not a multiple of the 16- or 8-row tile, k not a multiple of the 6-centre group: both remainders run.
    X, _ = data.blobs(1003, 7, 20, seed=3)
    result, c = judged(X, 20, "k-means++", dtype, options)
    assert c.status == "ok", c
    assert result.info["strategy"] == options["strategy"]
    if options["strategy"] == "fused":
        assert result.info["panels"] is options.get("panels", True)
    assert result.n_iter == 10 and result.dtype == dtype
    assert result.labels.dtype == np.int32
    # The step hands the driver per-thread sums of the distances: their total is each step's inertia.
    reference = oracle.lloyd(np.asarray(X, dtype=dtype), initial_centers(np.asarray(X, dtype=dtype), 20,
                                                                         "k-means++", 0), 10, -1.0)
    np.testing.assert_allclose(result.inertia_history, reference.inertia_history, rtol=1e-5)


@pytest.mark.parametrize("k", [2, 3, 5, 6, 7])
@pytest.mark.parametrize("d", [41, 70])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rowdot_agrees_with_oracle_after_every_remainder_of_four_centres(dtype, d, k):
    # The rowdot pass takes centres four at a time, then the last three, two or one as one group:
    # k = 3 and 7 run the group of three, 2 and 6 the pair, 5 the single centre. At d=41 it takes
    # the rows' norms given, at d=70 it computes them itself.
    from impls.numba_fused import ROWDOT_NORMS_MAX_D

    assert 41 < ROWDOT_NORMS_MAX_D <= 70
    X, _ = data.blobs(1003, d, k, seed=5)
    result, c = judged(X, k, "k-means++", dtype, {"strategy": "rowdot"})
    assert c.status == "ok", c
    assert result.info["strategy"] == "rowdot" and result.n_iter == 10
    reference = oracle.lloyd(np.asarray(X, dtype=dtype), initial_centers(np.asarray(X, dtype=dtype), k,
                                                                         "k-means++", 0), 10, -1.0)
    np.testing.assert_allclose(result.inertia_history, reference.inertia_history, rtol=1e-5)


def tile_passes(kernel: str, isa: str, dtype: str) -> dict:
    """The generated passes of a tile kind, skipping where this instruction set and dtype have none."""
    from impls import numba_tiles

    table = {"fused": numba_tiles.FUSED_PASS, "grouped": numba_tiles.GROUPED_PASS,
             "broad": numba_tiles.BROAD_PASS}[kernel]
    if (isa, dtype) not in table:
        pytest.skip(f"no {kernel} tile for {isa} {dtype}")
    return table


def broad_raced(dtype: str = "float64") -> set:
    """The broad tile's name where this host's passes in ``dtype`` have one: the plan races it too."""
    from impls import numba_plan, numba_tiles
    from impls.numba_fused import BROAD

    return {BROAD} if (numba_plan.host_isa(), dtype) in numba_tiles.BROAD_PASS else set()


@pytest.mark.parametrize("kernel", ["rowdot", "fused", "grouped", "broad"])
@pytest.mark.parametrize("d", [5, 41, 70])
@pytest.mark.parametrize("dtype", DTYPES)
def test_final_pass_sums_the_inertia_of_its_own_labels(dtype, d, kernel):
    # Given the centres in float64 (``exact``), a pass without ``update`` writes each row's
    # float64 squared distance to the centre it chose, by direct differences, in place of the
    # working dtype's value: the fit's final labels and its inertia from one read of X.
    from impls import numba_kernels, numba_plan, numba_rowdot, numba_tiles
    from impls.numba_fused import NumbaKMeans, half_norms

    k = 7
    X = np.asarray(data.blobs(1003, d, k, seed=3)[0], dtype=dtype)  # 1003: a last, partial tile
    C = np.ascontiguousarray(X[::150][:k])
    labels, squares = np.empty(len(X), dtype=np.int32), np.empty(len(X))
    sums, counts, totals = np.zeros((2, k, d)), np.zeros((2, k), dtype=np.int64), np.zeros(2)
    if kernel == "rowdot":
        numba_rowdot.rowdot_pass(X, C, half_norms(C), labels, squares, sums, counts, totals, False,
                                 NumbaKMeans._rowdot_norms(X), C.astype(np.float64))
    else:
        isa = numba_plan.host_isa()
        table = tile_passes(kernel, isa, dtype)
        rows = numba_tiles.TILES[(isa, dtype)][0]
        with numba_kernels.slp_vectorize():
            table[(isa, dtype)](X, np.empty((0, d, rows), dtype=dtype), C, half_norms(C), labels, labels, squares,
                                sums, counts, totals, False, np.finfo(dtype).max, C.astype(np.float64), False)
    exact = X.astype(np.float64)
    np.testing.assert_array_equal(labels, ((exact[:, None] - C.astype(np.float64)) ** 2).sum(-1).argmin(1))
    expected = np.empty(len(X))
    numba_kernels.distances_to_own(X, C.astype(np.float64), labels, expected)
    np.testing.assert_allclose(squares, expected, rtol=1e-12)


@pytest.mark.parametrize("tile", ["avx2", "avx512"])
@pytest.mark.parametrize("kernel", ["fused", "grouped", "broad"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_first_pass_filling_the_panels_fills_them_as_the_copy_does_and_adds_up_the_same(dtype, kernel, tile):
    # ``fill``: the pass copies its rows from X, as without panels, into the panels (a fit's first
    # pass): they must then hold transposed_panels' values, the last panel's padding included, and
    # the pass must label, measure and add up as the pass that copies into its scratch does.
    from impls import numba_kernels, numba_plan, numba_tiles
    from impls.numba_fused import half_norms, transposed_panels

    if tile == "avx512" and numba_plan.host_isa() != "avx512":
        pytest.skip("the AVX-512 tile needs a CPU with AVX-512")
    k, d = 11, 13  # k: a padded last group; d: features past the shuffled blocks
    X = np.asarray(data.blobs(1003, d, k, seed=8)[0], dtype=dtype)  # 1003: a last, partial panel
    C = np.ascontiguousarray(X[::90][:k])
    rows = numba_tiles.TILES[(tile, dtype)][0]
    kernel_pass = tile_passes(kernel, tile, dtype)[(tile, dtype)]
    outputs = []
    for panels, fill in [(np.empty((0, d, rows), dtype=dtype), False),
                         (np.full((-(-len(X) // rows), d, rows), np.nan, dtype=dtype), True)]:
        labels, dist = np.empty(len(X), dtype=np.int32), np.empty(len(X), dtype=dtype)
        sums, counts, totals = np.zeros((2, k, d)), np.zeros((2, k), dtype=np.int64), np.zeros(2)
        with numba_kernels.slp_vectorize():
            kernel_pass(X, panels, C, half_norms(C), labels, np.full(len(X), -1, dtype=np.int32), dist, sums,
                        counts, totals, True, np.finfo(dtype).max, np.empty((0, d)), fill)
        outputs.append((labels, sums, counts, totals, panels))
    (labels, sums, counts, totals, _), (filled_labels, filled_sums, filled_counts, filled_totals, filled) = outputs
    np.testing.assert_array_equal(filled, transposed_panels(X, rows))
    np.testing.assert_array_equal(filled_labels, labels)
    np.testing.assert_array_equal(filled_counts, counts)
    np.testing.assert_allclose(filled_sums, sums, rtol=1e-12)
    np.testing.assert_allclose(filled_totals, totals, rtol=1e-12)


@pytest.mark.parametrize("panels", [True, False])
def test_a_fit_from_panels_its_first_pass_filled_agrees_with_the_oracle(panels):
    # The first pass fills the panels, later passes read them; a second fit of the same shape
    # takes the buffer the first released and fills it again from its own X.
    dtype, k = "float32", 9
    for seed in (5, 6):
        X, _ = data.blobs(2003, 21, k, seed=seed)
        result, c = judged(X, k, "k-means++", dtype, {"strategy": "fused", "panels": panels}, max_iter=6)
        assert c.status == "ok", c
        assert result.info["panels"] is panels


@pytest.mark.parametrize("options, exact", [({"strategy": "rowdot"}, True), ({"strategy": "fused", "panels": False}, True),
                                            ({"strategy": "fused", "panels": True}, False)])
def test_the_fit_says_where_its_final_labels_summed_the_inertia(options, exact):
    X, _ = data.blobs(1003, 41, 7, seed=3)
    result, c = judged(X, 7, "k-means++", "float32", options)
    assert c.status == "ok", c
    assert (result.info.get("inertia") == "summed in the final labels' pass") == exact


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_stream_pass_sums_the_final_inertia_in_float64(dtype):
    # three blocks and a partial fourth, split between the threads: each part's sum is kept
    from impls.numba_stream import STREAM_ROWS

    X, _ = data.blobs(3 * STREAM_ROWS + 77, 3, 6, seed=4)
    result, c = judged(X, 6, "k-means++", dtype, {"strategy": "stream"}, max_iter=4)
    assert c.status == "ok", c
    assert result.info["inertia"] == "summed in the final labels' pass"
    Xd = np.asarray(X, dtype=dtype).astype(np.float64)
    direct = ((Xd - result.centers.astype(np.float64)[result.labels]) ** 2).sum()
    assert result.inertia == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_agrees_with_oracle_with_one_copy_of_the_sums(dtype):
    # k x d = 4200 is past COPIES_MAX_KD: each thread keeps a single copy of its sums.
    from impls.numba_kernels import COPIES_MAX_KD

    X, _ = data.blobs(900, 70, 60, seed=9)
    assert 60 * 70 > COPIES_MAX_KD
    result, c = judged(X, 60, "k-means++", dtype, {"strategy": "fused"}, max_iter=4)
    assert c.status == "ok", c


@pytest.mark.parametrize("options", STRATEGIES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("dtype", DTYPES)
def test_agrees_with_oracle_when_clusters_empty(dtype, options):
    X, C = data.with_empty_clusters(300, 3, 6, seed=0)
    result, c = judged(X, 6, C, dtype, options)
    assert c.status == "ok", c
    assert result.info["relocated"] >= 3


@pytest.mark.parametrize("options", STRATEGIES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_converges_like_the_oracle(options):
    X, _ = data.blobs(3000, 5, 6, seed=2)
    result, c = judged(X, 6, "k-means++", "float64", options, max_iter=300, tol=1e-4)
    assert c.status == "ok", c
    assert result.converged and result.n_iter < 300


def prepared(X, C, **options):
    backend = create("numba", n=X.shape[0], k=C.shape[0], d=X.shape[1], dtype=str(X.dtype), **options)
    backend.prepare(X, C)
    backend.warm_up()
    return backend


@pytest.mark.parametrize("options", STRATEGIES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_go_to_the_lowest_index(dtype, options):
    # Integer data and centres make every distance exact in both dtypes and both formulas.
    rng = np.random.default_rng(0)
    base = rng.integers(-4, 5, size=(8, 3)).astype(dtype)
    # Centre j + 8 duplicates centre j (in a later six-centre group, or a later BLAS row),
    # and 20..23 repeat 0..3 once more.
    C = np.vstack([base, base, base[:4], base[:4]]).astype(dtype)
    X = np.vstack([base[rng.integers(8, size=200)], np.zeros((5, 3))]).astype(dtype)
    labels, dist = prepared(X, C, **options).assign(C)
    expected = oracle.squared_distances(X.astype(np.float64), C.astype(np.float64)).argmin(axis=1)
    np.testing.assert_array_equal(labels, expected)
    assert labels.max() < 8

    # A point exactly halfway between two centres goes to the first of them.
    X2 = np.zeros((6, 2), dtype=dtype)
    C2 = np.array([[5.0, 5.0], [1.0, 0.0], [-1.0, 0.0]], dtype=dtype)
    labels2, dist2 = prepared(X2, C2, **options).assign(C2)
    assert (labels2 == 1).all()
    np.testing.assert_allclose(dist2, 1.0)


@pytest.mark.parametrize("tile", ["avx2", "avx512"])
@pytest.mark.parametrize("strategy", ["fused", "grouped"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_padded_last_group_labels_its_rows_with_the_last_centre(dtype, strategy, tile):
    """k=11 fills no tile's group (6 or 8 centres): the last group repeats centre 10, whose
    copies tie with it. Rows at centre 10, and rows tied between it and centre 2, keep the
    real, lowest index."""
    from impls.numba_plan import host_isa

    if tile == "avx512" and host_isa() != "avx512":
        pytest.skip("tile='avx512' needs AVX-512F and VL on this CPU")
    rng = np.random.default_rng(1)
    base = rng.permutation(np.arange(-5, 5))[:10].reshape(10, 1) * np.array([[1.0, 2.0, -1.0]])
    C = np.vstack([base, [[7.0, 7.0, 7.0]]]).astype(dtype)
    halfway = (C[2] + C[10]) / 2  # equally far from centres 2 and 10
    X = np.vstack([np.repeat(C[10:], 40, axis=0), np.repeat(halfway[None], 9, axis=0), C[:10]]).astype(dtype)
    labels, _ = prepared(X, C, strategy=strategy, tile=tile).assign(C)
    expected = oracle.squared_distances(X.astype(np.float64), C.astype(np.float64)).argmin(axis=1)
    np.testing.assert_array_equal(labels, expected)
    assert (labels[:40] == 10).all() and (labels[40:49] == 2).all()


@pytest.mark.parametrize("strategy", ["fused", "grouped"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_inside_one_group_of_centres_go_to_the_lowest_index(dtype, strategy):
    """Centres 1, 3 and 4 share a tile's group (6 or 8 centres): rows halfway between 1 and 3,
    and rows at centre 1, which centre 4 repeats, are labelled 1 by the grouped tile's search
    inside the group as by the fused tile."""
    C = np.array([[9, 9], [1, 0], [-9, 9], [-1, 0], [1, 0], [9, -9], [0, 20]], dtype=dtype)
    X = np.vstack([np.zeros((5, 2)), np.repeat(C[1:2], 5, axis=0), C]).astype(dtype)
    labels, _ = prepared(X, C, strategy=strategy).assign(C)
    expected = oracle.squared_distances(X.astype(np.float64), C.astype(np.float64)).argmin(axis=1)
    np.testing.assert_array_equal(labels, expected)
    assert (labels[:10] == 1).all() and 4 not in labels


def test_blocked_path_runs_its_rows_in_blocks_of_chunk_rows():
    # 64 divides neither 1000 nor 500: whatever the part count, every part ends on a short block.
    X, _ = data.blobs(1000, 5, 12, seed=4)
    X = X.astype(np.float32)
    C = initial_centers(X, 12, "random", 0).astype(np.float32)
    backend = create("numba", n=1000, k=12, d=5, dtype="float32", strategy="gemm", chunk=64)
    result = execute(backend, X, C, max_iter=5, tol=-1.0)
    assert result.info["chunk"] == 64
    c = compare(result, oracle.lloyd(X, C, 5, -1.0), X, "float32")
    assert c.status == "ok", c


def test_fused_is_the_rule_where_neither_blas_nor_stream_can_win(tmp_path, monkeypatch):
    from impls import numba_plan
    from impls.numba_plan import host_isa

    monkeypatch.setattr(numba_plan, "SMALL_WORK", 0)  # else a shape this small is measured
    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path))
    # d=20: past the stream pass's 16 features, under the 33 where rowdot and the 64 where BLAS
    # are raced; the AVX2 tiles have no broader tile to race
    X, _ = data.blobs(500, 20, 3, seed=6)
    result = kmbench.fit(X, 3, backend="numba", init="random", max_iter=2, tol=-1.0, tile="avx2")
    assert result.info["strategy"] == "fused" and "chunk" not in result.info
    assert result.info["plan"]["source"].startswith("rule")
    assert result.info["tile"].startswith("avx2")
    # with the host's own tiles: where a broader tile exists, it and the fused tile are raced instead
    own = kmbench.fit(X, 3, backend="numba", init="random", max_iter=2, tol=-1.0)
    assert own.info["tile"].startswith(host_isa())
    assert own.info["plan"]["source"].startswith("measured" if broad_raced() else "rule")


@pytest.mark.parametrize("d, raced", [(40, {"fused", "fused+panels", "rowdot"}), (24, {"fused", "fused+panels"})])
def test_the_plan_races_rowdot_below_blas_classes_from_its_least_d(tmp_path, monkeypatch, d, raced):
    from impls.numba_fused import PANELLED, ROWDOT_MIN_D

    assert PANELLED == "fused+panels"  # k=4: the tile from panels races too

    assert 24 < ROWDOT_MIN_D <= 40
    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path))
    X = np.random.default_rng(3).standard_normal((3000, d))
    plan = kmbench.fit(X, 4, backend="numba", init="random", max_iter=1, tol=-1.0).info["plan"]
    assert plan["source"] == "measured" and set(plan["ms_per_pass"]) == raced | broad_raced()


@pytest.mark.parametrize("times, copies, rerun", [
    ({"a": 10.0, "b": 10.9, "c": 30.0}, {}, ["a", "b"]),
    ({"a": 10.0, "b": 20.0, "c": 30.0}, {}, []),
    # b's copy of X, its share of a fit's passes, takes it out of reach of a
    ({"a": 10.0, "b": 10.9, "c": 30.0}, {"b": 1e6}, []),
])
def test_a_close_race_is_run_again_between_its_two_best(times, copies, rerun):
    from impls import numba_plan

    calls = {name: 0 for name in times}

    def candidate(name):
        def run():
            calls[name] += 1
        return run

    ms_per_pass, ms_first_pass = dict(times), dict(times)
    # "a" has a later pass of its own, the others only the first
    firsts, laters = {name: candidate(name) for name in times}, {"a": candidate("a")}
    assert numba_plan.runoff(firsts, laters, ms_first_pass, ms_per_pass, copies) == rerun
    assert calls == {name: (numba_plan.RUNOFF_REPEATS + 1) * (1 + (name in laters)) if name in rerun else 0
                     for name in times}
    assert all(ms_per_pass[name] < 1.0 and ms_first_pass[name] < 1.0 for name in rerun)  # these do nothing
    assert all(ms_per_pass[name] == times[name] for name in times if name not in rerun)


def test_plan_is_measured_once_then_reused(tmp_path, monkeypatch):
    import json

    from impls import numba_plan
    from impls.numba_fused import BROAD, PANELLED

    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path))
    X = np.random.default_rng(3).standard_normal((3000, 64))
    first = kmbench.fit(X, 5, backend="numba", init="random", max_iter=2, tol=-1.0)
    second = kmbench.fit(X[:2000], 6, backend="numba", init="random", max_iter=2, tol=-1.0)
    plan = first.info["plan"]
    # k=5 <= ROWDOT_MAX_K: the row-at-a-time kernel races too, and the tile from panels, which
    # its first pass fills as it copies its rows: no copy of X apart, so none timed
    raced = {"fused", PANELLED, "gemm", "rowdot"} | broad_raced()
    assert plan["source"] == "measured" and set(plan["ms_per_pass"]) == raced
    assert plan["copy_ms"] == {}
    # BLAS and rowdot add every row in every pass: their later pass is their first
    assert all(plan["ms_per_pass"][name] == plan["ms_first_pass"][name] for name in ("gemm", "rowdot"))
    cost = numba_plan.fit_cost(plan["ms_per_pass"], plan["copy_ms"], plan["ms_first_pass"])
    winner = min(cost, key=cost.get)
    assert (PANELLED if plan.get("panels") else BROAD if plan.get("broad") else plan["strategy"]) == winner
    assert plan["strategy"] == first.info["strategy"] == ("fused" if winner in (PANELLED, BROAD) else winner)
    # Same machine, dtype and shape class (d <= 64, k <= 8): reused, not measured again.
    assert second.info["plan"]["source"] == "reused" and second.info["strategy"] == plan["strategy"]
    stored = json.loads((tmp_path / "numba-plans.json").read_text())
    assert stored[plan["key"]]["strategy"] == plan["strategy"] and "float64|n<=16384|d<=64|k<=8" in plan["key"]
    # An unreadable wisdom file costs a measurement, not an error.
    (tmp_path / "numba-plans.json").write_text("{not json")
    third = kmbench.fit(X, 5, backend="numba", init="random", max_iter=1, tol=-1.0)
    assert third.info["plan"]["source"] == "measured"


def test_host_isa_reads_the_cpu_features():
    from impls.numba_plan import host_isa

    assert host_isa({"avx2": True, "fma": True, "avx512f": True, "avx512vl": True}) == "avx512"
    assert host_isa({"avx2": True, "fma": True, "avx512f": False}) == "avx2"
    # AVX-512 without 512-bit vectors (AVX10/256 parts) gets the ymm-shaped tile.
    assert host_isa({"avx512f": True, "avx512vl": True, "evex512": False}) == "avx2"
    assert host_isa({}) == "avx2"


def test_avx512_tile_is_refused_without_avx512(monkeypatch):
    from impls import numba_plan

    monkeypatch.setattr(numba_plan, "host_isa", lambda features=None: "avx2")
    X = np.random.default_rng(0).random((50, 4))
    backend = create("numba", n=50, k=3, d=4, dtype="float64", tile="avx512")
    with pytest.raises(ValueError, match="tile='avx512' needs a CPU with AVX-512"):
        backend.prepare(X, X[:3].copy())


@pytest.mark.slow  # on an AVX-512 host this compiles the other tile (~30-60 s per dtype, cold cache)
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_other_tile_agrees_too(dtype):
    from impls.numba_plan import host_isa

    if host_isa() != "avx512":
        pytest.skip("the host's tile is the avx2 one, which every other test runs")
    X, _ = data.blobs(1003, 7, 20, seed=3)
    result, c = judged(X, 20, "k-means++", dtype, {"strategy": "fused", "tile": "avx2"})
    assert c.status == "ok", c
    assert result.info["tile"].startswith("avx2")


@pytest.mark.parametrize("strategy", ["fused", "grouped", "pruned", "gemm", "stream"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_warm_up_compiles_the_kernels_for_the_working_dtype(dtype, strategy):
    from impls import numba_kernels, numba_stream

    X = np.random.default_rng(0).random((50, 4)).astype(dtype)
    backend = prepared(X, X[:3].copy(), strategy=strategy)
    kernel = {"fused": backend.fused_pass, "grouped": backend.grouped_pass, "pruned": backend.pruned_pass,
              "gemm": numba_kernels.gemm_pass,
              "stream": numba_stream.STREAM_PASS[X.shape[1]]}[strategy]
    compiled = [sig[0].dtype for sig in kernel.signatures]
    assert getattr(numba, dtype) in compiled
    before = len(kernel.signatures)
    backend.run(2, -1.0)
    assert len(kernel.signatures) == before, "run() compiled a signature warm_up did not"


def test_warm_up_compiles_the_stream_pass_for_each_d():
    # The stream pass is compiled per d: a warm-up at one d must not stand for another.
    from impls import numba_stream

    for d in (2, 5):
        X = np.random.default_rng(d).random((60, d), dtype=np.float32)
        backend = prepared(X, X[:3].copy(), strategy="stream")
        before = len(numba_stream.STREAM_PASS[d].signatures)
        assert before, f"warm_up compiled no stream pass for d={d}"
        backend.run(2, -1.0)
        assert len(numba_stream.STREAM_PASS[d].signatures) == before


@pytest.mark.slow  # compiles another fused-pass signature (~25 s on 2 cores with a cold cache)
def test_read_only_input_needs_no_compile_in_run():
    X = np.random.default_rng(1).random((40, 3))
    X.setflags(write=False)
    backend = prepared(X, X[:4].copy(), strategy="fused")
    before = len(backend.fused_pass.signatures)
    backend.run(2, -1.0)
    assert len(backend.fused_pass.signatures) == before


def test_thread_count_sets_the_parts_and_not_the_answer():
    X, _ = data.blobs(2001, 6, 10, seed=5)
    one = kmbench.fit(X, 10, backend="numba", init="random", max_iter=5, tol=-1.0, threads=1)
    two = kmbench.fit(X, 10, backend="numba", init="random", max_iter=5, tol=-1.0, threads=2)
    assert one.info["parts"] == 1
    assert two.info["parts"] == min(2, numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(one.labels, two.labels)
    np.testing.assert_allclose(one.centers, two.centers, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("options, message", [
    ({"strategy": "blocked"}, "strategy='blocked'"),
    ({"chunk": 0}, "chunk=0"),
    ({"strategy": "auto"}, "strategy='auto'"),
    ({"panels": "yes"}, "panels='yes'"),
    ({"chunk_size": 10}, "chunk_size"),
    ({"tile": "avx1024"}, "tile='avx1024'"),
    ({"pin_threads": "yes"}, "pin_threads='yes'"),
])
def test_bad_options_name_the_value(options, message):
    with pytest.raises(ValueError, match=message):
        create("numba", n=10, k=2, d=2, dtype="float64", **options)


def test_listing_does_not_import_numba():
    code = ("import sys, impls.numba_fused as m; m.NumbaKMeans.unavailable(); "
            "assert 'numba' not in sys.modules, 'numba imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_generated_tile_kernels_match_their_generator():
    repo = Path(__file__).resolve().parents[1]
    check = subprocess.run([sys.executable, str(repo / "tools" / "gen_numba_tiles.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_panels_hold_consecutive_rows_transposed_and_pad_with_the_last_row():
    from impls.numba_fused import transposed_panels

    X = np.arange(21 * 3, dtype=np.float32).reshape(21, 3)
    panels = transposed_panels(X, 8)
    assert panels.shape == (3, 3, 8)
    np.testing.assert_array_equal(panels[1], X[8:16].T)
    np.testing.assert_array_equal(panels[2][:, :5], X[16:].T)
    np.testing.assert_array_equal(panels[2][:, 5:], np.repeat(X[20:].T, 3, axis=1))


def test_panels_are_kept_by_default_at_small_d_and_raced_at_few_centres(tmp_path, monkeypatch):
    from impls.numba_fused import PANEL_ALWAYS_D, PANEL_MAX_K, PANELLED

    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path))
    X = np.random.default_rng(7).random((300, PANEL_ALWAYS_D + 4))
    one_pass = dict(backend="numba", init="random", max_iter=1, tol=-1.0)
    few = kmbench.fit(X, PANEL_MAX_K, **one_pass)
    # (twice as many: another shape class, whose plan is its own)
    many = kmbench.fit(X, 2 * PANEL_MAX_K + 1, **one_pass)
    tiled = kmbench.fit(X, 2 * PANEL_MAX_K + 1, strategy="fused", **one_pass)
    forced = kmbench.fit(X, 2 * PANEL_MAX_K + 1, strategy="fused", panels=True, **one_pass)
    thin = kmbench.fit(X[:, :PANEL_ALWAYS_D], PANEL_MAX_K + 1, strategy="fused", **one_pass)
    # at few centres the plan measured both and the fit follows it, whichever won here; where
    # another strategy (the stream pass, on a noisy machine) beat both tiles, neither keeps panels
    assert PANELLED in few.info["plan"]["ms_per_pass"]
    assert few.info.get("panels", False) is few.info["plan"]["panels"]
    assert PANELLED not in many.info["plan"].get("ms_per_pass", {}) and not many.info.get("panels", False)
    assert (tiled.info["panels"], forced.info["panels"], thin.info["panels"]) == (False, True, True)
    np.testing.assert_array_equal(tiled.labels, forced.labels)


def test_plan_classes_separate_cache_sized_from_streaming_n():
    from impls import numba_plan

    small = numba_plan.shape_class("float32", 1_000, 103, 11)
    large = numba_plan.shape_class("float32", 388_105, 103, 11)
    assert small != large and small.endswith("|d<=128|k<=32") and large.endswith("|d<=128|k<=32")
    assert numba_plan.shape_class("float32", 20_000, 103, 11) != small


def test_plan_classes_hold_one_d_each_up_to_sixteen_features():
    # below 17 features the winner changes from one d to the next (stream at d=12, the tile at 16)
    from impls import numba_plan

    classes = {numba_plan.shape_class("float32", 1_000_000, d, 16) for d in range(1, 17)}
    assert len(classes) == 16
    assert numba_plan.shape_class("float32", 1_000_000, 17, 16) == numba_plan.shape_class("float32", 1_000_000, 32, 16)


@pytest.mark.parametrize("dtype", DTYPES)
def test_distances_to_own_centres_match_the_host_rule_without_compiling_in_run(dtype):
    from impls.base import distances_to_own

    X = np.random.default_rng(3).standard_normal((500, 37)).astype(dtype)
    # a centre far from every point stays empty, so run() applies the empty-cluster rule
    centers = np.vstack([X[:3], np.full((1, 37), 50.0, dtype=dtype)])
    backend = prepared(X, centers, strategy="fused")
    labels = np.random.default_rng(4).integers(0, 4, 500).astype(np.int32)
    c64 = centers.astype(np.float64)
    np.testing.assert_allclose(backend.distances_to_own(X, c64, labels), distances_to_own(X, c64, labels),
                               rtol=1e-13)
    before = len(backend.kernels.distances_to_own.signatures)
    backend.run(2, -1.0)
    assert backend.relocated >= 1
    assert len(backend.kernels.distances_to_own.signatures) == before, "run() compiled the rule's kernel"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [1, 2, 3, 8, 11, 16])
def test_stream_agrees_with_oracle_across_blocks_and_parts(dtype, d):
    from impls.numba_stream import STREAM_ROWS

    # 5000 rows: two full blocks and a short one, split over the threads; k=7: the last group
    # of four centres repeats the last one
    X, _ = data.blobs(5000, d, 7, seed=d)
    assert 5000 % STREAM_ROWS
    result, c = judged(X, 7, "k-means++", dtype, {"strategy": "stream"}, max_iter=6)
    assert c.status == "ok", c
    assert result.info["strategy"] == "stream" and result.info["block_rows"] == STREAM_ROWS


def test_stream_refuses_more_features_than_it_has_code_for():
    from impls.numba_stream import STREAM_MAX_D

    X = np.random.default_rng(0).random((100, STREAM_MAX_D + 1))
    with pytest.raises(ValueError, match=f"strategy='stream' needs d <= {STREAM_MAX_D}; X has d={STREAM_MAX_D + 1}"):
        kmbench.fit(X, 3, backend="numba", init="random", max_iter=1, strategy="stream")


@pytest.mark.parametrize("d", [3, 12])
def test_plan_races_the_stream_pass_at_small_d(tmp_path, monkeypatch, d):
    from impls import numba_plan
    from impls.numba_fused import BROAD, PANEL_ALWAYS_D, PANELLED

    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path))
    X = np.random.default_rng(5).standard_normal((6000, d))
    plan = kmbench.fit(X, 5, backend="numba", init="random", max_iter=2, tol=-1.0).info["plan"]
    # no BLAS candidate at k=5: the tile against the stream pass, and past PANEL_ALWAYS_D
    # features the tile from panels too
    panelled = {PANELLED} if d > PANEL_ALWAYS_D else set()
    assert plan["source"] == "measured" and set(plan["ms_per_pass"]) == {"fused", "stream"} | broad_raced() | panelled
    # both copy X: the stream pass into blocks before its passes, the tile into panels during
    # its first pass, so that copy is inside its first pass's time
    assert set(plan["copy_ms"]) == {"stream"} and "fused" in plan["ms_first_pass"]
    cost = numba_plan.fit_cost(plan["ms_per_pass"], plan["copy_ms"], plan["ms_first_pass"])
    winner = min(cost, key=cost.get)
    # the tile from panels and the broader tile run as "fused" with their flag set
    assert plan["strategy"] == ("fused" if winner in (PANELLED, BROAD) else winner)
    assert plan.get("panels", False) == (winner == PANELLED)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("strategy", ["grouped", "pruned"])
def test_grouped_and_pruned_tiles_give_the_fused_tiles_labels(dtype, strategy):
    """Finding the centre inside each row's best group afterwards reproduces the tile's values,
    and the groups the pruned tile skips cannot hold a row's best: the same labels (not merely
    labels within the contract's tie width) and the same sums but for the order of adding."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((5000, 3)).astype(dtype)
    X[::7] *= 40  # a wide spread of norms: the rounding margin must hold for all of them
    C = X[:700].copy()  # many groups of centres, and near-ties between them
    fused = kmbench.fit(X, 700, backend="numba", init=C, max_iter=3, tol=-1.0, strategy="fused")
    other = kmbench.fit(X, 700, backend="numba", init=C, max_iter=3, tol=-1.0, strategy=strategy)
    assert other.info["strategy"] == strategy and fused.info["strategy"] == "fused"
    np.testing.assert_array_equal(other.labels, fused.labels)
    # the same rows in each cluster, added in another order by the fused tile's first pass,
    # which adds each row as it fills its panels
    np.testing.assert_allclose(other.centers, fused.centers, rtol=1e-12, atol=1e-15)


def test_spatial_order_sorts_like_a_stable_argsort():
    from impls import numba_pruned

    keys = np.random.default_rng(8).integers(0, 2**numba_pruned.KEY_BITS, 5000, dtype=np.uint64)
    keys[::3] = keys[1::3][: keys[::3].size]  # equal keys keep their order
    np.testing.assert_array_equal(numba_pruned.radix_order(keys), np.argsort(keys, kind="stable"))
    X = np.random.default_rng(8).standard_normal((500, 4)).astype(np.float32)
    lo, hi = numba_pruned.bounding_box(X)
    np.testing.assert_array_equal(lo, X.min(axis=0))
    np.testing.assert_array_equal(hi, X.max(axis=0))


@pytest.mark.parametrize("d, bits", [(1, 5), (2, 4), (3, 3), (4, 2), (5, 2)])
def test_hilbert_keys_walk_every_cell_once_a_step_at_a_time(d, bits):
    import itertools

    from impls import numba_pruned

    cells = np.array(list(itertools.product(range(1 << bits), repeat=d)), dtype=np.float64)
    keys = numba_pruned.hilbert_keys(cells, np.zeros(d), np.ones(d), bits)
    np.testing.assert_array_equal(np.sort(keys), np.arange(len(cells)))  # each cell its own key
    walk = cells[np.argsort(keys)]
    # consecutive keys are neighbouring cells: the curve never jumps (a Z-order curve does)
    np.testing.assert_array_equal(np.abs(np.diff(walk, axis=0)).sum(axis=1), 1)


@pytest.mark.parametrize("k, leaf", [(5, 8), (8, 8), (700, 8), (1001, 32)])
def test_kd_order_splits_every_node_at_the_median_of_its_widest_feature(k, leaf):
    from impls import numba_pruned

    C = np.random.default_rng(k).standard_normal((k, 3)).astype(np.float32)
    C[:, 2] *= 5  # one feature wider than the rest, where the first splits must fall
    C[::4] = C[1]  # many equal rows, which a split may put on either side
    order = numba_pruned.kd_order(C, leaf)
    np.testing.assert_array_equal(np.sort(order), np.arange(k))
    nodes, checked = [(0, k)], 0
    while nodes:
        lo, hi = nodes.pop()
        if hi - lo <= leaf:
            continue
        rows = C[order[lo:hi]]
        widest = int(np.argmax(rows.max(axis=0) - rows.min(axis=0)))
        middle = lo + (-(-(hi - lo) // leaf) + 1) // 2 * leaf
        assert (middle - lo) % leaf == 0 and lo < middle < hi
        assert rows[: middle - lo, widest].max() <= rows[middle - lo:, widest].min()
        nodes += [(lo, middle), (middle, hi)]
        checked += 1
    assert checked == max(0, -(-k // leaf) - 1)  # a binary tree over the leaves


def test_pruned_tile_asked_for_at_many_features_orders_rows_by_the_first_few():
    X = np.random.default_rng(7).standard_normal((600, 70))
    C = X[:9].copy()
    pruned = kmbench.fit(X, 9, backend="numba", init=C, max_iter=2, tol=-1.0, strategy="pruned")
    fused = kmbench.fit(X, 9, backend="numba", init=C, max_iter=2, tol=-1.0, strategy="fused")
    np.testing.assert_array_equal(pruned.labels, fused.labels)
    # the same rows in each cluster, added up in another order (the fused tile adds each in the tile)
    np.testing.assert_allclose(pruned.centers, fused.centers, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pruned_tile_breaks_exact_ties_to_the_lowest_index(dtype):
    # Every centre twice, far apart in index and so in different groups once sorted in space:
    # each row's best value is tied exactly, and the contract wants the lower index.
    X = np.random.default_rng(6).standard_normal((3000, 2)).astype(dtype)
    C = np.concatenate([X[:300], X[:300]])
    labels = kmbench.fit(X, 600, backend="numba", init=C, max_iter=1, tol=-1.0, strategy="pruned").labels
    fused = kmbench.fit(X, 600, backend="numba", init=C, max_iter=1, tol=-1.0, strategy="fused").labels
    np.testing.assert_array_equal(labels, fused)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pruned_tile_breaks_ties_inside_a_group_to_the_lowest_index(dtype):
    # Every centre twice, at neighbouring indices: the two copies fall in the same group of the
    # k-d order, where the search inside the group must keep the lower index.
    X = np.random.default_rng(9).standard_normal((3000, 3)).astype(dtype)
    C = np.repeat(X[:350], 2, axis=0)
    # After the first pass the copy that won no rows moves (the empty-cluster rule): the centres
    # show which copy each row took.
    pruned = kmbench.fit(X, 700, backend="numba", init=C, max_iter=1, tol=-1.0, strategy="pruned")
    fused = kmbench.fit(X, 700, backend="numba", init=C, max_iter=1, tol=-1.0, strategy="fused")
    np.testing.assert_array_equal(pruned.labels, fused.labels)
    # added up in another order: the fused tile's first pass adds each row as it fills its panels
    np.testing.assert_allclose(pruned.centers, fused.centers, rtol=1e-12, atol=1e-15)


def test_the_plan_races_the_grouped_tile_at_small_d_and_many_centres(tmp_path, monkeypatch):
    from impls import numba_plan
    from impls.numba_fused import GROUPED_MAX_D

    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path))
    X = np.random.default_rng(5).standard_normal((6000, 3)).astype(np.float32)
    plan = kmbench.fit(X, numba_plan.MEASURE_MIN_K, backend="numba", init="random", max_iter=1, tol=-1.0).info["plan"]
    raced = {"fused", "grouped", "pruned", "gemm"} | broad_raced("float32")
    assert plan["source"] == "measured" and set(plan["ms_per_pass"]) == raced
    assert plan["copy_ms"].get("grouped") == plan["copy_ms"].get("fused") and plan["copy_ms"]["pruned"] > 0
    wide = np.random.default_rng(5).standard_normal((6000, GROUPED_MAX_D + 1)).astype(np.float32)
    plan = kmbench.fit(wide, numba_plan.MEASURE_MIN_K, backend="numba", init="random", max_iter=1, tol=-1.0).info["plan"]
    assert not {"grouped", "pruned"} & set(plan["ms_per_pass"])
    # BLAS is raced from d = 64 whatever k; the grouped tile only where centres are many
    plan = kmbench.fit(wide[:, :GROUPED_MAX_D], numba_plan.MEASURE_MIN_K - 1, backend="numba", init="random",
                       max_iter=1, tol=-1.0).info["plan"]
    assert plan["source"] == "measured" and "gemm" in plan["ms_per_pass"] and "grouped" not in plan["ms_per_pass"]


@pytest.mark.parametrize("panelled_wins", [True, False])
def test_past_the_panel_rule_the_plan_races_the_fused_tile_from_panels(tmp_path, monkeypatch, panelled_wins):
    """Few centres past PANEL_ALWAYS_D features: whether panels pay is measured, and the fit follows."""
    from impls import numba_plan
    from impls.numba_fused import PANEL_ALWAYS_D, PANEL_MAX_K, PANELLED

    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path))
    # each strategy's time as a race would give it, with the panelled tile cheapest or dearest
    monkeypatch.setattr(numba_plan, "race", lambda candidates, repeats=3: {
        name: (1e-6 if (name == PANELLED) == panelled_wins else 1.0) if name in {"fused", PANELLED} else 2.0
        for name in candidates})
    X = np.random.default_rng(9).standard_normal((3000, PANEL_ALWAYS_D + 1)).astype(np.float32)
    k = PANEL_MAX_K // 2
    fit = kmbench.fit(X, k, backend="numba", init=X[:k].copy(), max_iter=3, tol=-1.0)
    plan = fit.info["plan"]
    # the panels are filled by the panelled tile's first pass: their copy is inside its time
    assert PANELLED in plan["ms_per_pass"] and PANELLED in plan["ms_first_pass"] and PANELLED not in plan["copy_ms"]
    assert plan["strategy"] == fit.info["strategy"] == "fused"
    assert plan["panels"] is fit.info["panels"] is panelled_wins
    again = kmbench.fit(X, k, backend="numba", init=X[:k].copy(), max_iter=3, tol=-1.0)
    assert again.info["plan"]["source"] == "reused" and again.info["panels"] is panelled_wins
    reference = kmbench.fit(X, k, backend="numba", init=X[:k].copy(), max_iter=3, tol=-1.0, strategy="fused",
                            panels=not panelled_wins)
    np.testing.assert_array_equal(fit.labels, reference.labels)
    np.testing.assert_allclose(fit.centers, reference.centers, rtol=1e-6)
    # At PANEL_ALWAYS_D the rule keeps panels without a race.
    narrow = kmbench.fit(X[:, :PANEL_ALWAYS_D].copy(), k, backend="numba", init="random", max_iter=1, tol=-1.0)
    assert PANELLED not in narrow.info["plan"].get("ms_per_pass", {}) and "panels" not in narrow.info["plan"]


@pytest.mark.parametrize("broad_wins", [True, False])
def test_the_plan_races_the_broad_tile_and_the_fit_follows(tmp_path, monkeypatch, broad_wins):
    """Where the plan measures, the broader fused tile races the fused one; the fit, its reuse and
    its ``tile`` follow the winner, with the labels of ``strategy="fused"``."""
    from impls import numba_plan, numba_tiles
    from impls.numba_fused import BROAD

    isa = numba_plan.host_isa()
    if (isa, "float64") not in numba_tiles.BROAD_PASS:  # the plumbing, with the fused pass standing in
        monkeypatch.setitem(numba_tiles.BROAD_PASS, (isa, "float64"), numba_tiles.FUSED_PASS[(isa, "float64")])
        monkeypatch.setitem(numba_tiles.BROAD_TILES, (isa, "float64"), numba_tiles.TILES[(isa, "float64")])
    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(numba_plan, "race", lambda candidates, repeats=3: {
        name: (1e-6 if (name == BROAD) == broad_wins else 1.0) if name in {"fused", BROAD} else 2.0
        for name in candidates})
    X = np.random.default_rng(4).standard_normal((3000, 64))
    k = 40
    fit = kmbench.fit(X, k, backend="numba", init=X[:k].copy(), max_iter=3, tol=-1.0)
    plan = fit.info["plan"]
    assert plan["source"] == "measured" and {"fused", BROAD} <= set(plan["ms_per_pass"])
    assert plan["strategy"] == fit.info["strategy"] == "fused" and plan["broad"] is broad_wins
    rows, group = (numba_tiles.BROAD_TILES if broad_wins else numba_tiles.TILES)[(isa, "float64")]
    assert fit.info["tile"] == f"{isa}: {rows} rows x {group} centres"
    again = kmbench.fit(X, k, backend="numba", init=X[:k].copy(), max_iter=3, tol=-1.0)
    assert again.info["plan"]["source"] == "reused" and again.info["tile"] == fit.info["tile"]
    reference = kmbench.fit(X, k, backend="numba", init=X[:k].copy(), max_iter=3, tol=-1.0, strategy="fused")
    np.testing.assert_array_equal(fit.labels, reference.labels)
    np.testing.assert_allclose(fit.centers, reference.centers, rtol=1e-12)


@pytest.mark.parametrize("passes", [1, 1e6])
def test_the_plan_counts_a_strategys_first_pass_and_copy_of_x_once_per_fit(tmp_path, monkeypatch, passes):
    """A fit of one pass pays its first pass and its copy of X whole; over very many, only the later passes count
    (with the rows they move)."""
    from impls import numba_plan
    from impls.numba_fused import BROAD, PANELLED

    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(numba_plan, "PLAN_PASSES", passes)
    X = np.random.default_rng(3).standard_normal((3000, 64)).astype(np.float32)
    plan = kmbench.fit(X, 5, backend="numba", init="random", max_iter=2, tol=-1.0).info["plan"]
    assert PANELLED in plan["ms_first_pass"]  # its panels' copy counted there, once per fit
    chosen = PANELLED if plan.get("panels") else BROAD if plan.get("broad") else plan["strategy"]
    if passes == 1:
        one = {name: ms + plan["copy_ms"].get(name, 0.0) for name, ms in plan["ms_first_pass"].items()}
        assert chosen == min(one, key=one.get)
    else:  # a later pass: none moved, plus MOVED_SHARE of what the first pass spends adding rows
        later = {name: ms + numba_plan.MOVED_SHARE * max(0.0, plan["ms_first_pass"][name] - ms)
                 for name, ms in plan["ms_per_pass"].items()}
        assert chosen == min(later, key=later.get)


@pytest.mark.parametrize("strategy", ["fused", "stream"])
def test_a_fit_of_the_same_shape_refills_the_last_fits_panels(strategy):
    from impls import numba_fused

    X = np.random.default_rng(8).standard_normal((3000, 3))
    first = kmbench.fit(X, 4, backend="numba", init="random", max_iter=3, tol=-1.0, strategy=strategy)
    kept = list(numba_fused._spare)
    assert len(kept) == 1 and kept[0].shape[1] == 3
    Y = X[::-1].copy()  # other data, same shape: the buffer is refilled, not trusted
    second = kmbench.fit(Y, 4, backend="numba", init=Y[:4].copy(), max_iter=3, tol=-1.0, strategy=strategy)
    reference = kmbench.fit(Y, 4, backend="numba", init=Y[:4].copy(), max_iter=3, tol=-1.0, strategy=strategy)
    assert numba_fused._spare and numba_fused._spare[0] is kept[0]
    np.testing.assert_array_equal(second.labels, reference.labels)
    assert first.n_iter == 3
    numba_fused.release_panels()
    assert not numba_fused._spare


@pytest.mark.parametrize("total, available, room", [(1 << 40, 0, True), (None, 1 << 40, True), (None, 0, False)])
def test_panels_need_room_unless_they_are_a_sliver_of_the_memory(monkeypatch, total, available, room):
    """A copy under SMALL_COPY_SHARE of the machine's memory is made without reading the free memory."""
    import psutil

    from impls import numba_fused

    X = np.random.default_rng(8).standard_normal((3000, numba_fused.PANEL_ALWAYS_D)).astype(np.float32)
    total = X.nbytes * 10 if total is None else total  # X is a tenth of this "machine"
    monkeypatch.setattr(numba_fused, "_total_memory", lambda: total)

    def free():
        if total >= X.nbytes / numba_fused.SMALL_COPY_SHARE:
            raise AssertionError("read the free memory for a copy of a 256th of the machine")
        return type("Memory", (), {"available": available})()

    monkeypatch.setattr(psutil, "virtual_memory", free)
    backend = prepared(X, X[:4].copy(), strategy="fused")
    assert (backend.panels.shape[0] > 0) is room


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_from_panels_adds_up_in_a_second_pass_what_the_tile_would(dtype):
    from impls.lloyd import cluster_sums

    X = np.random.default_rng(4).standard_normal((3001, 20)).astype(dtype)
    C = X[:7].copy()
    # from panels the sums come in a second pass; without, the tile adds each row itself
    second, in_tile = (prepared(X, C, strategy="fused", panels=panels) for panels in (True, False))
    assert second.panels.shape[0] > 0 and in_tile.panels.shape[0] == 0
    for centres in (C, X[7:14].copy(), X[7:14].copy()):  # the second and third steps move rows, then none
        labels, totals, sums, counts = (np.copy(a) for a in second.step(centres))
        other = in_tile.step(centres)
        np.testing.assert_array_equal(labels, other[0])
        np.testing.assert_array_equal(counts, other[3])
        np.testing.assert_allclose(sums, other[2], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(totals.sum(), other[1].sum(), rtol=1e-6)
        expected_sums, expected_counts = cluster_sums(X, labels, 7)
        np.testing.assert_allclose(sums, expected_sums, rtol=1e-12, atol=1e-9)
        np.testing.assert_array_equal(counts, expected_counts)


@pytest.mark.parametrize("strategy", ["fused", "grouped", "pruned", "stream"])
def test_passes_move_only_the_rows_whose_label_changed_and_the_sums_stay_exact(strategy):
    """The tiles return the change of the sums (rows taken from their old cluster, added to the new);
    the backend's running sums equal a fresh sum by label after every step, with a few rows moving."""
    from impls.lloyd import cluster_sums

    X, _ = data.blobs(4000, 3, 6, seed=21)
    C = X[:40].copy()
    backend = prepared(X, C, strategy=strategy)
    previous, moves = np.full(len(X), -1), []
    for step in range(6):
        labels, _, sums, counts = (np.copy(a) for a in backend.step(C))
        expected_sums, expected_counts = cluster_sums(X, labels, 40)
        np.testing.assert_array_equal(counts, expected_counts)
        np.testing.assert_allclose(sums, expected_sums, rtol=1e-12, atol=1e-9)
        # the pass's own counts are the change: at first every row added, then +1 and -1 per moved row
        change = backend.partial_counts.sum(axis=0)
        moved = int((labels != previous).sum())
        if step == 0:
            assert change.sum() == np.abs(change).sum() == len(X)
        else:
            assert change.sum() == 0 and np.abs(change).sum() <= 2 * moved
        moves.append(moved)
        previous = labels
        filled = counts > 0
        C = C.copy()
        C[filled] = (sums[filled] / counts[filled, None]).astype(C.dtype)
    assert moves[0] == len(X) and 0 < moves[1] < len(X) // 2  # a step where some rows, not all, moved
    fit = kmbench.fit(X, 40, backend="numba", init=X[:40].copy(), max_iter=3, tol=-1.0, strategy=strategy)
    assert fit.info["sums"] == "moved rows"


@pytest.mark.parametrize("strategy", ["fused", "stream"])
def test_a_second_run_of_one_preparation_repeats_the_first(strategy):
    """asv runs a prepared backend again: the running sums and the labels they follow start afresh."""
    X, _ = data.blobs(5000, 3, 6, seed=8)
    backend = prepared(X, X[:6].copy(), strategy=strategy)
    fits = []
    for _ in range(2):
        backend.run(5, -1.0)
        fits.append(backend.result())
    # the same up to rounding: the first run's panels go back with its result, and the second
    # adds rows in another order
    np.testing.assert_array_equal(fits[0].labels, fits[1].labels)
    np.testing.assert_allclose(fits[0].centers, fits[1].centers, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fits[0].inertia_history, fits[1].inertia_history, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d, k", [(1, 3), (3, 9), (8, 130), (13, 5)])
def test_stream_moves_few_rows_one_by_one_and_many_by_masked_sweeps(dtype, d, k):
    """Centres renumbered move every row (the masked sweeps, new labels in and old out);
    nudged, a few (one by one, found by their flags); the running sums stay a fresh sum by
    label, over ragged blocks split between parts."""
    from impls.lloyd import cluster_sums
    from impls.numba_stream import STREAM_ROWS, sweep_share

    X = np.random.default_rng(d).standard_normal((2 * STREAM_ROWS + 777, d)).astype(dtype)
    C = X[:k].copy()
    backend = prepared(X, C, strategy="stream")
    order = np.roll(np.arange(k), 1)  # every centre under another index: every row relabelled
    nudged = C[order] + np.asarray(0.02, dtype=dtype)
    shares = []
    for centres in (C, C[order], nudged, nudged):
        before = backend.label_buffers[0].copy()
        labels, _, sums, counts = (np.copy(a) for a in backend.step(centres))
        expected_sums, expected_counts = cluster_sums(X, labels, k)
        np.testing.assert_array_equal(counts, expected_counts)
        # rounding only: a block's masked sums run in the working dtype, in another order than
        # the oracle's (a row in the wrong cluster shows in the counts)
        np.testing.assert_allclose(sums, expected_sums, rtol=0, atol=100 * np.finfo(dtype).eps * np.abs(X).sum())
        shares.append(np.count_nonzero(labels != before) / len(X))
    sweeps_from = sweep_share(k, d, X.itemsize)
    assert shares[0] == 1.0 and shares[1] >= min(sweeps_from, 1.0)  # fresh, then many moved
    assert 0 < shares[2] < sweeps_from and shares[3] == 0  # few, then none


@pytest.mark.parametrize("k", [5, 130])
def test_stream_rewrites_narrow_labels_in_place_and_counts_the_changes(k):
    X = np.random.default_rng(3).standard_normal((5000, 2)).astype(np.float32)
    backend = prepared(X, X[:k].copy(), strategy="stream")
    labels = backend.label_buffers[0]
    assert labels.dtype == (np.int8 if k <= 127 else np.int16) and (labels == -1).all()
    first = backend.step(X[:k].copy())[0]
    assert first is labels and backend.changes.sum() == X.shape[0]
    before = labels.copy()
    others = X[k:2 * k].copy()
    backend.step(others)
    D = oracle.squared_distances(X.astype(np.float64), others.astype(np.float64))
    two = np.sort(D, axis=1)[:, :2]
    clear = two[:, 1] - two[:, 0] > 1e-4 * (1 + two[:, 1])  # float32 may flip a near-tie
    np.testing.assert_array_equal(labels[clear], D.argmin(axis=1)[clear])
    assert backend.changes.sum() == np.count_nonzero(labels != before) > 0
    assert not backend.unchanged(labels, before)
    backend.step(others)  # the same centres again: no label moves
    assert backend.changes.sum() == 0 and backend.unchanged(labels, before)


@pytest.mark.parametrize("options", [{"strategy": "stream"}, {"strategy": "fused"}], ids=["stream", "fused"])
def test_strict_convergence_stops_where_the_oracle_does(options):
    # tol=0: only "no label changed" (or centres that did not move at all) ends the run
    X, _ = data.blobs(6000, 3, 5, seed=4)
    result, c = judged(X, 5, "random", "float64", options, max_iter=200, tol=0.0)
    assert c.status == "ok", c
    reference = oracle.lloyd(X, initial_centers(X, 5, "random", 0), 200, 0.0)
    assert result.converged and result.n_iter == reference.n_iter < 200


@pytest.mark.parametrize("wake_ms", [0.0, 1e4])
def test_a_small_fit_runs_on_one_thread_where_waking_the_others_costs_more(tmp_path, monkeypatch, wake_ms):
    from impls import numba_fused, numba_plan

    if numba.get_num_threads() < 2:
        pytest.skip("one thread only: nothing to decide")
    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(numba_plan, "wake_seconds", lambda *args: wake_ms / 1e3)
    monkeypatch.setattr(numba_fused, "_threads_last_busy", [float("-inf")])  # threads long idle
    X, _ = data.blobs(3000, 12, 5, seed=9)  # fused by rule were it not small: measured, one thread too
    C = initial_centers(X, 5, "k-means++", 0)
    result = kmbench.fit(X, 5, backend="numba", init=C, max_iter=5, tol=-1.0, threads=2)
    assert result.info["plan"]["source"] == "measured" and result.info["plan"]["one_thread_ms_per_pass"] > 0
    assert result.info["wake_ms"] == wake_ms and result.info["parts"] == 2
    assert result.info["threads_used"] == (1 if wake_ms else 2)
    reference = oracle.lloyd(X, C, 5, -1.0)
    assert compare(result, reference, X, "float64").status == "ok"


def test_the_wake_up_is_measured_once_per_machine(tmp_path, monkeypatch):
    from impls import numba_plan

    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(numba_plan, "WAKE_IDLE_S", 0.001)
    calls = []
    first = numba_plan.wake_seconds("avx2", 2, lambda: calls.append(1), False)
    assert len(calls) == numba_plan.WAKE_TRIALS * (3 + numba_plan.WAKE_REGIONS) and first >= 0
    assert numba_plan.wake_seconds("avx2", 2, lambda: calls.append(1), False) == pytest.approx(first, abs=1e-6)
    assert len(calls) == numba_plan.WAKE_TRIALS * (3 + numba_plan.WAKE_REGIONS)  # read back, not measured again


def test_a_wake_up_over_several_regions_counts_them_all(tmp_path, monkeypatch):
    import time

    from impls import numba_plan

    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(numba_plan, "WAKE_IDLE_S", 0.001)
    monkeypatch.setattr(numba_plan, "WAKE_TRIALS", 4)
    monkeypatch.setattr(numba_plan, "WAKE_REGIONS", 2)
    calls = []

    def region():  # each trial: three warm regions, then the first two after the idle spell are slow
        if len(calls) % (3 + numba_plan.WAKE_REGIONS) in (3, 4):
            time.sleep(0.003)
        calls.append(1)

    assert numba_plan.wake_seconds("avx2", 2, region, False) >= 0.0055


def test_threads_that_just_worked_together_are_taken_as_awake(tmp_path, monkeypatch):
    import time

    from impls import numba_fused, numba_plan

    if numba.get_num_threads() < 2:
        pytest.skip("one thread only: nothing to decide")
    monkeypatch.setenv("KMBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(numba_plan, "wake_seconds", lambda *args: 10.0)  # a wake-up dearer than any pass
    monkeypatch.setattr(numba_fused, "WAKE_IDLE_AFTER_S", 3600.0)
    monkeypatch.setattr(numba_fused, "_threads_last_busy", [time.perf_counter()])
    X, _ = data.blobs(3000, 12, 5, seed=9)
    result = kmbench.fit(X, 5, backend="numba", init="random", max_iter=5, tol=-1.0, threads=2)
    assert result.info["threads_used"] == 2


def test_prefetch_asks_llvm_for_the_line_and_never_faults():
    from numba import njit

    from impls.numba_kernels import prefetch

    @njit
    def total_fetching_ahead(a, ahead):
        base = np.int64(a.ctypes.data)
        s = 0.0
        for i in range(a.size):
            prefetch(base + 4 * (i + ahead))  # past the end too: a hint, not a load
            s += a[i]
        return s

    a = np.arange(1000, dtype=np.float32)
    assert total_fetching_ahead(a, 1 << 30) == a.sum()
    assert "@llvm.prefetch" in total_fetching_ahead.inspect_llvm(total_fetching_ahead.signatures[0])


@pytest.mark.parametrize("lanes, dtype", [(16, "float32"), (8, "float32"), (8, "float64"), (4, "float64")])
def test_block_transpose_writes_the_block_transposed_and_nothing_else(lanes, dtype):
    from numba import njit

    from impls.numba_kernels import transpose_block

    @njit
    def transpose(source, target, lanes):
        transpose_block(lanes, np.int64(source.ctypes.data), np.int64(source.strides[0]),
                        np.int64(target.ctypes.data), np.int64(target.strides[0]), source.itemsize)

    source = np.arange(lanes * (lanes + 3), dtype=dtype).reshape(lanes, lanes + 3)  # rows longer than the block
    target = np.full((lanes + 1, lanes + 5), -1.0, dtype=dtype)
    transpose(source, target, lanes)
    np.testing.assert_array_equal(target[:lanes, :lanes], source[:, :lanes].T)
    assert (target[:lanes, lanes:] == -1).all() and (target[lanes:] == -1).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, d, rows", [(100, 37, 32), (70, 16, 16), (99, 40, 8), (5000, 33, 2048), (21, 3, 8)])
def test_panels_by_blocks_equal_panels_value_by_value(dtype, n, d, rows):
    from impls.numba_kernels import block_lanes, fill_panels

    X = np.random.default_rng(n).standard_normal((n, d)).astype(dtype)
    shape = (-(-n // rows), d, rows)
    by_value, by_blocks = np.zeros(shape, dtype=dtype), np.zeros(shape, dtype=dtype)
    fill_panels(X, by_value, 0)
    lanes = block_lanes(X.itemsize, rows, 64)
    assert lanes == {4: 16, 8: 8}[X.itemsize] if rows % 16 == 0 else lanes == 8
    fill_panels(X, by_blocks, lanes)
    np.testing.assert_array_equal(by_blocks, by_value)
    np.testing.assert_array_equal(by_value[0, :, : min(rows, n)], X[:rows].T)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tile", ["avx2", "avx512"])
def test_tile_copying_its_rows_by_blocks_matches_the_tile_from_panels(dtype, tile):
    """d=37: two whole blocks of a tile's rows by vector shuffles and five features one by one;
    n=1001 leaves each thread a last, partial tile copied value by value."""
    from impls.numba_plan import host_isa

    if tile == "avx512" and host_isa() != "avx512":
        pytest.skip("tile='avx512' needs AVX-512F and VL on this CPU")
    rng = np.random.default_rng(12)
    X = rng.standard_normal((1001, 37)).astype(dtype)
    C = X[rng.choice(1001, 9, replace=False)].copy()
    fits = [kmbench.fit(X, 9, backend="numba", init=C, max_iter=3, tol=-1.0, threads=2, strategy="fused",
                        tile=tile, panels=panels) for panels in (False, True)]
    assert [f.info["panels"] for f in fits] == [False, True]
    np.testing.assert_array_equal(fits[0].labels, fits[1].labels)
    np.testing.assert_allclose(fits[0].centers, fits[1].centers, rtol=1e-12)


def test_a_fit_records_numbas_threading_layer():
    X = np.random.default_rng(0).random((3000, 3))
    layer = kmbench.fit(X, 4, backend="numba", init="random", max_iter=2).info["threading_layer"]
    assert layer == numba.threading_layer() and layer in ("tbb", "omp", "workqueue")


def test_wide_vectors_asks_llvm_for_512_bit_vectors_in_its_caller_alone():
    from numba import njit

    from impls.numba_kernels import wide_vectors

    @njit(cache=False)
    def wide(a):
        wide_vectors()
        return a.sum()

    @njit(cache=False)
    def plain(a):
        return a.sum()

    a = np.arange(8.0)
    assert wide(a) == plain(a) == 28.0
    attribute = '"prefer-vector-width"="512"'
    assert attribute in "".join(wide.inspect_llvm().values())
    assert attribute not in "".join(plain.inspect_llvm().values())


@pytest.mark.parametrize("blocks", ["one", "many"])
@pytest.mark.parametrize("options", [{"strategy": "fused"}, {"strategy": "fused", "panels": False},
                                     {"strategy": "grouped"}, {"strategy": "gemm"}],
                         ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("dtype", DTYPES)
def test_passes_over_the_moved_centres_alone_label_as_full_passes(monkeypatch, dtype, options, blocks):
    # 6000 rows, k=800: 7.5 rows per cluster, so most centres stop moving within a few passes,
    # and the later passes look only at those that moved (and in full at their rows, copied
    # together in one block, or in blocks of 7 rows).
    import impls.numba_fused as numba_fused
    from impls.numba_plan import small_work

    if blocks == "many":
        monkeypatch.setattr(numba_fused, "REFRESH_BYTES", 7 * 8 * np.dtype(dtype).itemsize)

    X = np.random.default_rng(4).standard_normal((6000, 8)).astype(dtype)
    k = 800
    assert not small_work(6000, 8, k)
    result, c = judged(X, k, "random", dtype, options)
    assert c.status == "ok", c
    passes = result.info["moved_centres_only"]["passes"]
    assert passes >= 3 and max(result.info["moved_centres_only"]["work_shares"]) <= numba_fused.UNMOVED_MAX_SHARE
    monkeypatch.setattr(numba_fused, "UNMOVED_MAX_SHARE", -1.0)  # every pass in full
    full, _ = judged(X, k, "random", dtype, options)
    assert "moved_centres_only" not in full.info
    np.testing.assert_array_equal(result.labels, full.labels)
    # the BLAS pass adds every row each time, the other path moves the rows that changed: the
    # same sums added in another order
    rtol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(result.centers, full.centers, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(result.inertia_history, full.inertia_history, rtol=rtol)


@pytest.mark.parametrize("moved_index, label", [(2, 2), (7, 5)])
def test_a_row_keeps_its_unmoved_centre_unless_a_moved_one_is_nearer_or_tied_with_a_lower_index(moved_index, label):
    from impls import numba_kernels
    from impls.numba_fused import half_norms

    # the row at the origin, its own centre 5 at (1, 0); the moved centre at (0, 1), as far
    C = np.zeros((8, 2))
    C[5], C[moved_index] = (1.0, 0.0), (0.0, 1.0)
    X = np.zeros((2, 2))
    X[1] = (0.9, 0.0)  # nearer its own centre: keeps it
    previous = np.array([5, 5], dtype=np.int32)
    moved = np.zeros(8, dtype=bool)
    moved[moved_index] = True
    subset = np.array([moved_index], dtype=np.int32)
    dist = np.array([1.0, 0.81 + 1.0])  # to the moved centre, as its pass wrote them
    labels = np.full(2, -1, dtype=np.int32)
    numba_kernels.keep_unless_moved_nearer(X, C, half_norms(C), previous, moved, subset, np.zeros(2, dtype=np.int32),
                                           dist, labels)
    assert labels.tolist() == [label, 5]
    assert dist[1] == pytest.approx(0.01)
