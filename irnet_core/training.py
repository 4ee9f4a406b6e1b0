"""Pieces shared by both trainings: optimiser recipes, LR schedules, seeding, resumable checkpoints, history.

Checkpoints live outside the rule's declared output (Snakemake deletes the outputs of a failed job), are
written atomically each epoch, and carry a fingerprint of everything that determines the result: settings,
image ids, the content of images, labels and upstream models, and the code (irnet_core.provenance). A rerun
resumes only from a checkpoint whose fingerprint matches, and a finished training deletes its checkpoint, so a
state of other inputs is never picked up. Data order and augmentation are drawn from generators seeded
by (seed, epoch, index), so a resumed run sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled sample order of one epoch; depends only on (seed, epoch)."""
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Augmentation randomness of one sample in one epoch, independent of batching and worker processes."""
    return np.random.default_rng([seed, epoch, index])


def build_optimizer(groups: Sequence[dict], recipe: dict) -> torch.optim.Optimizer:
    """SGD or AdamW over parameter groups; each group dict holds `params` and an `lr_mult`."""
    param_groups = [
        {"params": list(g["params"]), "lr": recipe["lr"] * g.get("lr_mult", 1.0), "initial_lr": recipe["lr"] * g.get("lr_mult", 1.0)}
        for g in groups
        if len(list(g["params"]))
    ]
    if recipe["optimizer"] == "sgd":
        return torch.optim.SGD(param_groups, lr=recipe["lr"], momentum=recipe["momentum"], weight_decay=recipe["weight_decay"])
    if recipe["optimizer"] == "adamw":
        return torch.optim.AdamW(
            param_groups, lr=recipe["lr"], betas=(recipe["momentum"], 0.999), weight_decay=recipe["weight_decay"]
        )
    raise ValueError(f"unknown optimizer {recipe['optimizer']!r}")


def lr_factor(step: int, max_step: int, schedule: str, power: float = 0.9) -> float:
    """Learning-rate factor before update ``step`` (0-based): poly (paper) or cosine."""
    progress = min(step, max_step) / max(1, max_step)
    if schedule == "poly":
        return (1.0 - progress) ** power
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}")


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write atomically: a crash mid-write never leaves a truncated checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, fingerprint: str) -> dict | None:
    """Return the checkpoint at ``path`` if it exists and matches ``fingerprint``, else None."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged checkpoint is not fatal: training starts over
        log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
        return None
    if state.get("fingerprint") != fingerprint:
        log.info("checkpoint %s belongs to other settings; starting from scratch", path)
        return None
    return state


def resume(path: str | Path, fingerprint: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[list[dict], int]:
    """Restore model and optimizer from a matching checkpoint; returns (history so far, first epoch to run)."""
    state = load_checkpoint(path, fingerprint)
    if state is None:
        return [], 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    log.info("resuming from %s after epoch %d", path, int(state["epoch"]))
    return list(state["history"]), int(state["epoch"]) + 1


def save_epoch(
    path: str | Path, fingerprint: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, epoch: int, history: list[dict]
) -> None:
    """The end-of-epoch checkpoint that :func:`resume` restores."""
    save_checkpoint(
        path,
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch, "history": history, "fingerprint": fingerprint},
    )


def write_history(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    rows = list(rows)
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def finish(checkpoint_path: str | Path) -> None:
    """Remove the resumable state once the final model is written: a finished training leaves nothing that a
    later run could take as its own (that run starts from scratch unless it was interrupted itself)."""
    Path(checkpoint_path).unlink(missing_ok=True)
