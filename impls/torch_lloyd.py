"""Lloyd's iteration in native torch, with the data kept on one device (CPU or CUDA).

The same algorithm as ``impls/lloyd.py`` step for step (assign, cluster sums, the
empty-cluster rule, both convergence rules, the final assignment, the float64
inertia), written again in torch so that nothing leaves the device between
iterations; only a few scalars per iteration (empty-cluster count, and the
convergence tests when ``tol >= 0``) are read back.

Memory is bounded by a row chunk: the assignment never holds more than a
(chunk, k) block of distances. Cluster sums accumulate in float64 with
``index_add_``, as ``impls.lloyd.cluster_sums`` does with ``bincount``. On CUDA,
``index_add_`` adds with atomics in an order that changes from call to call: float64
keeps the differences in the last bits, far below the contract's tolerances, but
two identical calls need not return identical bits. ``deterministic=True`` adds
them in a fixed order instead, as the default does for few clusters (``sum_method``).

torch is imported inside functions only: listing backends imports this module.
"""
from __future__ import annotations

import glob
import warnings
from contextlib import contextmanager

import numpy as np

from .base import Backend, Fitted
from .torch_device import cuda_unusable, is_cuda_name, no_cuda_device

#: bytes of the (chunk, k) distance block plus its rows of X when the cache size is unknown
CPU_BLOCK_BYTES = 8 << 20
#: at most this much of the free GPU memory goes to the (chunk, k) block
GPU_BLOCK_FRACTION = 0.25
GPU_BLOCK_MAX = 1 << 30
#: rows per pass for the d-wide passes (variance, exact distances, inertia), which have no k factor
ROWS = 65536
MIN_CHUNK = 256
#: largest float16 value: a half-precision product beyond it overflows to inf
FLOAT16_MAX = 65504.0
HALF_TYPES = ("float16", "bfloat16")
#: deterministic sums on CUDA: PyTorch's sorted ``index_put_`` walks each cluster's rows of a chunk
#: in one warp, so it slows as rows per cluster grow; past this many, a one-hot product instead.
#: On an H200 the sorted path won at 4-186 rows per cluster (1.00-1.22x), the product from 781 up
#: (1.6-75x): tools/gpu_check.sh's "sums" table.
SORTED_SUMS_MAX_ROWS = 256
#: without deterministic=True, CUDA adds by index_add_'s atomics, except for few clusters: then
#: a chunk's atomics all land on k x d addresses and queue there, and the one-hot product (ordered
#: too) is faster. On an H200, per timed iteration against index_add_: k = 2-16 1.6-2.9x faster,
#: k = 24-32 1.2-1.5x, k = 48 1.2x, k = 64 level; at k = 100-1024 deterministic=True's ordered sums
#: ran 1.1-1.5x slower (forcing each way, as tools/gpu_check.sh's "sums" table does; November 2026).
PRODUCT_SUMS_MAX_K = 32


def last_level_cache_bytes() -> int | None:
    """Size of this CPU's largest cache (sysfs), or None where it cannot be read."""
    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
        digits = text.rstrip("KMGkmg")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes) if sizes else None


def default_chunk(n: int, k: int, d: int, itemsize: int, device: str, free_bytes: int | None = None) -> int:
    """Rows per assignment block, so the (chunk, k) distances stay small.

    CPU: the block, its rows of X and their float64 copy for the sums fit in half the
    last-level cache (the other half serves the centres and the other core's block).
    CUDA: the block takes at most a quarter of the free memory, and 1 GiB; beyond that
    the GEMM is no faster and a neighbour on the GPU would be starved.
    """
    per_row = k * itemsize + d * (itemsize + 8)
    if device.startswith("cuda"):
        budget = min(int((free_bytes or 0) * GPU_BLOCK_FRACTION), GPU_BLOCK_MAX)
    else:
        cache = last_level_cache_bytes()
        budget = cache // 2 if cache else CPU_BLOCK_BYTES
    return int(max(MIN_CHUNK, min(n, budget // per_row)))


def device_bytes_needed(n: int, k: int, d: int, itemsize: int, half: str | None = None) -> int:
    """Device memory a fit needs beyond the smallest block: X, per-point buffers, centres.

    Per point: X's row; two label buffers (int64, the current and the previous
    iteration's); the distances and the row norms (working dtype); and, when a cluster
    empties, the float64 exact distances with their sort (values and int64 indices).
    """
    per_point = d * itemsize + 2 * 8 + 2 * itemsize + 3 * 8
    if half:
        per_point += 2 * d
    per_cluster = d * (itemsize + 3 * 8) + 8
    return n * per_point + k * per_cluster + MIN_CHUNK * (k * itemsize + d * 8)


def sum_method(deterministic: bool, device: str, chunk: int, k: int) -> str:
    """How a pass adds its rows to the float64 cluster sums.

    "index_add_" on the CPU, which adds in order already. On CUDA with ``deterministic``,
    "sorted" (``index_put_(accumulate=True)``: PyTorch sorts the labels and adds each
    cluster's rows in their order) while a chunk holds at most ``SORTED_SUMS_MAX_ROWS`` rows
    per cluster, else "product" (a float64 one-hot matrix times the rows: cuBLAS adds in a
    fixed order, at 2 chunk k d flops). On CUDA without it, the faster of index_add_'s
    atomics and the product: the product up to ``PRODUCT_SUMS_MAX_K`` clusters.
    """
    if not device.startswith("cuda"):
        return "index_add_"
    if not deterministic:
        return "product" if k <= PRODUCT_SUMS_MAX_K else "index_add_"
    return "sorted" if chunk <= SORTED_SUMS_MAX_ROWS * k else "product"


@contextmanager
def cuda_fp32_precision(precision: str, active: bool):
    """Pin CUDA's float32 GEMM precision ("ieee" or "tf32") inside the block, then restore it.

    Pinned rather than inherited, so a process-wide TF32 setting cannot change a result.
    Only the new ``fp32_precision`` API is touched: torch refuses to mix it with ``allow_tf32``.
    """
    if not active:
        yield
        return
    import torch

    matmul = torch.backends.cuda.matmul
    old = matmul.fp32_precision
    matmul.fp32_precision = precision
    try:
        yield
    finally:
        matmul.fp32_precision = old


# -- the algorithm, mirroring impls/lloyd.py ------------------------------------------------


def mean_variance(X, rows: int = ROWS) -> float:
    """``impls.lloyd.mean_variance`` on the device: two passes, in float64, chunked so X is
    never copied whole. (One pass, ``E[x^2] - E[x]^2``, cancels on data far from the origin.)"""
    import torch

    n = X.shape[0]
    mean = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
    for start in range(0, n, rows):
        mean += X[start:start + rows].to(torch.float64).sum(dim=0)
    mean /= n
    sq = torch.zeros_like(mean)
    for start in range(0, n, rows):
        block = X[start:start + rows].to(torch.float64) - mean
        sq += (block * block).sum(dim=0)
    return float((sq / n).mean())


def squared_norms(X, rows: int = ROWS):
    """``||x_i||^2`` of every row, working dtype, shape (n,)."""
    import torch

    out = torch.empty(X.shape[0], dtype=X.dtype, device=X.device)
    for start in range(0, X.shape[0], rows):
        block = X[start:start + rows]
        torch.sum(block * block, dim=1, out=out[start:start + rows])
    return out


def exact_sq_distances(X, centers, labels, rows: int = ROWS):
    """``||x_i - c_label(i)||^2`` by direct differences in float64, shape (n,)."""
    import torch

    c64 = centers.to(torch.float64)
    out = torch.empty(X.shape[0], dtype=torch.float64, device=X.device)
    for start in range(0, X.shape[0], rows):
        diff = X[start:start + rows].to(torch.float64) - c64[labels[start:start + rows]]
        torch.sum(diff * diff, dim=1, out=out[start:start + rows])
    return out


def exact_inertia(X, centers, labels, rows: int = ROWS) -> float:
    """The torch twin of ``impls.base.exact_inertia``: direct differences, float64, on the device."""
    import torch

    c64 = centers.to(torch.float64)
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    for start in range(0, X.shape[0], rows):
        diff = X[start:start + rows].to(torch.float64) - c64[labels[start:start + rows]]
        total += torch.sum(diff * diff)
    return float(total)


def new_centers(X, old_centers, labels, sums, counts, rows: int = ROWS):
    """Means from sums and counts after the contract's empty-cluster rule.

    Each empty cluster, in ascending order, is re-seeded at the point farthest from
    its assigned old centre (exact float64 distance, ties to the lower index), which
    leaves its old cluster. When every point sits on its centre nothing moves. A
    cluster left with no points keeps its previous centre.

    Returns the centres (float64, shape (k, d)) and the number of re-seeded clusters.
    ``sums`` (float64, (k, d)) and ``counts`` (int64, (k,)) are modified in place.
    """
    import torch

    empty = torch.nonzero(counts == 0).flatten()
    relocated = 0
    if empty.numel():
        dist = exact_sq_distances(X, old_centers, labels, rows)
        if bool(dist.max() > 0):
            # A stable descending sort keeps equal distances in index order: ties go to the lower index.
            far = torch.sort(dist, descending=True, stable=True).indices[:empty.numel()]
            del dist
            points = X[far].to(torch.float64)
            # The far points are assigned to non-empty clusters, so these rows never overlap `empty`.
            # index_put_ adds in a fixed order on CUDA too (index_add_ would use atomics).
            sums.index_put_((labels[far],), -points, accumulate=True)
            counts.index_put_((labels[far],), torch.full_like(far, -1), accumulate=True)
            sums[empty] = points
            counts[empty] = 1
            relocated = int(empty.numel())
    centers = old_centers.to(torch.float64, copy=True)
    filled = counts > 0
    centers[filled] = sums[filled] / counts[filled].unsqueeze(1)
    return centers, relocated


class TorchLloyd(Backend):
    """Lloyd's iteration in torch on ``self.device``; the CPU and CUDA backends differ only there.

    Options
    -------
    chunk : int, optional
        Rows per assignment block; memory for distances is ``chunk * k`` values, never ``n * k``.
        Default: from the last-level cache (CPU) or the free GPU memory (CUDA).
    allow_tf32 : bool, default False
        Let float32 GEMMs on CUDA use TF32 (10-bit mantissa); off by default, it loosens the
        distances beyond the contract's float32 tolerances. No effect on CPU.
    half : {False, True, "float16", "bfloat16"}, default False
        Compute the ``X C^T`` product with half-precision operands (True means "float16"),
        upcast before the argmin. Keeps a half copy of X. Labels then differ from the oracle
        far beyond near-ties: an explicit speed/accuracy trade, recorded in ``Fitted.info``.
    deterministic : bool, default False
        CUDA: add the cluster sums in a fixed order, so that identical calls return identical
        bits (``sum_method``; its one-hot product keeps a (chunk, k) float64 matrix, twice the
        float32 distance block). Up to ``PRODUCT_SUMS_MAX_K`` clusters the default adds by that
        product too, being faster there. The CPU's sums are always in order.
    """

    requires = ("torch",)
    extra = "torch"
    native_inputs = ("torch",)

    def __init__(self, *, threads: int = 1, device: str | None = None, chunk=None, allow_tf32=False,
                 half=False, deterministic=False):
        from kmbench.core.validation import check_int

        super().__init__(threads=threads, device=device)
        self.chunk_option = None if chunk is None else check_int("chunk", chunk, 1)
        if not isinstance(allow_tf32, bool):
            raise ValueError(f"allow_tf32 must be True or False; got {allow_tf32!r}")
        if not isinstance(deterministic, bool):
            raise ValueError(f"deterministic must be True or False; got {deterministic!r}")
        if half is True:
            half = "float16"
        if half is not False and half not in HALF_TYPES:
            raise ValueError(f"half must be False, True, 'float16' or 'bfloat16'; got {half!r}")
        self.allow_tf32 = allow_tf32
        self.half = half or None
        self.deterministic = deterministic
        self.options = {"chunk": chunk, "allow_tf32": allow_tf32, "half": half, "deterministic": deterministic}

    def _accepts_device(self) -> bool:
        return self.device in self.devices

    def skip(self, n, k, d, dtype):
        if dtype not in self.dtypes:
            return f"{self.name} does not support dtype={dtype}; supported: {', '.join(self.dtypes)}"
        if not self._accepts_device():
            return f"{self.name} does not run on device={self.device!r}; devices: {', '.join(self.devices)}"
        return None

    # -- the timed cycle ------------------------------------------------------------------
    def prepare(self, X, centers):
        import torch

        dtype = getattr(torch, np.dtype(centers.dtype).name)
        self.copied = True
        if isinstance(X, torch.Tensor):
            X = X.detach()
            source = X.data_ptr()
            X = X.to(device=self.device, dtype=dtype).contiguous()
            self.copied = X.data_ptr() != source
        else:
            host = np.ascontiguousarray(X, dtype=centers.dtype)
            self.copied = not (isinstance(X, np.ndarray) and np.may_share_memory(host, X))
            with warnings.catch_warnings():
                # A read-only array is fine: X is never written.
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                X = torch.from_numpy(host)
            if self.device != "cpu":
                X = X.to(self.device)
                self.copied = True
        self.X = X
        n, d = X.shape
        k = centers.shape[0]
        self.init = torch.as_tensor(np.ascontiguousarray(centers), device=self.device).clone()
        self.row_norms = squared_norms(X)
        if self.half:
            half_dtype = getattr(torch, self.half)
            if self.half == "float16":
                largest = float(self.row_norms.max())
                if largest > FLOAT16_MAX:
                    raise ValueError(f"half='float16' would overflow: the largest ||x||^2 is {largest:.3g} > "
                                     f"{FLOAT16_MAX:g}; use half='bfloat16' or scale the data")
            self.X_half = X.to(half_dtype)
        else:
            self.X_half = None
        free = torch.cuda.mem_get_info(torch.device(self.device))[0] if self.device.startswith("cuda") else None
        self.chunk = min(n, self.chunk_option or default_chunk(n, k, d, X.element_size(), self.device, free))
        self.buffers = [torch.empty(n, dtype=torch.int64, device=self.device) for _ in range(2)]
        self.dist = torch.empty(n, dtype=dtype, device=self.device)
        self.block = torch.empty((self.chunk, k), dtype=dtype, device=self.device)
        self.block_min = torch.empty(self.chunk, dtype=dtype, device=self.device)
        self.sum_method = sum_method(self.deterministic, self.device, self.chunk, k)
        self.one_hot = (torch.empty((self.chunk, k), dtype=torch.float64, device=self.device)
                        if self.sum_method == "product" else None)

    def warm_up(self):
        import torch

        # First calls pay for the CUDA context, cuBLAS handles and oneDNN primitives.
        with torch.no_grad(), self._precision():
            m = min(self.chunk, self.X.shape[0])
            self._cross(slice(0, m), *self._operands(self.init), self.block[:m])
            self._synchronize()

    def run(self, max_iter, tol):
        import torch

        with torch.no_grad(), self._precision():
            self._run(max_iter, tol)
            self._synchronize()

    def _run(self, max_iter, tol):
        import torch

        X, centers = self.X, self.init
        # As in impls.lloyd: only the convergence rule needs the data's scale.
        threshold = tol * mean_variance(X) if tol >= 0 else tol
        history, previous, converged, relocated = [], None, False, 0
        current, spare = self.buffers
        for n_iter in range(1, max_iter + 1):
            labels, dist, sums, counts = self.step(centers, current)
            history.append(torch.sum(dist, dtype=torch.float64))
            updated, moved = new_centers(X, centers, labels, sums, counts)
            relocated += moved
            shift = torch.sum((updated - centers.to(torch.float64)) ** 2)
            centers = updated.to(X.dtype)
            if tol >= 0 and ((previous is not None and torch.equal(labels, previous)) or float(shift) <= threshold):
                converged = True
                break
            previous = labels
            current, spare = spare, current
        self.centers = centers
        # Nothing in the buffers is needed any more: the final labels may overwrite either.
        self.labels = self.assign(centers, current)[0]
        self.n_iter, self.converged, self.relocated = n_iter, converged, relocated
        self.history = torch.stack(history).tolist()

    # -- one pass over the data ---------------------------------------------------------------
    def _operands(self, centers):
        """What every block's product needs from the centres: ``||c||^2`` (k,) and C^T (d, k)."""
        import torch

        c_norms = torch.sum(centers * centers, dim=1)
        return c_norms, (centers if self.X_half is None else centers.to(self.X_half.dtype)).T

    def _cross(self, rows: slice, c_norms, centers_t, out):
        """``out = ||c||^2 - 2 X[rows] C^T``, shape (rows, k): the squared distances less ``||x||^2``."""
        import torch

        if self.X_half is None:
            return torch.addmm(c_norms, self.X[rows], centers_t, beta=1, alpha=-2, out=out)
        # Half operands, working-dtype result: the product is upcast before the norms are added.
        out.copy_(self.X_half[rows] @ centers_t)
        return out.mul_(-2).add_(c_norms)

    def assign(self, centers, labels, sums=None):
        """Labels (int64, shape (n,)) written into ``labels``, and squared distances (shape (n,)).

        ``||x||^2`` is constant per row, so the argmin needs only ``||c||^2 - 2 x.c``; it is added
        back for the distances, clamped at 0 against cancellation. With ``sums`` (float64, (k, d)),
        each block's rows are also added to their clusters' sums while they are in cache.
        """
        import torch

        n = self.X.shape[0]
        c_norms, centers_t = self._operands(centers)
        for start in range(0, n, self.chunk):
            stop = min(start + self.chunk, n)
            m = stop - start
            block = self._cross(slice(start, stop), c_norms, centers_t, self.block[:m])
            # torch.min over a dim returns the first minimal index on ties (documented, and tested).
            torch.min(block, dim=1, out=(self.block_min[:m], labels[start:stop]))
            torch.add(self.block_min[:m], self.row_norms[start:stop], out=self.dist[start:stop])
            if sums is not None:
                rows = self.X[start:stop].to(torch.float64)
                if self.sum_method == "product":
                    one_hot = self.one_hot[:m].zero_().scatter_(1, labels[start:stop, None], 1.0)
                    sums.addmm_(one_hot.T, rows)
                elif self.sum_method == "sorted":
                    sums.index_put_((labels[start:stop],), rows, accumulate=True)
                else:
                    sums.index_add_(0, labels[start:stop], rows)
        self.dist.clamp_(min=0)
        return labels, self.dist

    def step(self, centers, labels):
        """One pass: labels, squared distances, float64 sums (k, d), int64 counts (k,)."""
        import torch

        k, d = centers.shape
        sums = torch.zeros((k, d), dtype=torch.float64, device=self.X.device)
        labels, dist = self.assign(centers, labels, sums)
        counts = torch.bincount(labels, minlength=k)
        return labels, dist, sums, counts

    # -- device settings ------------------------------------------------------------------------
    def _synchronize(self):
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)

    def _precision(self):
        return cuda_fp32_precision("tf32" if self.allow_tf32 else "ieee", self.device.startswith("cuda"))

    def result(self):
        import torch

        labels = self.labels
        info = {
            "chunk": self.chunk,
            "allow_tf32": self.allow_tf32,
            "tf32_in_effect": self.allow_tf32 and self.device.startswith("cuda") and self.X.dtype == torch.float32,
            "half": self.half or False,
            "sums": f"float64 ({self.sum_method})",
            # index_add_ is the one way of adding that is not in a fixed order, and only on CUDA
            "deterministic": self.sum_method != "index_add_" or not self.device.startswith("cuda"),
            "input_copied": self.copied,
            "relocated": self.relocated,
            "torch": torch.__version__,
        }
        return Fitted(centers=self.centers.cpu().numpy(), labels=labels.to(torch.int32).cpu().numpy(),
                      inertia=exact_inertia(self.X, self.centers, labels),
                      n_iter=self.n_iter, converged=self.converged, inertia_history=self.history, info=info)


class TorchCPUKMeans(TorchLloyd):
    name = "torch-cpu"
    color, marker = "#ff7f0e", "^"
    fallback_rank = 2
    devices = ("cpu",)


class TorchCUDAKMeans(TorchLloyd):
    name = "torch-cuda"
    color, marker = "#8c564b", "v"
    fallback_rank = 6
    devices = ("cuda",)
    repeatable = False  # index_add_'s atomics; deterministic=True makes it so

    @classmethod
    def unavailable(cls):
        return super().unavailable() or no_cuda_device()

    def _accepts_device(self) -> bool:
        return is_cuda_name(self.device)

    def skip(self, n, k, d, dtype):
        reason = super().skip(n, k, d, dtype) or cuda_unusable(self.device)
        if reason is not None:
            return reason
        import torch

        free = torch.cuda.mem_get_info(torch.device(self.device))[0]
        needed = device_bytes_needed(n, k, d, np.dtype(dtype).itemsize, self.half)
        if needed > free:
            return (f"needs about {needed:,} bytes of GPU memory for n={n}, k={k}, d={d} {dtype}; "
                    f"{free:,} free on {self.device}")
        return None
