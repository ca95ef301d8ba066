"""Peak resident memory of one fit per backend, each in a fresh subprocess, against a bound.

    python benchmarks/peak_memory.py                                  # numba, torch-cpu
    python benchmarks/peak_memory.py --backends numba,torch-cpu,float32,faiss --json peak.json

The case is fixed work: ``n=1,000,000``, ``d=16``, ``k=1024`` float32, 3 iterations
(``tol < 0``) from ``init="random"`` centres, through ``kmbench.fit``. The bound is
``2 x size(X) + 256 MB`` (MB = 2**20 bytes here): a backend may hold one working copy
of X and per-point buffers, never an n x k matrix (4 GB at this shape).

Each backend runs in its own interpreter, so nothing another backend imported or
cached counts against it. In that child: X is generated in float32 blocks (so its
generation never holds a float64 copy), the resident set size is read as the
baseline, the kernel's high-water mark is reset (``/proc/self/clear_refs``), the fit
runs, and the high-water mark (``VmHWM``) is read. The increase therefore counts
importing the backend's library (shown in its own column: torch alone is ~190 MB),
JIT compilation, the harness's own validation, and the fit. Where the high-water
mark cannot be reset (not Linux), a thread samples RSS every millisecond instead and
can miss a shorter peak; the output says which method was used.

Import-safe: asv imports every module in ``benchmarks/`` while discovering; all work
happens under ``if __name__ == "__main__"``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

MiB = 1 << 20
DEFAULT_BACKENDS = ("numba", "torch-cpu")
#: the headroom over 2 x size(X) that the bound allows (library code, JIT, allocator slack)
HEADROOM_MB = 256


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _rss() -> int:
    value = _status_kb("VmRSS")
    if value is None:
        import psutil

        value = psutil.Process().memory_info().rss
    return value


def _reset_high_water_mark() -> bool:
    """Reset the kernel's peak-RSS counter (Linux >= 4.0); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return _status_kb("VmHWM") is not None


class _Sampler:
    """Fallback peak tracker: a thread reading RSS every millisecond."""

    def __init__(self):
        import threading

        self.peak = _rss()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.done.wait(0.001):
            self.peak = max(self.peak, _rss())

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return max(self.peak, _rss())


def _make_data(n: int, d: int, seed: int):
    """Standard-normal X of shape (n, d), float32, written block by block into one array."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 65536):
        rng.standard_normal(out=X[start:start + 65536], dtype=np.float32)
    return X


def measure_child(args) -> dict:
    """Runs in the fresh subprocess: one backend, one fit; returns the measurement as a dict."""
    import gc
    import importlib

    import kmbench
    from kmbench.core.kmeans import backend_class

    X = _make_data(args.n, args.d, args.seed)
    gc.collect()
    row = {"backend": args.child, "n": args.n, "d": args.d, "k": args.k, "iterations": args.iterations,
           "x_bytes": X.nbytes}
    baseline = _rss()
    cls = backend_class(args.child)
    reason = cls.unavailable()
    if reason is not None:
        return {**row, "error": reason}
    for module in cls.requires:
        importlib.import_module(module)
    after_import = _rss()
    exact = _reset_high_water_mark()
    sampler = None if exact else _Sampler()
    try:
        result = kmbench.fit(X, args.k, backend=args.child, init="random", max_iter=args.iterations, tol=-1.0,
                             seed=args.seed, threads=args.threads)
    except kmbench.BackendUnavailable as exc:
        return {**row, "error": str(exc)}
    peak = _status_kb("VmHWM") if exact else sampler.stop()
    return {**row, "baseline_bytes": baseline, "import_bytes": after_import - baseline,
            "peak_increase_bytes": peak - baseline, "method": "VmHWM" if exact else "sampled 1 ms",
            "fit_seconds": result.timings["fit"], "threads": result.threads, "n_iter": result.n_iter,
            "info": {k: v for k, v in result.info.items() if isinstance(v, (int, float, str, bool))}}


def run_child(name: str, args) -> dict:
    """Measure backend ``name`` in a fresh interpreter; the last stdout line is its JSON."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--n", str(args.n), "--d", str(args.d),
           "--k", str(args.k), "--iterations", str(args.iterations), "--seed", str(args.seed)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"backend": name, "error": f"child exited {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def bound_bytes(x_bytes: int) -> int:
    return 2 * x_bytes + HEADROOM_MB * MiB


def format_table(rows: list[dict]) -> str:
    header = ("backend", "X MB", "peak MB", "bound MB", "within bound", "import MB", "fit s", "note")
    lines = []
    for r in rows:
        if "error" in r:
            lines.append((r["backend"], "", "", "", "n/a", "", "", r["error"]))
            continue
        bound = bound_bytes(r["x_bytes"])
        lines.append((r["backend"], f"{r['x_bytes'] / MiB:.0f}", f"{r['peak_increase_bytes'] / MiB:.0f}",
                      f"{bound / MiB:.0f}", "yes" if r["peak_increase_bytes"] <= bound else "NO",
                      f"{r['import_bytes'] / MiB:.0f}", f"{r['fit_seconds']:.1f}", ""))
    widths = [max(len(str(row[i])) for row in [header] + lines) for i in range(len(header))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in [header] + lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(DEFAULT_BACKENDS),
                        help="comma-separated registry names (default: %(default)s)")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="threads for every pool (default: all cores)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per backend")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("n", "d", "k", "iterations"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)} must be >= 1")
    if args.k > args.n:
        parser.error(f"--k={args.k} must be <= --n={args.n}")
    if args.child:
        print(json.dumps(measure_child(args)))
        return 0

    import impls

    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in names if b not in impls.REGISTRY]
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(impls.REGISTRY)}")
    print(f"peak RSS increase of one fit: n={args.n:,} d={args.d} k={args.k} float32, {args.iterations} "
          f"fixed iterations from init='random'; bound = 2 x size(X) + {HEADROOM_MB} MB (MB = 2**20 bytes)",
          flush=True)
    rows = []
    for name in names:
        rows.append(run_child(name, args))
        print(f"  measured {name}", file=sys.stderr, flush=True)
    print(format_table(rows))
    methods = sorted({r["method"] for r in rows if "method" in r})
    if methods:
        print(f"peak taken by: {', '.join(methods)}; 'import MB' (the backend's library) is part of 'peak MB'")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
