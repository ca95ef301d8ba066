"""``kmbench linkage`` on a user's files, ``kmbench check``'s linkage rows, and the linkage recommender."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import fcluster, linkage

from kmbench.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((3, 4)) * 6
    return centers[rng.integers(0, 3, 120)] + rng.standard_normal((120, 4))


def run(args, capsys):
    rc = main(["linkage", *map(str, args), "--backend", "scipy", "--threads", "1"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_npy_with_n_clusters(tmp_path, points, capsys):
    path = tmp_path / "points.npy"
    np.save(path, points)
    rc, out, err = run([path, "--method", "average", "--n-clusters", 3], capsys)
    assert rc == 0, err
    Z = np.load(tmp_path / "points.linkage.npy")
    np.testing.assert_allclose(Z, linkage(points, "average"), rtol=1e-12)
    labels = np.load(tmp_path / "points.labels.npy")
    assert labels.dtype == np.int32 and labels.min() == 0
    np.testing.assert_array_equal(labels, fcluster(Z, 3, "maxclust") - 1)
    assert (tmp_path / "points.dendrogram.png").read_bytes()[:8] == PNG_MAGIC
    assert "average linkage of 120 x 4" in out and "3 flat clusters" in out


def test_csv_with_height_into_out(tmp_path, points, capsys):
    path = tmp_path / "pts.csv"
    pd.DataFrame(points, columns=list("abcd")).to_csv(path, index=False)
    out_dir = tmp_path / "tree"
    rc, out, err = run([path, "--method", "ward", "--height", 10.0, "--out", out_dir], capsys)
    assert rc == 0, err
    Z = pd.read_csv(out_dir / "pts.linkage.csv")
    assert list(Z.columns) == ["a", "b", "height", "size"]
    np.testing.assert_allclose(Z.to_numpy(), linkage(points, "ward"), rtol=1e-12)
    labels = pd.read_csv(out_dir / "pts.labels.csv")["label"].to_numpy()
    np.testing.assert_array_equal(labels, fcluster(Z.to_numpy(), 10.0, "distance") - 1)


def test_parquet_without_cut(tmp_path, points, capsys):
    pytest.importorskip("pyarrow")
    path = tmp_path / "pts.parquet"
    pd.DataFrame(points, columns=list("abcd")).to_parquet(path)
    rc, out, err = run([path, "--method", "single"], capsys)
    assert rc == 0, err
    assert (tmp_path / "pts.linkage.parquet").exists() and not (tmp_path / "pts.labels.parquet").exists()


@pytest.mark.parametrize("args, message", [
    (["--method", "median"], "method='median' should be one of 'single', 'complete', 'average', 'ward'"),
    (["--n-clusters", 0], "--n-clusters=0 must be >= 1"),
    (["--n-clusters", 500], "--n-clusters=500 must be <= n_samples=120"),
    (["--height", -1.0], "--height=-1.0 must be a finite number >= 0"),
])
def test_bad_arguments_are_named(tmp_path, points, capsys, args, message):
    path = tmp_path / "points.npy"
    np.save(path, points)
    rc, out, err = run([path, *args], capsys)
    assert rc == 2 and message in err


def test_crosscheck_every_backend_agrees():
    from kmbench.check.linkage_crosscheck import check

    rows = check(names=["scipy", "numba"], dtypes=("float64",))
    assert rows and all(r["status"] == "ok" for r in rows), [r for r in rows if r["status"] != "ok"]
    assert {r["case"] for r in rows} == {"blobs 120x6", "iris 100x4"}


def test_recommender_ranks_recorded_rows():
    from kmbench.advise.linkage import rank_recorded

    table = pd.DataFrame([
        {"metric": "linkage", "method": "ward", "dtype": "float64", "backend": b, "n": 5000, "d": 16, "value": v}
        for b, v in (("scipy", 2.0), ("numba", 0.5), ("fastcluster", 1.0))
    ] + [{"metric": "ari", "method": "ward", "dtype": "float64", "backend": "numba", "n": 200, "d": 16,
          "value": 0.5}])
    ranking = rank_recorded(20000, 16, "float64", "ward", table=table)
    assert [r["backend"] for r in ranking] == ["fastcluster", "scipy", "numba"]  # numba's quality failed
    assert ranking[0]["seconds"] == pytest.approx(16.0) and not ranking[-1]["eligible"]


def test_report_figures_from_linkage_rows(tmp_path):
    from kmbench.bench.records import family_of
    from kmbench.report.linkage_figures import memory_vs_n, time_vs_n

    assert family_of("linkage_suites.LinkageTime.track_linkage") == "linkage"
    assert family_of("suites.SweepN.track_per_iter") == "kmeans"
    rows = pd.DataFrame([{"metric": metric, "method": method, "backend": backend, "n": n, "d": 16,
                          "value": value * n * n}
                         for metric, value in (("linkage", 1e-8), ("peakmem", 8.0))
                         for method in ("single", "ward") for backend in ("numba", "scipy")
                         for n in (1000, 5000)])
    for draw in (time_vs_n, memory_vs_n):
        path = draw(rows, tmp_path / f"{draw.__name__}.png")
        assert path.read_bytes()[:8] == PNG_MAGIC
    assert time_vs_n(rows.iloc[0:0], tmp_path / "none.png") is None
