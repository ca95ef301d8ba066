"""``kmbench fit`` and ``kmbench elbow`` on a user's files, run in-process through ``kmbench.cli.main``."""
from __future__ import annotations

import numpy as np
import pytest

import kmbench.check.data as data
from kmbench import KMeans
from kmbench.cli import main
from kmbench.cli.elbow import find_knee

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def blobs():
    X, _ = data.blobs(500, 4, 3, seed=11)
    return X


def reference(X, k=3, **params):
    """What the estimator gives for the CLI's defaults (seed 0)."""
    return KMeans(k, backend="identity", random_state=0, **params).fit(X)


def fit(args, capsys):
    rc = main(["fit", *map(str, args), "--backend", "identity", "--threads", "1", "--quiet"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_npy(tmp_path, blobs, capsys):
    path = tmp_path / "points.npy"
    np.save(path, blobs)
    rc, out, err = fit([path, "--k", 3, "--n-init", 2], capsys)
    assert rc == 0, err
    labels, centers = np.load(tmp_path / "points.labels.npy"), np.load(tmp_path / "points.centers.npy")
    ref = reference(blobs, n_init=2)
    assert labels.dtype == np.int32 and np.array_equal(labels, ref.labels_)
    np.testing.assert_array_equal(centers, ref.cluster_centers_)
    line = out.strip()
    assert "\n" not in line
    assert "backend=identity" in line and f"n_iter={ref.n_iter_}" in line and f"inertia={ref.inertia_:.6g}" in line
    assert "restarts=2" in line and "time=" in line


def test_npy_float32_kept(tmp_path, blobs, capsys):
    path = tmp_path / "f32.npy"
    np.save(path, blobs.astype(np.float32))
    rc, out, err = fit([path, "--k", 3], capsys)
    assert rc == 0, err
    assert np.load(tmp_path / "f32.centers.npy").dtype == np.float32 and "dtype=float32" in out


def test_csv_with_header(tmp_path, blobs, capsys):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "with header.csv"
    pd.DataFrame(blobs, columns=["a", "b", "c", "d"]).to_csv(path, index=False)
    rc, out, err = fit([path, "--k", 3], capsys)
    assert rc == 0, err
    centers = pd.read_csv(tmp_path / "with header.centers.csv")
    labels = pd.read_csv(tmp_path / "with header.labels.csv")
    ref = reference(blobs)
    assert list(centers.columns) == ["a", "b", "c", "d"] and list(labels.columns) == ["label"]
    assert np.array_equal(labels["label"].to_numpy(), ref.labels_)
    # written with 17 significant digits: the centres read back exactly
    np.testing.assert_array_equal(centers.to_numpy(), ref.cluster_centers_)


def test_csv_without_header_and_out_dir(tmp_path, blobs, capsys):
    path = tmp_path / "plain.csv"
    np.savetxt(path, blobs, delimiter=",")
    out_dir = tmp_path / "results" / "run1"
    rc, out, err = fit([path, "--k", 3, "--out", out_dir], capsys)
    assert rc == 0, err
    assert not (tmp_path / "plain.labels.csv").exists()
    labels = np.loadtxt(out_dir / "plain.labels.csv", dtype=np.int64)
    centers = np.loadtxt(out_dir / "plain.centers.csv", delimiter=",")
    ref = reference(np.loadtxt(path, delimiter=","))
    assert np.array_equal(labels, ref.labels_)
    np.testing.assert_array_equal(centers, ref.cluster_centers_)


def test_parquet_columns(tmp_path, blobs, capsys):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame(blobs, columns=["a", "b", "c", "d"])
    frame["species"] = "x"
    path = tmp_path / "table.parquet"
    frame.to_parquet(path)
    rc, out, err = fit([path, "--k", 3], capsys)
    assert rc == 2 and err.count("\n") == 1
    assert "column 'species' (position 4) is not numeric" in err
    rc, out, err = fit([path, "--k", 3, "--columns", "a,b,d"], capsys)
    assert rc == 0, err
    centers = pd.read_parquet(tmp_path / "table.centers.parquet")
    assert list(centers.columns) == ["a", "b", "d"]
    ref = reference(blobs[:, [0, 1, 3]])
    assert np.array_equal(pd.read_parquet(tmp_path / "table.labels.parquet")["label"].to_numpy(), ref.labels_)


def test_init_from_file(tmp_path, blobs, capsys):
    np.save(tmp_path / "x.npy", blobs)
    np.save(tmp_path / "start.npy", blobs[[0, 100, 200]])
    rc, out, err = fit([tmp_path / "x.npy", "--k", 3, "--init", tmp_path / "start.npy", "--tol", -1,
                        "--max-iter", 4], capsys)
    assert rc == 0, err
    assert "n_iter=4" in out
    ref = KMeans(3, backend="identity", init=blobs[[0, 100, 200]], tol=-1, max_iter=4).fit(blobs)
    np.testing.assert_array_equal(np.load(tmp_path / "x.centers.npy"), ref.cluster_centers_)


@pytest.mark.parametrize("make_file, args, message", [
    (None, ["missing.npy", "--k", 2], "no such file: "),
    (lambda p: (p / "a.txt").write_text("1 2\n"), ["a.txt", "--k", 2], "unsupported file type '.txt'"),
    (lambda p: np.save(p / "v.npy", np.arange(5.0)), ["v.npy", "--k", 2], "X must be 2-D .* got 1-D with shape \\(5,\\)"),
    (lambda p: (p / "n.csv").write_text("a,b\n1,2\n3,\n5,6\n"), ["n.csv", "--k", 2], "X contains NaN \\(first at row 1"),
    (lambda p: np.save(p / "s.npy", np.ones((4, 2))), ["s.npy", "--k", 9], "n_clusters=9 must be <= n_samples=4"),
    (lambda p: np.save(p / "s.npy", np.ones((4, 2))), ["s.npy", "--k", 2, "--n-init", "x"], "--n-init must be an integer"),
    (lambda p: (p / "e.csv").write_text(""), ["e.csv", "--k", 2], "is empty"),
    (lambda p: (p / "bad.npy").write_text("garbage\n"), ["bad.npy", "--k", 2],
     "bad.npy is not a valid .npy file: it starts with b'garbag'"),
    (lambda p: (p / "t.csv").write_text("a,b\n1,2\n3,x\n"), ["t.csv", "--k", 2],
     "column 'b' \\(position 1\\) is not numeric: 'x' in data row 2"),
])
def test_bad_input_one_line(tmp_path, capsys, monkeypatch, make_file, args, message):
    import re

    monkeypatch.chdir(tmp_path)
    if make_file:
        make_file(tmp_path)
    rc, out, err = fit(args, capsys)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("kmbench fit: error: ")
    assert re.search(message, err), err


# -- elbow --------------------------------------------------------------------------------------
def test_find_knee():
    assert find_knee([1, 2, 3, 4, 5, 6], [1000, 500, 100, 90, 85, 80]) == 3
    assert find_knee([1, 2, 3, 4], [40, 30, 20, 10]) is None  # a straight line: concave on the log scale, no knee
    assert find_knee([1, 2, 3, 4], [40, 30, 20, 10], log=False) is None
    assert find_knee([1, 2, 3], [5.0, 5.0, 5.0]) is None
    assert find_knee([1, 2], [10, 1]) is None
    # an inertia of 0 (k = n) falls back to the linear scale instead of log(0)
    assert find_knee([1, 2, 3, 4], [100, 10, 5, 0]) == 2


def test_elbow_finds_known_k(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    X, _ = data.blobs(600, 5, 4, seed=21)
    np.save(tmp_path / "four.npy", X)
    out_dir = tmp_path / "elbow"
    rc = main(["elbow", str(tmp_path / "four.npy"), "--k-max", "8", "--out", str(out_dir), "--backend", "identity",
               "--threads", "1", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "knee at k=4" in out and "best silhouette at k=4" in out
    table = pd.read_csv(out_dir / "elbow.csv")
    assert list(table["k"]) == list(range(1, 9))
    assert table.loc[table["knee"], "k"].tolist() == [4]
    assert np.isnan(table["silhouette"].iloc[0]) and table["silhouette"].iloc[1:].notna().all()
    assert int(table["k"].iloc[table["silhouette"].idxmax()]) == 4
    assert (np.diff(table["inertia"]) < 0).all()
    for name in ("elbow.png", "silhouette.png"):
        blob = (out_dir / name).read_bytes()
        assert blob.startswith(PNG_MAGIC) and len(blob) > 10_000


def test_elbow_silhouette_sampling_and_bad_k(tmp_path, capsys):
    X, _ = data.blobs(400, 3, 3, seed=2)
    np.save(tmp_path / "x.npy", X)
    rc = main(["elbow", str(tmp_path / "x.npy"), "--k-max", "4", "--out", str(tmp_path / "o"), "--backend",
               "identity", "--sample-size", "100", "--n-init", "1", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "knee at k=3" in out
    rc = main(["elbow", str(tmp_path / "x.npy"), "--k-max", "2", "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 2 and "--k-max=2 must be >= 3" in capsys.readouterr().err
