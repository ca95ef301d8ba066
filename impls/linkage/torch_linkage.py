"""Single linkage in torch, one device-agnostic driver for the CPU and CUDA backends.

Prim's minimum spanning tree with the data kept on the device: each step computes the
distances from the point just added to every point (``torch.cdist`` by exact differences,
never the matrix-product identity), lowers each point's distance to the tree, and picks the
closest outside point with an argmin that stays on the device. Nothing is read back until
the n - 1 edges are done, so a step costs a few kernel launches and no host round trip.
Memory: O(n*d). torch is imported inside methods only: listing backends imports this module.
"""
from __future__ import annotations

import numpy as np

from ..torch_device import cuda_unusable, is_cuda_name, no_cuda_device
from .base import Linked, LinkageBackend, tree_to_linkage


def prim_edges(X):
    """Prim's tree of X (n, d) on its device: (a, b, heights) tensors of the n - 1 edges."""
    import torch

    n = X.shape[0]
    device = X.device
    best = torch.full((n,), float("inf"), dtype=X.dtype, device=device)
    link = torch.zeros(n, dtype=torch.int64, device=device)
    in_tree = torch.zeros(n, dtype=torch.bool, device=device)
    a = torch.empty(n - 1, dtype=torch.int64, device=device)
    b = torch.empty(n - 1, dtype=torch.int64, device=device)
    h = torch.empty(n - 1, dtype=X.dtype, device=device)
    cur = torch.zeros(1, dtype=torch.int64, device=device)
    in_tree[cur] = True
    for step in range(n - 1):
        dist = torch.cdist(X, X.index_select(0, cur), compute_mode="donot_use_mm_for_euclid_dist").squeeze(1)
        closer = dist < best
        best = torch.where(closer, dist, best)
        link = torch.where(closer, cur, link)
        best.masked_fill_(in_tree, float("inf"))
        j = torch.argmin(best, dim=0, keepdim=True)
        a[step:step + 1] = link.index_select(0, j)
        b[step:step + 1] = j
        h[step:step + 1] = best.index_select(0, j)
        in_tree[j] = True
        cur = j
    return a, b, h


class TorchLinkage(LinkageBackend):
    requires = ("torch",)
    extra = "torch"
    methods = ("single",)
    method_reason = ("only single linkage has a device algorithm here (Prim's tree); the chains for "
                     "complete, average and ward decide on the host at every step: use numba")

    def prepare(self, X, method):
        import torch

        self.method = method
        host = np.ascontiguousarray(X)
        self.X = torch.from_numpy(host).to(self.device)

    def warm_up(self):
        import torch

        with torch.no_grad():
            prim_edges(self.X[:3])
        self._synchronize()

    def run(self):
        import torch

        with torch.no_grad():
            self.edges = prim_edges(self.X)
        self._synchronize()

    def _synchronize(self):
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)

    def result(self):
        import torch

        a, b, h = (t.cpu().numpy() for t in self.edges)
        return Linked(Z=tree_to_linkage(a, b, h),
                      info={"algorithm": "Prim's minimum spanning tree on the device", "memory": "O(n*d)",
                            "torch": torch.__version__})

    def close(self):
        self.X = self.edges = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


class TorchCPULinkage(TorchLinkage):
    name = "torch-cpu"
    devices = ("cpu",)
    color, marker = "#ff7f0e", "^"
    fallback_rank = 6


class TorchCUDALinkage(TorchLinkage):
    name = "torch-cuda"
    devices = ("cuda",)
    color, marker = "#8c564b", "v"
    fallback_rank = 5

    @classmethod
    def unavailable(cls):
        return super().unavailable() or no_cuda_device()

    def accepts_device(self):
        return is_cuda_name(self.device)

    def skip(self, n, d, dtype, method):
        return super().skip(n, d, dtype, method) or cuda_unusable(self.device)
