#!/usr/bin/env bash
# Everything that needs a CUDA device, in one call: the tests that touch torch (torch-cuda runs
# instead of skipping where a GPU is visible), the GPU's own rates, and torch-cuda side by side
# with the CPU peers on the same host. CI has no GPU; run this by hand where one is at hand:
#
#     bash tools/gpu_check.sh [tests] [rates] [sums] [kmeans] [linkage]   # default: all five
#
# Logs go under $OUT (default: a new temporary folder).
#
# It uses the host's python3 as it finds it (torch with CUDA, NumPy, scikit-learn). Wheels in
# .whl/ (scikit-learn-intelex, faiss-cpu, fastcluster for a machine that cannot reach a registry)
# are installed to a temporary folder first; or, in their place, .whl/site.tar.xz, the same
# wheels unpacked into one tree and packed with xz, which this script makes from a folder of them:
#
#     bash tools/gpu_check.sh pack DIR    # DIR/*.whl -> .whl/site.tar.xz (about half their size)
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == pack ]]; then
    # Packages at the top, shared libraries in lib/ (oneDAL's and TBB's data scheme); a package
    # that installs into the data scheme's site-packages (scikit-learn-intelex) moves to the top.
    [[ -d ${2:-} ]] && compgen -G "$2/*.whl" >/dev/null || { echo "pack DIR: no wheels in '${2:-}'" >&2; exit 2; }
    tree=$(mktemp -d) && mkdir -p "$tree/lib" .whl || exit 1
    for wheel in "$2"/*.whl; do unzip -qo "$wheel" -d "$tree" || exit 1; done
    for data in "$tree"/*.data/data/lib; do [[ -d $data ]] && cp -a "$data/." "$tree/lib/"; done
    for packages in "$tree"/lib/python3*/site-packages; do [[ -d $packages ]] && cp -a "$packages/." "$tree/"; done
    rm -rf "$tree"/lib/python3* "$tree"/*.data
    tar cJf .whl/site.tar.xz -C "$tree" . && rm -rf "$tree" && ls -l .whl/site.tar.xz
    exit
fi
OUT=${OUT:-$(mktemp -d)}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    # --prefix, not --target: oneDAL's and TBB's wheels put their libraries in the data scheme (lib/).
    site=$(python3 -c 'import sysconfig; print(sysconfig.get_path("purelib", vars={"base": "/tmp/kmbench-site"}))')
    python3 -m pip install --no-index --no-deps --no-compile --no-cache-dir --prefix /tmp/kmbench-site \
        .whl/*.whl >"$OUT/pip.log" 2>&1 && export PYTHONPATH="$PYTHONPATH:$site" \
        LD_LIBRARY_PATH="/tmp/kmbench-site/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    tail -2 "$OUT/pip.log"
elif [[ -f .whl/site.tar.xz ]]; then
    # The same wheels unpacked (packages at the top, shared libraries in lib/) and packed with xz:
    # about half the wheels' size, for a transfer with a size limit.
    mkdir -p /tmp/kmbench-site && tar xJf .whl/site.tar.xz -C /tmp/kmbench-site \
        && export PYTHONPATH="$PYTHONPATH:/tmp/kmbench-site" \
        LD_LIBRARY_PATH="/tmp/kmbench-site/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
parts=" ${*:-tests rates sums kmeans linkage} "
want() { [[ $parts == *" $1 "* ]]; }
echo "logs: $OUT"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
    lscpu | grep -E "^Model name|^CPU\(s\)"
    for module in sklearnex faiss fastcluster; do
        python3 -c "import $module; print('$module', getattr($module, '__version__', ''))" 2>&1 | tail -1
    done
    python3 -c "import sys, torch, numpy, sklearn; print('python', sys.version.split()[0], 'torch', torch.__version__,
'cuda', torch.version.cuda, 'numpy', numpy.__version__, 'scikit-learn', sklearn.__version__)"
} 2>&1 | tee "$OUT/machine.log"

# torch-cuda's oracle, contract, property and error tests (they skip with "no CUDA device" elsewhere).
status=0
if want tests; then
    python3 -m pytest tests -q -k "cuda or torch" -p no:cacheprovider --continue-on-collection-errors -rs \
        >"$OUT/tests.log" 2>&1 || status=1
    tail -25 "$OUT/tests.log"
fi

# The GPU's ceilings: float32 matmul without TF32 (the contract's arithmetic) and a device copy.
want rates && python3 - <<'EOF' 2>&1 | tee "$OUT/rates.log"
import torch
torch.backends.cuda.matmul.allow_tf32 = False
a, b = (torch.randn(8192, 8192, device="cuda") for _ in range(2))
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
def median_ms(fn, repeats=10):
    fn(); torch.cuda.synchronize(); runs = []
    for _ in range(repeats):
        start.record(); fn(); end.record(); end.synchronize(); runs.append(start.elapsed_time(end))
    return sorted(runs)[len(runs) // 2]
ms = median_ms(lambda: a @ b)
print(f"GPU float32 matmul (8192^3, no TF32): {2 * 8192 ** 3 / ms / 1e9:.1f} TFLOP/s")
x = torch.empty(1 << 30, device="cuda"); y = torch.empty_like(x)
ms = median_ms(lambda: y.copy_(x))
print(f"GPU device copy (4 GiB read + 4 GiB written): {2 * x.numel() * 4 / ms / 1e6:.0f} GB/s")
EOF

# deterministic=True's two ways of adding the sums, and index_add_'s atomics, per iteration.
want sums && python3 - <<'EOF' 2>&1 | tee "$OUT/sums.log"
import statistics
import torch
import kmbench
from impls import torch_lloyd
shapes = [(2_000_000, 2, 8), (2_000_000, 3, 5), (1_000_000, 4, 64), (500_000, 8, 32), (1_000_000, 16, 16),
          (100_000, 32, 64), (200_000, 64, 256), (50_000, 128, 1024), (100_000, 300, 100), (20_000, 256, 2048),
          (20_000, 64, 4096), (50_000, 512, 2), (10_000_000, 32, 256), (1_000_000, 128, 1024)]
print("ms per timed iteration, float32, deterministic=True with each way of adding the sums, median of 3:\n")
print("| n, d, k | rows per cluster in a chunk | index_add_ | sorted | product |")
print("|---|---|---|---|---|")
for n, d, k in shapes:
    X = torch.randn(n, d, device="cuda")
    C = X[torch.randperm(n, device="cuda")[:k]].cpu().numpy()
    cells = {}
    for method in ("index_add_", "sorted", "product"):
        torch_lloyd.sum_method = lambda *args, method=method: method
        runs = [kmbench.fit(X, k, backend="torch-cuda", init=C, max_iter=10, tol=-1.0, deterministic=True)
                for _ in range(4)]
        cells[method] = 1e3 * statistics.median(r.timings["per_iter"] for r in runs[1:])
    chunk = runs[0].info["chunk"]
    print(f"| {n}, {d}, {k} | {chunk // k} | " + " | ".join(f"{cells[m]:.2f}" for m in cells) + " |", flush=True)
EOF

# Do two identical calls return identical bits? index_add_'s atomics, then the ordered sums.
want kmeans && python3 - <<'EOF' 2>&1 | tee "$OUT/repeat.log"
import numpy as np
import kmbench
rng = np.random.default_rng(0)
X = rng.standard_normal((1_000_000, 4)) * 10.0 ** rng.integers(-6, 6, size=(1_000_000, 1))
for deterministic in (False, True):
    a, b = (kmbench.fit(X, 8, backend="torch-cuda", init=X[:8], max_iter=6, tol=-1.0, deterministic=deterministic)
            for _ in range(2))
    print(f"1M x 4 float64, k=8, deterministic={deterministic}: centres identical: {np.array_equal(a.centers, b.centers)}, "
          f"largest difference {np.abs(a.centers - b.centers).max():.1e}; labels identical: {np.array_equal(a.labels, b.labels)}")
EOF

# torch-cuda against scikit-learn, scikit-learn-intelex and faiss on this host's cores: the wide
# benchmark's float32 shapes, then two of GPU size.
want kmeans && python3 benchmarks/side_by_side.py --backends torch-cuda --repeats 3 --shapes \
    2000000,2,8 2000000,3,5 1000000,4,64 500000,8,32 1000000,16,16 100000,32,64 200000,64,256 \
    50000,128,1024 100000,300,100 20000,256,2048 20000,64,4096 50000,512,2 10000000,32,256 1000000,128,1024 \
    2>&1 | tee "$OUT/side_by_side.log"

# Single linkage (Prim's tree on the device) against fastcluster and SciPy, float64 blobs.
want linkage && python3 - <<'EOF' 2>&1 | tee "$OUT/linkage.log"
import statistics, time
import kmbench
from kmbench.check.data import blobs
for n in (20_000, 50_000):
    X = blobs(n, 16, 10, seed=0)[0]
    Z = {}
    for backend in ("torch-cuda", "fastcluster", "scipy"):
        if backend == "scipy" and n > 20_000:
            continue
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            Z[backend] = kmbench.linkage(X, "single", backend=backend).Z
            runs.append(time.perf_counter() - t0)
        print(f"single linkage n={n} d=16 float64 {backend}: {statistics.median(runs):.3f} s (median of 3)")
    same = abs(Z["torch-cuda"][:, 2] - Z["fastcluster"][:, 2]).max()
    print(f"  largest merge-height difference torch-cuda vs fastcluster: {same:.2e}")
EOF
exit $status
