"""What this CPU is: its model, family, flags and widest vector instruction set, read once.

Every number kmbench prints sits beside the CPU it was measured on, and the Numba backend
chooses its kernels from the same flags, so the reading lives here, in the core that both
the backends and the harness may import.
"""
from __future__ import annotations

import functools
import platform

#: the vector extensions that decide which kernels are fast, widest last
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile")


@functools.lru_cache(maxsize=1)
def cpuinfo() -> dict:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.partition(":")
                key = key.strip()
                if not sep:
                    if fields:  # a blank line ends the first processor's block
                        break
                    continue
                fields.setdefault(key, value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU's model name, else what ``platform`` knows."""
    return cpuinfo().get("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> frozenset:
    return frozenset(cpuinfo().get("flags", "").split())


def vector_isa() -> str:
    """The widest vector extension: ``amx``, ``avx512``, ``avx2``, ``neon`` or ``""``."""
    flags = cpu_flags()
    return next((name for name, flag in (("amx", "amx_tile"), ("avx512", "avx512f"), ("avx2", "avx2"),
                                        ("neon", "asimd")) if flag in flags), "")


def describe() -> str:
    """One line for a benchmark's header: model, family and model numbers, vector extensions."""
    info = cpuinfo()
    where = f" (family {info['cpu family']} model {info['model']})" if "cpu family" in info and "model" in info else ""
    wide = [flag for flag in VECTOR_FLAGS if flag in cpu_flags()]
    return f"{cpu_model()}{where}; {' '.join(wide) or 'no AVX2'}"
