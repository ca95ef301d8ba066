"""What both torch families ask of a CUDA device, asked in one place.

``nvidia_device_present`` answers without importing torch, so ``kmbench list`` stays cheap;
``cuda_unusable`` imports torch and is called only once a case is being considered.
"""
from __future__ import annotations

import glob
import os


def nvidia_device_present() -> bool:
    """Whether the NVIDIA driver exposes a device node, checked without importing torch."""
    return os.path.exists("/dev/nvidia0") or bool(glob.glob("/proc/driver/nvidia/gpus/*"))


def no_cuda_device() -> str | None:
    """The reason a CUDA backend is unavailable on a machine without an NVIDIA device, else None."""
    return None if nvidia_device_present() else "no CUDA device"


def is_cuda_name(device: str) -> bool:
    """``"cuda"`` or ``"cuda:N"``."""
    return device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())


def cuda_unusable(device: str) -> str | None:
    """Why torch cannot run on ``device`` (``"cuda"`` or ``"cuda:N"``), or None when it can."""
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device (torch reports none)"
    index = torch.device(device).index
    if index is not None and index >= torch.cuda.device_count():
        return f"no CUDA device {index}: torch sees {torch.cuda.device_count()}"
    return None
