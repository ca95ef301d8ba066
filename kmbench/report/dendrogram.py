"""Dendrogram figures of a linkage matrix, drawn with SciPy and matplotlib's Agg backend.

Used by ``kmbench linkage`` (the user's data), the README's example and the report (:func:`iris`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

#: beyond this many points the tree is drawn down to its last LEAVES merges only
LEAVES = 40


def cut_height(Z: np.ndarray, n_clusters: int) -> float:
    """A height that cuts Z into ``n_clusters`` clusters: midway between the merges on either side."""
    heights = np.sort(Z[:, 2])
    n = len(heights) + 1
    if n_clusters <= 1:
        return float(heights[-1]) * 1.02
    if n_clusters >= n:
        return float(heights[0]) / 2
    return float(heights[n - n_clusters - 1] + heights[n - n_clusters]) / 2


def draw(Z: np.ndarray, path, *, title: str, cut: float | None = None, leaf_labels=None) -> Path:
    """Write the dendrogram of Z (n - 1, 4) to ``path`` (PNG); ``cut`` draws the flat cut's height.

    Returns the path. Large trees are truncated to their last :data:`LEAVES` merges, with each
    leaf showing how many points it holds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.cluster.hierarchy import dendrogram

    n = Z.shape[0] + 1
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    options = {"truncate_mode": "lastp", "p": LEAVES, "show_contracted": True} if n > LEAVES else {}
    if leaf_labels is not None and n <= LEAVES:
        options["labels"] = list(leaf_labels)
    dendrogram(Z, ax=ax, color_threshold=cut if cut is not None else 0.7 * float(Z[:, 2].max()),
               above_threshold_color="#999999", leaf_font_size=7, **options)
    if cut is not None:
        ax.axhline(cut, color="#d62728", linestyle="--", linewidth=1)
        ax.annotate(f"cut at {cut:.3g}", (0.99, cut), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                    color="#d62728", fontsize=8)
    ax.set_ylabel("merge height (linkage distance)")
    ax.set_xlabel("points (in brackets: a truncated subtree's size)" if n > LEAVES else "points")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def iris(path) -> tuple[Path, float]:
    """The README's pipeline on the iris flowers that ship with scikit-learn, drawn to ``path``.

    Standardised features (so no unit dominates the Euclidean distances), ward linkage, and a flat
    cut into 3 clusters with SciPy's ``fcluster``. Returns the path and the cut's adjusted Rand index
    against the species.
    """
    from scipy.cluster.hierarchy import fcluster
    from sklearn.datasets import load_iris
    from sklearn.metrics import adjusted_rand_score
    from sklearn.preprocessing import StandardScaler

    from kmbench.core.linkage import linkage

    data = load_iris()
    X = StandardScaler().fit_transform(data.data)
    # SciPy: the contract's own function, so the figure does not depend on what auto picks here
    result = linkage(X, "ward", backend="scipy")
    ari = float(adjusted_rand_score(data.target, fcluster(result.Z, 3, criterion="maxclust")))
    draw(result.Z, path, cut=cut_height(result.Z, 3),
         title=f"Ward linkage of the 150 iris flowers (standardised); the cut into 3 clusters "
               f"matches the species with ARI {ari:.2f}")
    return Path(path), ari
