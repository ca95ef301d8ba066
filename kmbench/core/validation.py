"""Input checks shared by ``kmbench.fit``, ``kmbench.KMeans`` and the CLI.

Each check fails fast with a message that names the problem and the value, before
anything large is allocated or any backend is imported.
"""
from __future__ import annotations

import functools
import numbers

import numpy as np

FLOAT_DTYPES = ("float32", "float64")
#: bytes of X from which its sum of squares is split across the threads. A smaller X is summed
#: on one thread: on a VM whose idle vCPU sleeps, waking a second one can cost 5-8 ms, while one
#: core sums 64 MB in about 6 ms (einsum, 10 GB/s, Emerald Rapids)
PARALLEL_SCAN_BYTES = 64 << 20


def is_torch_tensor(X) -> bool:
    """True for a torch tensor, decided without importing torch."""
    return type(X).__module__.split(".")[0] == "torch" and hasattr(X, "detach")


def is_lazy_array(X) -> bool:
    """True for a dask array: its values are checked where they are computed."""
    return hasattr(X, "__dask_graph__") and hasattr(X, "chunks")


def _reject_kind(kind: str, dtype, what: str = "X") -> None:
    if kind == "c":
        raise TypeError(f"complex data is not supported: {what} has dtype {dtype}")
    if kind in "OSUVMm":
        raise TypeError(f"{what} must be numeric; got dtype {dtype}")


def working_dtype(data_dtype, requested=None) -> str:
    """float32/float64 are kept; ints, bools and float16 become float64; ``requested`` forces one."""
    if requested is not None:
        # torch dtypes (torch.float32) are spelled by name so torch need not be imported.
        spec = str(requested).replace("torch.", "") if type(requested).__module__ == "torch" else requested
        try:
            name = np.dtype(spec).name
        except (TypeError, ValueError):
            name = None
        if name not in FLOAT_DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {requested!r}")
        return name
    name = str(data_dtype).replace("torch.", "")
    return name if name in FLOAT_DTYPES else "float64"


def check_data(X, dtype=None, *, scan: bool = True):
    """Validate X; return it (a NumPy array, or the torch tensor / dask array untouched) and its working dtype.

    ``scan=False`` checks only type, shape and dtype, so that cheap parameter checks can run
    before the O(n*d) pass of :func:`check_values`.

    Raises
    ------
    TypeError
        complex, object or string data.
    ValueError
        not 2-D, no rows or columns, or NaN/inf (naming the first bad row).
    """
    if is_torch_tensor(X):
        if X.is_complex():
            raise TypeError(f"complex data is not supported: X has dtype {X.dtype}")
        shape = tuple(X.shape)
        kind_dtype = X.dtype
    elif is_lazy_array(X):
        _reject_kind(X.dtype.kind, X.dtype)
        shape, kind_dtype = tuple(X.shape), X.dtype
    else:
        if isinstance(X, (str, bytes)):
            raise TypeError(f"X must be numeric; got {type(X).__name__}")
        if np.ma.isMaskedArray(X):
            raise TypeError("masked arrays are not supported: fill or drop the masked values first")
        if hasattr(X, "tocsr") and hasattr(X, "nnz"):
            raise TypeError(f"sparse input is not supported ({type(X).__name__}, shape {X.shape}); "
                            "use X.toarray() if it fits in memory")
        try:
            X = np.asarray(X)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"X could not be read as a 2-D array: {exc}") from None
        _reject_kind(X.dtype.kind, X.dtype)
        shape, kind_dtype = X.shape, X.dtype
    if len(shape) != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features); got {len(shape)}-D with shape {shape}")
    if shape[0] < 1:
        raise ValueError(f"X must have at least 1 sample; got shape {shape}")
    if shape[1] < 1:
        raise ValueError(f"X must have at least 1 feature; got shape {shape}")
    dtype = working_dtype(kind_dtype, dtype)
    if scan:
        check_values(X, dtype)
    return X, dtype


def check_values(X, dtype: str, chunk_bytes: int = 1 << 20, threads: int = 1) -> None:
    """All finite, and small enough that squared distances cannot overflow the working dtype.

    Lazy arrays are checked where they are computed. One sum of squares over X, on up to
    ``threads`` threads, settles plain data; otherwise one pass of min and max over
    cache-sized row chunks: a NaN or an infinity shows in them, and only then is X searched
    for the first bad row.
    """
    if is_lazy_array(X):
        return
    values = X.detach().cpu().numpy() if is_torch_tensor(X) else X
    if values.dtype.kind != "f":
        return
    info = np.finfo(dtype)
    # ||x - c||^2 <= d * (2 max|x|)^2 must stay finite in the working dtype.
    limit = float(np.sqrt(info.max / (4.0 * values.shape[1])))
    # Below this, even the largest squares are subnormal and lose bits: labels would be noise.
    floor = float(np.sqrt(info.tiny / info.eps))
    if _plainly_fine(values, limit, floor, threads):
        return
    chunk = max(1, chunk_bytes // max(1, values.shape[1] * values.itemsize))
    biggest = 0.0
    for start in range(0, values.shape[0], chunk):
        block = values[start:start + chunk]
        high, low = float(block.max()), float(block.min())
        if not (np.isfinite(high) and np.isfinite(low)):
            rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
            row = int(rows[0])
            what = "NaN" if np.isnan(values[row]).any() else "infinity"
            raise ValueError(f"X contains {what} (first at row {row}; {rows.size} bad rows in all)")
        biggest = max(biggest, high, -low)
    hint = "; rescale the data or use dtype='float64'" if dtype == "float32" else "; rescale the data"
    if biggest > limit:
        raise ValueError(f"X has values up to {biggest:.3g}, so squared distances would overflow {dtype} "
                         f"(limit {limit:.3g} for n_features={values.shape[1]}){hint}")
    if 0 < biggest < floor:
        raise ValueError(f"X has values only up to {biggest:.3g}, so squared distances fall in {dtype}'s "
                         f"subnormal range and lose precision (need max |x| >= {floor:.3g}){hint}")


@functools.lru_cache(maxsize=None)
def _scan_pool(workers: int):
    """Threads kept for the value scan: idle ones wait on a queue and take no CPU."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kmbench-scan")


def _plainly_fine(values, limit: float, floor: float, threads: int = 1) -> bool:
    """True when one sum of X's squares (one SIMD pass, about half the time of the min/max
    pass) proves every value finite and max |x| within [floor, limit]; False sends X to the
    exact pass. A NaN or infinity makes the sum of squares non-finite; a float sum of
    non-negative terms is never below its largest term, so sqrt(sum) bounds max |x| from
    above; any one value at or above ``floor`` bounds it from below.

    ``einsum``, not a BLAS dot: OpenBLAS's threads spin for a while after a call, on the
    cores the fit runs on next (a whole numba fit at 273k x 3, k=16, float64 took 112 ms
    after a multithreaded dot and 66 ms with OpenBLAS on one thread, Zen 4 2 cores). einsum
    releases the GIL, so a large X is summed in ``threads`` parts at once: at 70000 x 784
    float32 (220 MB) 22.9 ms on one thread, 12.3 on two (Emerald Rapids), a tenth of the
    whole fit at this memory-bound shape."""
    if values.dtype not in (np.float32, np.float64) or not (values.flags.c_contiguous or values.flags.f_contiguous):
        return False
    flat = values.ravel(order="K")
    parts = threads if flat.nbytes >= PARALLEL_SCAN_BYTES else 1
    if parts > 1:
        bounds = np.linspace(0, flat.size, parts + 1).astype(np.int64)
        pieces = [flat[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]
        squares = sum(_scan_pool(parts).map(lambda piece: float(np.einsum("i,i->", piece, piece)), pieces))
    else:
        squares = float(np.einsum("i,i->", flat, flat))
    return bool(np.isfinite(squares) and np.sqrt(squares) <= limit
                and np.abs(flat[:4096]).max() >= floor)


def check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")
    return int(value)


def check_n_clusters(n_clusters, n_samples: int) -> int:
    k = check_int("n_clusters", n_clusters, 1)
    if k > n_samples:
        raise ValueError(f"n_clusters={k} must be <= n_samples={n_samples}")
    return k


def check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or np.isnan(tol):
        raise ValueError(f"tol must be a real number (tol < 0 runs exactly max_iter iterations); got {tol!r}")
    return float(tol)


def check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an int or None; got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed={seed} must be >= 0 (or None)")
    return int(seed)


INITS = ("k-means++", "random")


def check_init(init, n_clusters: int, n_features: int):
    """A known init name, or an array of shape (n_clusters, n_features) returned as float64."""
    if isinstance(init, str):
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS} or an array of shape (n_clusters, n_features); got {init!r}")
        return init
    centers = init.detach().cpu().numpy() if is_torch_tensor(init) else np.asarray(init)
    _reject_kind(centers.dtype.kind, centers.dtype, what="init")
    expected = (n_clusters, n_features)
    if centers.shape != expected:
        raise ValueError(f"init has shape {centers.shape}; expected (n_clusters, n_features) = {expected}")
    centers = centers.astype(np.float64)
    if not np.isfinite(centers).all():
        raise ValueError("init contains NaN or infinity")
    return centers
