"""The linkage family's cross-check: every backend, method and dtype against the float64 oracle.

Used by ``kmbench check``. Cases: Gaussian blobs (synthetic, no ties) and a sample of the iris
flowers that ship with scikit-learn (real, with duplicate rows, so ties); SciPy's linkage is
checked against the oracle on the same cases as the independent second opinion.
"""
from __future__ import annotations

import numpy as np

from .linkage_oracle import METHODS, agreement, linkage, replay

TOLERANCE = {"float64": 1e-9, "float32": 1e-4}


def cases(seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """(label, X float64) pairs small enough for the O(n^3) oracle."""
    from sklearn.datasets import load_iris

    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((5, 6)) * 4
    blobs = centers[rng.integers(0, 5, 120)] + rng.standard_normal((120, 6))
    iris = load_iris().data[rng.permutation(150)[:100]]
    return [("blobs 120x6", blobs), ("iris 100x4", iris)]


def check(names=None, dtypes=("float64", "float32"), methods=METHODS, seed: int = 0) -> list[dict]:
    """One row per (case, dtype, method, backend): status "ok", "FAIL" or "skipped", with the numbers.

    A backend passes when its merges replay (each merge is a closest pair at its recorded height) and,
    on data without ties, its sorted heights and clean-cut flat clusters agree with the oracle's.
    """
    from kmbench.core.errors import BackendUnavailable
    from kmbench.core.linkage import create, execute
    from kmbench.core.registry import names as registered

    names = list(names or registered("linkage"))
    rows = []
    for label, X in cases(seed):
        ties = label.startswith("iris")
        for dtype in dtypes:
            Xd = X.astype(dtype)
            X64 = Xd.astype(np.float64)
            for method in methods:
                reference = linkage(X64, method)
                for name in names:
                    row = {"case": label, "dtype": dtype, "method": method, "backend": name}
                    try:
                        backend = create(name, n=X.shape[0], d=X.shape[1], dtype=dtype, method=method, threads=1)
                    except BackendUnavailable as exc:
                        rows.append({**row, "status": "skipped", "detail": str(exc).split(": ", 1)[-1]})
                        continue
                    Z = execute(backend, Xd, method).Z
                    a = agreement(Z, reference, rtol=TOLERANCE[dtype])
                    problem = replay(X64, Z, method, rtol=TOLERANCE[dtype])
                    ok = problem is None and a["valid"] and (ties or a["ok"])
                    detail = problem or (f"height err {a['height_error']:.1e}, min ARI {a['min_ari']:.3f} "
                                         f"over {len(a['cuts'])} cuts" + (" (ties: replay decides)" if ties else ""))
                    rows.append({**row, "status": "ok" if ok else "FAIL", "detail": detail,
                                 "height_error": a["height_error"], "min_ari": a["min_ari"]})
    return rows
