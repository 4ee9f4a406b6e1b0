"""The one training loop of the workflow: CAM classifier, IRNet, and the final models trained on pseudo-labels.

In the spirit of torchvision's `references/` (`train_one_epoch` + a loop over epochs), with what a cached,
resumable workflow stage needs on top:

- **Resume.** A checkpoint is written atomically after every epoch, outside the rule's declared outputs
  (Snakemake deletes the outputs of a failed job). It carries a fingerprint of everything that determines the
  result: settings, image ids, the content of images, labels and upstream models, and the code
  (:mod:`irnet_core.provenance`). A rerun resumes only from a checkpoint whose fingerprint matches, and a
  finished training deletes its checkpoint, so a state of other inputs is never picked up.
- **Determinism.** Data order and augmentation derive from ``(seed, epoch, index)``: :class:`EpochSampler`
  yields ``(epoch, index)`` keys and the datasets draw their randomness from :func:`sample_rng`, so a resumed
  run sees exactly the batches an uninterrupted one would, with any number of loader workers (persistent
  workers never see a stale epoch, because the epoch travels with each key).
- **Progress.** Every ``log_every`` steps a line with loss, learning rate, images/s and ETA; after every
  epoch a row appended to the history CSV, which a user can watch while the job runs.
- **Speed where numerics allow.** On CUDA: mixed precision for the forward pass (:class:`Precision`; losses
  stay float32), pinned memory and persistent loader workers. On CPU nothing changes numerically.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_path
from .settings import OptimizerSettings, SGDSettings

log = logging.getLogger(__name__)

StepFn = Callable[[Any], Mapping[str, torch.Tensor]]


# ---- randomness -------------------------------------------------------------------------------------------


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


class EpochSampler(torch.utils.data.Sampler):
    """``(epoch, index)`` keys of one epoch in the order :func:`epoch_order` gives, cut to whole batches."""

    def __init__(self, n: int, seed: int, batch_size: int):
        self.n, self.seed, self.batch_size = n, seed, batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (self.n // self.batch_size) * self.batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in epoch_order(self.n, self.seed, self.epoch)[: len(self)]:
            yield self.epoch, int(index)


@dataclass(frozen=True)
class TrainingRun:
    """Where a training writes and how it runs: the outputs, the checkpoint folder (resumed from when its
    fingerprint matches), the device and the data-loading workers. No result setting: nothing here enters a
    fingerprint."""

    out_model: str
    out_history: str
    checkpoint_dir: str
    device: torch.device
    num_workers: int


# ---- optimisers and schedules -----------------------------------------------------------------------------


def build_optimizer(groups: Sequence[dict], recipe: OptimizerSettings | SGDSettings) -> torch.optim.Optimizer:
    """SGD or AdamW (``recipe.optimizer``) over parameter groups; each group dict holds ``params`` and an optional
    ``lr_mult``."""
    lr = recipe.lr
    param_groups = [
        {"params": params, "lr": lr * g.get("lr_mult", 1.0), "initial_lr": lr * g.get("lr_mult", 1.0)}
        for g in groups
        if (params := list(g["params"]))
    ]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(param_groups, lr=lr, betas=(recipe.momentum, 0.999), weight_decay=recipe.weight_decay)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")


def epochs_for(name: str, epochs: int, min_steps: int, steps_per_epoch: int) -> int:
    """Epochs to train: ``epochs``, or more where they give fewer than ``min_steps`` optimiser steps.

    A length in epochs means a different training on every dataset size (6 IRNet epochs are 300 steps on 400
    images and 180 on 240), so the floor keeps a small dataset from being silently undertrained. Whole epochs
    keep the checkpoints and the data order per epoch as they are.
    """
    needed = math.ceil(min_steps / max(1, steps_per_epoch))
    if needed > epochs:
        log.info("%s: %d steps per epoch; %d epochs instead of %d, for the floor of %d steps (min_steps)",
                 name, steps_per_epoch, needed, epochs, min_steps)  # fmt: skip
        return needed
    return epochs


def build_scheduler(
    optimizer: torch.optim.Optimizer, max_step: int, schedule: str, power: float = 0.9, warmup: int = 0
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step decay of every group's initial lr to 0 over ``max_step`` updates (poly, the paper's, or cosine),
    times a linear ramp ``min(1, (step + 1) / warmup)`` over the first ``warmup`` updates (0: none; detection
    heads trained from scratch diverge without one).

    torch's schedulers update the lr by a ratio per step rather than from the closed form; the two agree to a
    few ulps (about 1e-13 relative after 30000 steps). Cosine must not step past ``max_step`` (torch's cosine
    rises again there): :func:`fit` steps exactly ``epochs * steps_per_epoch`` times, which is ``max_step``.
    """
    lr_scheduler = torch.optim.lr_scheduler
    if schedule == "poly":
        decay = lr_scheduler.PolynomialLR(optimizer, total_iters=max_step, power=power)
    elif schedule == "cosine":
        decay = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_step)
    else:
        raise ValueError(f"unknown schedule {schedule!r}")
    if warmup <= 1:  # a ramp over one step is the factor 1
        return decay
    # LinearLR reaches its end factor after total_iters steps: 1/warmup, 2/warmup, ... 1 at step warmup - 1.
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warmup, total_iters=warmup - 1)
    return lr_scheduler.ChainedScheduler([ramp, decay], optimizer=optimizer)


# ---- precision --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    """Where and how to compute: mixed precision and channels-last memory layout on CUDA, float32 elsewhere.

    Forward passes run inside :meth:`autocast`; losses are computed from float32 outputs outside it (the
    IRNet affinity and displacement losses and multi-label soft margin need the range). bf16 needs no loss
    scaling; fp16 gets a GradScaler.
    """

    device: torch.device
    dtype: torch.dtype | None = None  # None: float32 throughout

    @classmethod
    def for_device(cls, device: torch.device, mixed: bool = True) -> Precision:
        if device.type != "cuda" or not mixed:
            return cls(device)
        return cls(device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    @property
    def channels_last(self) -> bool:
        return self.device.type == "cuda"

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        return (
            images.contiguous(memory_format=torch.channels_last) if self.channels_last and images.dim() == 4 else images
        )

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device.type) if self.dtype == torch.float16 else None


# ---- checkpoints and history ------------------------------------------------------------------------------


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write atomically: a crash mid-write never leaves a truncated checkpoint behind."""
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def load_checkpoint(path: str | Path, fingerprint: str) -> dict | None:
    """The checkpoint at ``path`` if it exists and matches ``fingerprint``, else None."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
        return None
    if state.get("fingerprint") != fingerprint:
        log.info("checkpoint %s belongs to other inputs or settings; starting from scratch", path)
        return None
    return state


def write_history(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write the per-epoch history as CSV (atomically: a reader never sees half a file)."""
    rows = list(rows)
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


# ---- the loop ---------------------------------------------------------------------------------------------


@dataclass
class Training:
    """Everything :func:`fit` needs about one training; built by each stage's entry point.

    ``step(batch)`` runs the forward pass (inside ``precision.autocast()``) and returns float32 losses, the
    total under ``"loss"``; ``end_of_epoch()`` may return extra metrics for the history row (e.g. held-out
    accuracy). ``batch_images(batch)`` counts the images of a batch for the throughput figure.
    """

    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    dataset: torch.utils.data.Dataset
    step: StepFn
    batch_size: int
    epochs: int
    seed: int
    precision: Precision
    checkpoint_path: str | Path
    fingerprint: str
    history_path: str | Path
    num_workers: int = 0
    log_every: int = 20
    collate_fn: Callable | None = None
    end_of_epoch: Callable[[], Mapping[str, Any]] | None = None
    batch_images: Callable[[Any], int] = field(default=lambda batch: len(batch[0]))

    @property
    def steps_per_epoch(self) -> int:
        return len(self.dataset) // self.batch_size


def _loader(training: Training, sampler: EpochSampler) -> torch.utils.data.DataLoader:
    workers = training.num_workers
    return torch.utils.data.DataLoader(
        training.dataset,
        batch_size=training.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=training.precision.device.type == "cuda",
        collate_fn=training.collate_fn,
    )


def _resume(training: Training, scaler) -> tuple[list[dict], int]:
    state = load_checkpoint(training.checkpoint_path, training.fingerprint)
    if state is None:
        return [], 0
    if set(state["scheduler"]) != set(training.scheduler.state_dict()):
        # Another schedule class (e.g. LambdaLR before the schedules were torch's own): loading its state would
        # silently keep the wrong lr. The code digest in the fingerprint rules this out; this guards the rest.
        log.warning("checkpoint %s holds another kind of lr schedule; starting from scratch", training.checkpoint_path)
        return [], 0
    training.model.load_state_dict(state["model"])
    training.optimizer.load_state_dict(state["optimizer"])
    training.scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    log.info("resuming from %s after epoch %d", training.checkpoint_path, int(state["epoch"]))
    return list(state["history"]), int(state["epoch"]) + 1


def train_one_epoch(training: Training, loader, epoch: int, scaler, clock: _Clock) -> tuple[dict[str, float], float]:
    """One pass over the loader; returns the mean of every loss over the epoch's steps and the last step's lr."""
    model, optimizer, scheduler = training.model, training.optimizer, training.scheduler
    model.train()
    sums: dict[str, float] = {}
    steps = 0
    lr = optimizer.param_groups[0]["lr"]
    for batch in loader:
        lr = optimizer.param_groups[0]["lr"]
        losses = training.step(batch)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            losses["loss"].backward()
            optimizer.step()
        else:
            scaler.scale(losses["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
        scheduler.step()
        steps += 1
        values = {key: value.item() for key, value in losses.items()}
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + value
        clock.tick(training.batch_images(batch))
        if steps % training.log_every == 0 or steps == training.steps_per_epoch:
            log.info(
                "%s epoch %d/%d step %d/%d: loss %.4f, lr %.3g, %.1f images/s, ETA %s",
                training.name, epoch + 1, training.epochs, steps, training.steps_per_epoch, values["loss"], lr,
                clock.images_per_second(), _duration(clock.eta()),
            )  # fmt: skip
    return {key: value / max(1, steps) for key, value in sums.items()}, lr


class _Clock:
    """Throughput and time left, over the steps run in this process (a resumed run does not count old ones)."""

    def __init__(self, steps_left: int):
        self.start, self.steps_left, self.steps, self.images = time.perf_counter(), steps_left, 0, 0

    def tick(self, images: int) -> None:
        self.steps += 1
        self.images += images

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def images_per_second(self) -> float:
        return self.images / max(self.elapsed(), 1e-9)

    def eta(self) -> float:
        return self.elapsed() / max(self.steps, 1) * (self.steps_left - self.steps)


def fit(training: Training) -> list[dict[str, Any]]:
    """Train for ``training.epochs`` epochs, resuming where a matching checkpoint left off; returns the history.

    After every epoch: a history row (epoch, step, mean losses, learning rate, seconds, extra metrics) is
    appended to the history CSV and a checkpoint is saved. At the end the checkpoint is deleted (see the
    module docstring); the caller saves the model.
    """
    if training.steps_per_epoch < 1:
        raise ValueError(
            f"{training.name}: batch size {training.batch_size} exceeds the {len(training.dataset)} samples"
        )
    scaler = training.precision.grad_scaler()
    history, start_epoch = _resume(training, scaler)
    if history:
        write_history(training.history_path, history)
    sampler = EpochSampler(len(training.dataset), training.seed, training.batch_size)
    loader = _loader(training, sampler)
    clock = _Clock((training.epochs - start_epoch) * training.steps_per_epoch)
    log.info(
        "%s: %d samples, %d steps per epoch, epochs %d..%d, %s",
        training.name, len(training.dataset), training.steps_per_epoch, start_epoch + 1, training.epochs,
        training.precision.dtype or "float32",
    )  # fmt: skip
    for epoch in range(start_epoch, training.epochs):
        sampler.set_epoch(epoch)
        started = time.perf_counter()
        losses, lr = train_one_epoch(training, loader, epoch, scaler, clock)
        row = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * training.steps_per_epoch,
            **{("loss" if key == "loss" else f"loss_{key}"): value for key, value in losses.items()},
            "lr": lr,
            "seconds": round(time.perf_counter() - started, 2),
            **(training.end_of_epoch() if training.end_of_epoch else {}),
        }
        history.append(row)
        write_history(training.history_path, history)
        log.info("%s epoch %s", training.name, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
        save_checkpoint(
            training.checkpoint_path,
            {
                "model": training.model.state_dict(),
                "optimizer": training.optimizer.state_dict(),
                "scheduler": training.scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {},
                "epoch": epoch,
                "history": history,
                "fingerprint": training.fingerprint,
            },
        )
    return history


def finish(checkpoint_path: str | Path) -> None:
    """Remove the resumable state once the final model is written: a finished training leaves nothing that a
    later run could take as its own (that run starts from scratch unless it was interrupted itself)."""
    Path(checkpoint_path).unlink(missing_ok=True)
