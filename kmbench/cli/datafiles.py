"""Reading a user's data file and writing labels and centres next to it.

Formats are chosen by extension: ``.npy`` (NumPy, memory-mapped), ``.csv`` (with
or without a header row, detected from the first line), ``.parquet`` (pandas with
pyarrow). Results are written in the input's format, so they open in the same
tool: ``STEM.labels.EXT`` and ``STEM.centers.EXT``.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMATS = (".npy", ".csv", ".parquet")


@dataclass
class Table:
    """A data file read as a matrix.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
    columns : list of str or None
        Column names (CSV with a header, parquet); None where the file has none.
    path : Path
    fmt : str, one of FORMATS
    """

    X: np.ndarray
    columns: list | None
    path: Path
    fmt: str


def file_format(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"unsupported file type {suffix or '(none)'!r} for {path}; expected one of {', '.join(FORMATS)}")
    return suffix


def check_npy_magic(path) -> None:
    """ValueError unless ``path`` starts like a .npy file.

    Without this, ``np.load`` takes any other bytes for a pickle and says "allow_pickle",
    which sends the user looking in the wrong place.
    """
    from numpy.lib import format as npy_format

    with open(path, "rb") as fh:
        head = fh.read(len(npy_format.MAGIC_PREFIX))
    if head != npy_format.MAGIC_PREFIX:
        raise ValueError(f"{path} is not a valid .npy file: it starts with {head!r}, not NumPy's "
                         f"{npy_format.MAGIC_PREFIX!r} (write one with numpy.save)")


def csv_has_header(path) -> bool:
    """True when some field of the first non-empty line is not a number."""
    with open(path, newline="") as fh:
        for row in csv.reader(fh):
            if not any(field.strip() for field in row):
                continue
            for field in row:
                try:
                    float(field)
                except ValueError:
                    return True
            return False
    raise ValueError(f"{path} is empty")


def _parse_columns(columns) -> list | None:
    """``"a,b"`` or ``"0,3"`` -> names or integer positions; None keeps every column."""
    if columns is None:
        return None
    items = [c.strip() for c in columns.split(",") if c.strip()] if isinstance(columns, str) else list(columns)
    if not items:
        raise ValueError(f"columns={columns!r} names no column")
    return [int(c) if isinstance(c, str) and c.lstrip("-").isdigit() else c for c in items]


def _select(frame, wanted):
    """The wanted columns (names or positions) of a DataFrame, each checked to be numeric."""
    import pandas as pd

    if wanted is not None:
        picked = []
        for c in wanted:
            if isinstance(c, int):
                if not -frame.shape[1] <= c < frame.shape[1]:
                    raise ValueError(f"column {c} does not exist: the file has {frame.shape[1]} columns")
                picked.append(frame.columns[c])
            elif c in frame.columns:
                picked.append(c)
            else:
                raise ValueError(f"no column named {c!r}; columns: {', '.join(map(str, frame.columns))}")
        frame = frame[picked]
    for position, name in enumerate(frame.columns):
        series = frame[name]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            # the first value that is not a number, not merely the first value of the column
            bad = series.notna() & pd.to_numeric(series, errors="coerce").isna()
            row = int(bad.to_numpy().argmax()) if bad.any() else 0
            raise ValueError(f"column {name!r} (position {position}) is not numeric: {series.iloc[row]!r} in "
                             f"data row {row + 1}; choose numeric columns with --columns")
    return frame


def read_matrix(path, *, columns=None, header=None) -> Table:
    """Read ``path`` as a 2-D matrix.

    Parameters
    ----------
    path : str or Path, ending in .npy, .csv or .parquet
    columns : str or list, optional
        Names or 0-based positions to keep, e.g. ``"sepal_length,petal_width"`` or ``"0,2"``.
    header : bool, optional
        CSV only: whether the first line holds column names; detected when None.

    Returns
    -------
    Table
    """
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    wanted = _parse_columns(columns)
    if fmt == ".npy":
        check_npy_magic(path)
        # Memory-mapped: kmbench.fit copies only what the backend needs; pickles are refused.
        X = np.load(path, mmap_mode="r", allow_pickle=False)
        if wanted is not None:
            if any(not isinstance(c, int) for c in wanted):
                raise ValueError(f".npy files have no column names; give positions, got columns={columns!r}")
            if X.ndim != 2:
                raise ValueError(f"X must be 2-D (n_samples, n_features); got {X.ndim}-D with shape {X.shape}")
            X = X[:, wanted]
        return Table(X=X, columns=None, path=path, fmt=fmt)
    import pandas as pd

    if fmt == ".csv":
        has_header = csv_has_header(path) if header is None else bool(header)
        frame = pd.read_csv(path, header=0 if has_header else None)
        names = [str(c) for c in frame.columns] if has_header else None
    else:
        try:
            frame = pd.read_parquet(path)
        except ImportError:
            raise ImportError("reading .parquet needs pyarrow: pip install 'kmbench[io]'") from None
        names = [str(c) for c in frame.columns]
    frame = _select(frame, wanted)
    if names is not None:
        names = [str(c) for c in frame.columns]
    return Table(X=frame.to_numpy(), columns=names, path=path, fmt=fmt)


def output_paths(table: Table, out=None) -> tuple[Path, Path]:
    """``(labels, centers)`` paths: ``STEM.labels.EXT`` and ``STEM.centers.EXT`` in ``out`` or beside the data."""
    directory = Path(out) if out is not None else table.path.parent
    stem = table.path.name[: -len(table.path.suffix)]
    return directory / f"{stem}.labels{table.fmt}", directory / f"{stem}.centers{table.fmt}"


def write_results(table: Table, labels: np.ndarray, centers: np.ndarray, out=None) -> tuple[Path, Path]:
    """Write labels (n_samples,) and centres (n_clusters, n_features) in the input's format.

    CSV output has a header row exactly when the input had one (``label``, and the
    input's column names for the centres); parquet always names its columns.

    Returns
    -------
    (labels_path, centers_path)
    """
    labels_path, centers_path = output_paths(table, out)
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    if table.fmt == ".npy":
        np.save(labels_path, np.asarray(labels, dtype=np.int32))
        np.save(centers_path, np.asarray(centers))
        return labels_path, centers_path
    import pandas as pd

    columns = table.columns or [f"x{j}" for j in range(centers.shape[1])]
    label_frame = pd.DataFrame({"label": np.asarray(labels, dtype=np.int32)})
    center_frame = pd.DataFrame(np.asarray(centers), columns=columns)
    if table.fmt == ".csv":
        header = table.columns is not None
        label_frame.to_csv(labels_path, index=False, header=header)
        # repr-exact floats, so the centres read back bit for bit
        center_frame.to_csv(centers_path, index=False, header=header, float_format="%.17g")
    else:
        label_frame.to_parquet(labels_path, index=False)
        center_frame.to_parquet(centers_path, index=False)
    return labels_path, centers_path
