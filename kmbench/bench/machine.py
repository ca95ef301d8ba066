"""The machine a benchmark ran on: CPU, cores, memory, BLAS, library versions, GPU, GEMM peak, memory bandwidth.

asv's ``machine.json`` has no field for a GPU, the BLAS or a measured peak, so
``kmbench bench`` writes this module's description as ``kmbench-machine.json`` next to
asv's results (and writes what fits into the asv machine file it runs asv with). The float32 GEMM peak is
measured once and kept in that file: it is the roof that backends' GFLOP/s are read
against; the memory bandwidth (STREAM add) likewise. The two are a machine's *ceilings*:
machines are compared against them, and a cost model moves from one machine to another
by their ratios (``kmbench.advise.machines``). A machine is keyed by its host name and
its CPU (:func:`machine_id`), since cloud hosts share names across CPUs.

    >>> from kmbench.bench.machine import describe_machine, load_machine, gemm_peak
    >>> load_machine(".asv/fast/results")["gemm_peak"]     # {"float32": 61.3}
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import time
from importlib import metadata
from pathlib import Path

from kmbench.core.cpu import cpu_model, cpuinfo, vector_isa

#: the file kept next to asv's results
FILENAME = "kmbench-machine.json"
#: distributions whose versions are part of a result
LIBRARIES = ("kmbench", "numpy", "scipy", "scikit-learn", "numba", "llvmlite", "torch", "faiss-cpu", "dask",
             "distributed", "dask-ml", "threadpoolctl", "asv", "asv_runner")


def memory_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def blas_info() -> list[dict]:
    """threadpoolctl's view of the BLAS libraries NumPy loaded (name, version, threads, path)."""
    from threadpoolctl import threadpool_info

    import numpy  # noqa: F401  (loads the BLAS, so threadpoolctl can see it)

    keep = ("user_api", "internal_api", "version", "num_threads", "threading_layer", "architecture",
            "filepath")
    return [{k: p.get(k) for k in keep if p.get(k) is not None} for p in threadpool_info()
            if p.get("user_api") == "blas"]


def blas_summary(info: list[dict]) -> str:
    found = [" ".join(str(v) for v in (p.get("internal_api"), p.get("version")) if v)
             + (f" ({p['architecture']})" if p.get("architecture") else "") for p in info]
    return ", ".join(dict.fromkeys(found)) or "unknown"


def library_versions() -> dict:
    """``{distribution: version}`` for the libraries installed here."""
    out = {"python": platform.python_version()}
    for dist in LIBRARIES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def gpu_name() -> str:
    """The GPU(s) this machine has, or ``"none"``.

    ``nvidia-smi`` first (cheap, no import); torch only where it is installed and no
    ``nvidia-smi`` answered, since importing torch takes seconds.
    """
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
            if out.returncode == 0 and names:
                return "; ".join(names)
        except (OSError, subprocess.SubprocessError):
            pass
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        try:
            import torch

            if torch.cuda.is_available():
                return "; ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        except Exception:  # a broken CUDA install means no usable GPU, which is the answer
            pass
    return "none"


def cpu_tag() -> str:
    """The CPU in a few characters: vendor, family and model, widest vector ISA, cores (``amd-f25m17-avx512-2c``).

    Hosts of cloud machines often share one name (``vm``) while their CPUs change, so a
    machine is keyed by its host *and* this tag: results of different CPUs stay apart.
    """
    from kmbench.core.threads import available_cores

    info = cpuinfo()
    vendor = {"AuthenticAMD": "amd", "GenuineIntel": "intel"}.get(info.get("vendor_id", ""),
                                                                  (platform.machine() or "cpu").lower())
    family = f"f{info['cpu family']}m{info['model']}" if "cpu family" in info and "model" in info else ""
    parts = [vendor, family, vector_isa(), f"{available_cores()}c"]
    return "-".join(p for p in parts if p)


def machine_id() -> str:
    """This machine's key in recorded results: the host name and :func:`cpu_tag`."""
    return f"{platform.node() or 'unknown'}-{cpu_tag()}"


class OtherLoad:
    """What other processes, and the hypervisor, took of the CPUs while a block ran: a timing
    taken while they did measures the machine's sharing as much as the code.

    The CPUs' busy time (``/proc/stat``: all but idle and iowait, steal counted apart) less
    this process's own CPU time (all its threads), per second of the block. Linux only;
    elsewhere the fields stay None. The load average cannot tell this: it lags by a minute
    and counts the benchmark's own threads.

        >>> with OtherLoad() as load:
        ...     run_the_case()
        >>> load.cpus        # e.g. 0.9: other processes kept most of a CPU busy
    """

    #: other processes' CPUs above which a timing is flagged as taken on a busy machine
    BUSY_CPUS = 0.25

    def __init__(self):
        self.cpus = self.steal = None

    @staticmethod
    def _sample():
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        steal = fields[7] if len(fields) > 7 else 0
        # guest time is already inside user and nice
        busy = sum(fields[:8]) - idle - steal
        own = os.times()
        return time.perf_counter(), busy / tick, steal / tick, own.user + own.system

    def __enter__(self):
        self._start = self._sample()
        return self

    def __exit__(self, *exc):
        end = self._sample()
        if self._start is not None and end is not None:
            wall = max(end[0] - self._start[0], 1e-9)
            others = (end[1] - self._start[1]) - (end[3] - self._start[3])
            self.cpus = max(0.0, others) / wall
            self.steal = (end[2] - self._start[2]) / wall
        return False

    @property
    def busy(self) -> bool:
        """Whether others (or the hypervisor's steal) took at least BUSY_CPUS of the CPUs."""
        return self.cpus is not None and self.cpus + self.steal >= self.BUSY_CPUS

    def __str__(self) -> str:
        if self.cpus is None:
            return "other processes' load unknown"
        return f"{self.cpus:.2f} CPUs of other processes, {self.steal:.2f} stolen"

    @staticmethod
    def busy_note(loads: dict) -> str:
        """The line a benchmark prints under its table naming the cases (the keys of ``loads``,
        each an ``OtherLoad``) measured on a busy machine; empty when there were none."""
        busy = [f"{case} ({load})" for case, load in loads.items() if load.busy]
        if not busy:
            return ""
        return ("measured while other processes or the hypervisor took CPU time (their timings are "
                "suspect; run them again on a quiet machine): " + "; ".join(busy))


def memory_bandwidth(*, mib: int = 256, repeats: int = 5, threads: int | None = None) -> dict:
    """Measured memory bandwidth: STREAM's "add" (c = a + b) over float64 arrays far larger than caches.

    Each of ``threads`` threads adds its own slice (NumPy releases the GIL in ufuncs), so
    every core pulls on memory at once; bytes are counted as STREAM counts them, 3 x 8
    per element (two reads, one write). Best of ``repeats``: a ceiling is what the
    hardware can reach. Runs at the harness's thread count.

    Returns
    -------
    dict with ``GB/s`` (float), ``mib`` (per array), ``threads``, ``seconds`` (every run).
    """
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from kmbench.core.threads import check_threads

    if mib < 1:
        raise ValueError(f"mib={mib} should be >= 1")
    if repeats < 1:
        raise ValueError(f"repeats={repeats} should be >= 1")
    threads = check_threads(threads)
    size = mib * (1 << 20) // 8
    a, b = np.ones(size), np.full(size, 2.0)
    c = np.empty(size)
    bounds = np.linspace(0, size, threads + 1).astype(int)
    slices = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]

    def add(part):
        np.add(a[part], b[part], out=c[part])

    seconds = []
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(add, slices))  # first touch of c: page faults, not bandwidth
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(add, slices))
            seconds.append(time.perf_counter() - t0)
    return {"GB/s": 3 * 8 * size / min(seconds) / 1e9, "mib": mib, "threads": threads, "seconds": seconds}


def gemm_peak(*, size: int = 2048, repeats: int = 5, threads: int | None = None, dtype: str = "float32") -> dict:
    """Measured matrix-multiply throughput: the best of ``repeats`` products of two (size, size) matrices.

    Best rather than median because a peak is what the hardware can reach; the other
    helpers' GFLOP/s are read against it. Runs at the harness's thread count.

    Returns
    -------
    dict with ``gflops`` (float), ``dtype``, ``size``, ``threads``, ``seconds`` (list of every run).
    """
    import numpy as np

    from kmbench.core.threads import check_threads, limited_threads

    if size < 16:
        raise ValueError(f"size={size} should be >= 16")
    if repeats < 1:
        raise ValueError(f"repeats={repeats} should be >= 1")
    threads = check_threads(threads)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    out = np.empty((size, size), dtype=dtype)
    seconds = []
    with limited_threads(threads):
        np.matmul(a, b, out=out)  # first call: BLAS thread start-up and page faults
        for _ in range(repeats):
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            seconds.append(time.perf_counter() - t0)
    return {"gflops": 2.0 * size ** 3 / min(seconds) / 1e9, "dtype": str(np.dtype(dtype)), "size": size,
            "threads": threads, "seconds": seconds}


_DISTRIBUTIONS = None


def versions(requires=()) -> dict:
    """numpy's version and those of the distributions providing ``requires``, found without importing them."""
    global _DISTRIBUTIONS
    from importlib import metadata

    import numpy

    out = {"python": platform.python_version(), "numpy": numpy.__version__}
    if requires and _DISTRIBUTIONS is None:
        _DISTRIBUTIONS = metadata.packages_distributions()
    for module in requires:
        for dist in (_DISTRIBUTIONS or {}).get(module, [module]):
            try:
                out[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                out[dist] = None
    return out


def host() -> dict:
    """Where the numbers were taken: hostname, CPU model, cores this process may use."""
    from kmbench.core.threads import available_cores

    return {"hostname": socket.gethostname(), "cpu": cpu_model(), "cores": available_cores(),
            "platform": platform.platform()}


def describe_machine(*, measure: bool = False, results_dir=None) -> dict:
    """Everything known about this machine, as JSON-ready values.

    The GEMM peak (and the GPU probe) come from the stored description (``load_machine(results_dir)``)
    when it is this machine's at the same thread count; otherwise the peak is measured when
    ``measure`` is True and left out when not (it takes seconds).
    """
    from kmbench.core.threads import available_cores, default_threads

    import psutil

    stored = load_machine(results_dir)
    if stored and stored.get("machine") not in (machine_id(), platform.node() or "unknown"):
        stored = None  # another machine's description: nothing of it applies here
    if stored and stored.get("cpu_tag", cpu_tag()) != cpu_tag():
        stored = None  # the same host name on another CPU (cloud machines): measure again
    blas = blas_info()
    info = {
        "machine": machine_id(),
        "host": platform.node() or "unknown",
        "cpu_tag": cpu_tag(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "available_cores": available_cores(),
        "threads": default_threads(),
        "memory_bytes": memory_bytes(),
        "memory": f"{memory_bytes() / 2**30:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "blas": blas_summary(blas),
        "blas_info": blas,
        # probing for a GPU may import torch (seconds); a stored answer for this machine stands
        "gpu": stored["gpu"] if stored and stored.get("gpu") else gpu_name(),
        "versions": library_versions(),
    }
    if stored and stored.get("gemm_peak") and stored.get("peak_measurement", {}).get("threads") == info["threads"]:
        info["gemm_peak"] = stored["gemm_peak"]
        info["peak_measurement"] = stored["peak_measurement"]
    elif measure:
        peak = gemm_peak(threads=info["threads"])
        info["gemm_peak"] = {peak["dtype"]: round(peak["gflops"], 2)}
        info["peak_measurement"] = peak
    if stored and stored.get("memory_bandwidth") and stored["memory_bandwidth"].get("threads") == info["threads"]:
        info["memory_bandwidth"] = stored["memory_bandwidth"]
    elif measure:
        bw = memory_bandwidth(threads=info["threads"])
        info["memory_bandwidth"] = dict(bw, **{"GB/s": round(bw["GB/s"], 1)})
    info["described_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return info


def _find_results_dir() -> Path | None:
    """``KMBENCH_RESULTS``, else the newest ``.asv/*/results`` holding a description, in the project root."""
    env = os.environ.get("KMBENCH_RESULTS")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2] / ".asv"
    found = sorted(root.glob(f"*/results/{FILENAME}"), key=lambda p: p.stat().st_mtime) + \
        sorted(root.glob(f"results/{FILENAME}"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def load_machine(results_dir=None) -> dict | None:
    """The description stored in ``results_dir`` (see :func:`save_machine`), or None if there is none.

    Without ``results_dir``: ``KMBENCH_RESULTS``, else the newest ``.asv/<profile>/results``.
    """
    results_dir = Path(results_dir) if results_dir is not None else _find_results_dir()
    if results_dir is None:
        return None
    path = results_dir / FILENAME
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_machine(results_dir, info: dict | None = None) -> Path:
    """Write ``info`` (default: :func:`describe_machine`, measuring the peak once) to ``results_dir``."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    if info is None:
        info = describe_machine(measure=True, results_dir=results_dir)
    path = results_dir / FILENAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def asv_machine_entry(info: dict) -> dict:
    """What asv's machine file holds for this machine; the GPU rides in the CPU text (asv has no field)."""
    cores = info.get("physical_cores") or info.get("cores")
    return {"machine": info["machine"], "os": info["os"], "arch": info["arch"],
            "cpu": f"{info['cpu']} ({cores} cores, {info.get('cores')} threads); GPU: {info.get('gpu', 'none')}",
            "num_cpu": str(info.get("available_cores") or info.get("cores")), "ram": str(info["memory_bytes"])}


def write_asv_machine_file(home, info: dict) -> Path:
    """``HOME/.asv-machine.json`` describing this machine, for asv processes run with that ``HOME``.

    asv reads the machine from ``~/.asv-machine.json`` only, and ``asv machine`` cannot create it
    non-interactively with fields given (asv issue 944: KeyError 'machine' when the file is
    missing). Writing it ourselves, in a folder of the project's, keeps ``kmbench bench``
    independent of the user's home and leaves that home untouched.
    """
    path = Path(home) / ".asv-machine.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({info["machine"]: asv_machine_entry(info), "version": 1}, indent=4) + "\n",
                    encoding="utf-8")
    return path


# -- the machine ---------------------------------------------------------------------------------
def machine_facts(results_dir, machine, info: dict) -> dict:
    """What the report says about the machine: CPU, cores, memory, BLAS, versions, GPU, GEMM peak.

    From the description ``kmbench bench`` stores beside the results
    (``kmbench.bench.machine.load_machine``); where there is none, asv's machine.json ``info``,
    plus this process's own description when the report is written on that machine.
    """
    import platform

    stored = load_machine(results_dir) or {}
    if stored.get("machine") not in (None, machine):
        stored = {}  # another machine's description
    if not stored and (machine is None or machine == platform.node()):
        stored = describe_machine(measure=False, results_dir=results_dir)
    facts = {"name": machine or stored.get("machine") or info.get("machine") or platform.node()}
    cpu = stored.get("cpu") or info.get("cpu")
    if cpu:
        facts["CPU"] = cpu
    if stored.get("cores"):
        facts["cores"] = (f"{stored.get('physical_cores') or '?'} physical, {stored['cores']} logical, "
                          f"{stored.get('available_cores')} available; benchmarks ran on {stored.get('threads')} "
                          "threads")
    elif info.get("num_cpu"):
        facts["cores"] = str(info["num_cpu"])
    memory = stored.get("memory") or (f"{int(info['ram']) / 2 ** 30:.1f} GiB" if str(info.get("ram", "")).isdigit()
                                      else info.get("ram"))
    if memory:
        facts["memory"] = memory
    for key, label in (("os", "OS"), ("arch", "architecture"), ("blas", "BLAS"), ("gpu", "GPU")):
        value = stored.get(key) or info.get(key)
        if value:
            facts[label] = value
    facts["versions"] = stored.get("versions") or {}
    facts["gemm_peak"] = {k: float(v) for k, v in (stored.get("gemm_peak") or {}).items()
                          if isinstance(v, (int, float))}
    bw = stored.get("memory_bandwidth") or {}
    if bw.get("GB/s"):
        facts["memory_bandwidth"] = (f"{bw['GB/s']:.1f} GB/s (best of {len(bw.get('seconds', []))} c = a + b over "
                                     f"three {bw.get('mib')} MiB float64 arrays on {bw.get('threads')} threads, "
                                     "STREAM add)")
    measured = stored.get("peak_measurement") or {}
    if measured:
        facts["peak_note"] = (f"best of {len(measured.get('seconds', []))} products of two "
                              f"{measured.get('size')}x{measured.get('size')} {measured.get('dtype')} matrices "
                              f"on {measured.get('threads')} threads")
    facts.setdefault("GPU", "none recorded")
    return facts
