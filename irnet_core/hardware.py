"""Cheap facts about the machine, for DAG building (which must not pay for importing torch)."""

from __future__ import annotations

import os

_NVIDIA_DRIVER = "/proc/driver/nvidia/version"


def nvidia_gpu_present() -> bool:
    """True when an NVIDIA driver is loaded; `compute.device: auto` then asks the scheduler for a GPU."""
    return os.path.exists(_NVIDIA_DRIVER)
