"""Device selection: `auto` means CUDA when present, else CPU; every stage also runs on CPU."""

from __future__ import annotations

import torch

from .errors import InputError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("config key compute.device", f"{name!r} requested but CUDA is not available here")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise InputError("config key compute.device", str(exc)) from None
