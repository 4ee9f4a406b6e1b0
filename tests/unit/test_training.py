"""The shared training loop: schedules, data order, history per epoch, resume and the end of a training."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from irnet_core.settings import SGDSettings
from irnet_core.training import (
    EpochSampler,
    Precision,
    Training,
    build_optimizer,
    build_scheduler,
    epochs_for,
    finish,
    fit,
    sample_rng,
)


class NoisyPoints(torch.utils.data.Dataset):
    """Regression samples whose noise is drawn from (seed, epoch, index), like the real datasets' augmentation."""

    def __init__(self, n: int, seed: int = 0):
        self.x = torch.linspace(-1, 1, n)[:, None]
        self.seed = seed

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, key):
        epoch, index = key
        noise = float(sample_rng(self.seed, epoch, index).normal(0, 0.01))
        return self.x[index], 3 * self.x[index] + 1 + noise


def make_training(tmp_path, *, epochs=3, fingerprint="a", log_every=2, end_of_epoch=None) -> Training:
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    optimizer = build_optimizer([{"params": model.parameters()}], SGDSettings(lr=0.1, momentum=0.9, weight_decay=0))
    dataset = NoisyPoints(10)
    steps = (len(dataset) // 4) * epochs

    def step(batch):
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(model(x), y), "abs": (model(x) - y).abs().mean()}

    return Training(
        name="toy", model=model, optimizer=optimizer, scheduler=build_scheduler(optimizer, steps, "poly", 0.9),
        dataset=dataset, step=step, batch_size=4, epochs=epochs, seed=0, precision=Precision.for_device(torch.device("cpu")),
        checkpoint_path=tmp_path / "ckpt" / "last.pt", fingerprint=fingerprint, history_path=tmp_path / "log.csv",
        log_every=log_every, end_of_epoch=end_of_epoch,
    )  # fmt: skip


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_epoch_sampler_yields_whole_batches_in_a_per_epoch_order():
    sampler = EpochSampler(10, seed=3, batch_size=4)
    first = list(sampler)
    assert len(first) == len(sampler) == 8 and all(epoch == 0 for epoch, _ in first)
    assert len({index for _, index in first}) == 8
    sampler.set_epoch(1)
    second = list(sampler)
    assert [i for _, i in second] != [i for _, i in first] and all(epoch == 1 for epoch, _ in second)
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_scheduler_steps_the_poly_schedule_per_update(tmp_path):
    training = make_training(tmp_path, epochs=2)
    seen = []
    original = training.step

    def recording_step(batch):
        seen.append(training.optimizer.param_groups[0]["lr"])
        return original(batch)

    training.step = recording_step
    fit(training)
    assert seen == pytest.approx([0.1 * expected_factor(k, 4, "poly", 0.9) for k in range(4)], rel=1e-12)


def expected_factor(step: int, max_step: int, schedule: str, power: float = 0.9, warmup: int = 0) -> float:
    """The lr factor before update ``step`` in closed form: the schedule the workflow has always used."""
    progress = min(step, max_step) / max(1, max_step)
    decay = (1.0 - progress) ** power if schedule == "poly" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return decay * (min(1.0, (step + 1) / warmup) if warmup else 1.0)


def two_group_optimizer(lr: float = 0.01) -> torch.optim.Optimizer:
    """SGD over two groups whose lr multipliers differ, like backbone and head."""
    groups = [
        {"params": [torch.zeros(1, requires_grad=True)]},
        {"params": [torch.zeros(1, requires_grad=True)], "lr_mult": 10.0},
    ]
    return build_optimizer(groups, SGDSettings(lr=lr, momentum=0.9, weight_decay=0))


def scheduled_lrs(optimizer, scheduler, steps: int) -> list[list[float]]:
    """Every group's lr before each of ``steps`` updates, and after the last one."""
    seen = []
    for _ in range(steps):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return seen + [[group["lr"] for group in optimizer.param_groups]]


SCHEDULES = [
    pytest.param(500, "poly", 0.9, 0, id="poly"),
    pytest.param(500, "poly", 2.0, 0, id="poly-power-2"),
    pytest.param(300, "poly", 0.5, 40, id="poly-warmup"),
    pytest.param(500, "cosine", 0.9, 0, id="cosine"),
    pytest.param(300, "cosine", 0.9, 40, id="cosine-warmup"),
    pytest.param(5, "poly", 0.9, 2, id="short"),
    pytest.param(10, "cosine", 0.9, 1, id="warmup-of-one-step"),
]


@pytest.mark.parametrize(("max_step", "schedule", "power", "warmup"), SCHEDULES)
def test_scheduler_follows_the_closed_form_schedule_in_every_group(max_step, schedule, power, warmup):
    optimizer = two_group_optimizer()
    scheduler = build_scheduler(optimizer, max_step, schedule, power, warmup)
    seen = scheduled_lrs(optimizer, scheduler, max_step)
    for step, lrs in enumerate(seen):
        factor = expected_factor(step, max_step, schedule, power, warmup)
        assert lrs == pytest.approx([0.01 * factor, 0.1 * factor], rel=1e-6, abs=1e-15), step


@pytest.mark.parametrize(("max_step", "schedule", "power", "warmup"), SCHEDULES)
def test_a_scheduler_resumed_from_its_state_continues_the_same_lrs(tmp_path, max_step, schedule, power, warmup):
    optimizer = two_group_optimizer()
    scheduler = build_scheduler(optimizer, max_step, schedule, power, warmup)
    uninterrupted = scheduled_lrs(optimizer, scheduler, max_step)

    optimizer = two_group_optimizer()
    scheduler = build_scheduler(optimizer, max_step, schedule, power, warmup)
    half = max_step // 2
    first = scheduled_lrs(optimizer, scheduler, half)
    # Through a file, as fit's checkpoints go: torch.save and a weights-only load.
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    optimizer = two_group_optimizer()
    scheduler = build_scheduler(optimizer, max_step, schedule, power, warmup)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rest = scheduled_lrs(optimizer, scheduler, max_step - half)
    assert first[:-1] + rest == uninterrupted


def test_a_checkpoint_of_another_schedule_kind_is_not_resumed(tmp_path, caplog):
    training = make_training(tmp_path, epochs=2)
    old = torch.optim.lr_scheduler.LambdaLR(training.optimizer, lambda step: 1.0)
    state = {"model": training.model.state_dict(), "optimizer": training.optimizer.state_dict(),
             "scheduler": old.state_dict(), "scaler": {}, "epoch": 0, "history": [{"epoch": 1}], "fingerprint": "a"}  # fmt: skip
    (tmp_path / "ckpt").mkdir()
    torch.save(state, tmp_path / "ckpt" / "last.pt")
    training = make_training(tmp_path, epochs=2)
    with caplog.at_level("WARNING"):
        history = fit(training)
    assert [row["epoch"] for row in history] == [1, 2]
    assert "another kind of lr schedule" in caplog.text


def test_history_is_written_every_epoch_with_mean_losses_and_extra_metrics(tmp_path):
    calls = []

    def extra():
        log = tmp_path / "log.csv"
        calls.append(len(read_rows(log)) if log.exists() else 0)
        return {"val": 0.5}

    history = fit(make_training(tmp_path, end_of_epoch=extra))
    rows = read_rows(tmp_path / "log.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and [int(r["step"]) for r in rows] == [2, 4, 6]
    assert {"loss", "loss_abs", "lr", "seconds", "val"} <= set(rows[0])
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert calls == [0, 1, 2]  # the CSV grows by one row per epoch, before the training ends
    assert len(history) == 3


def test_progress_lines_report_loss_lr_throughput_and_eta(tmp_path, caplog):
    caplog.set_level("INFO", logger="irnet_core.training")
    fit(make_training(tmp_path, epochs=1, log_every=1))
    lines = [r.getMessage() for r in caplog.records if "step" in r.getMessage() and "images/s" in r.getMessage()]
    assert len(lines) == 2
    assert "toy epoch 1/1 step 1/2: loss" in lines[0] and "lr 0.1," in lines[0] and "ETA" in lines[0]


def test_an_interrupted_training_resumes_to_the_same_weights(tmp_path):
    reference = make_training(tmp_path / "ref")
    fit(reference)

    interrupted = make_training(tmp_path / "run", epochs=3)
    interrupted.epochs = 1  # "killed" after the first epoch: only its checkpoint is left
    fit(interrupted)
    resumed = make_training(tmp_path / "run", epochs=3)
    fit(resumed)
    for a, b in zip(reference.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert [r["epoch"] for r in read_rows(tmp_path / "run" / "log.csv")] == ["1", "2", "3"]


def test_a_checkpoint_of_other_inputs_is_not_resumed_and_finish_removes_it(tmp_path, caplog):
    first = make_training(tmp_path, epochs=2, fingerprint="inputs-a")
    fit(first)
    assert first.checkpoint_path.exists()
    caplog.set_level("INFO", logger="irnet_core.training")
    other = make_training(tmp_path, epochs=2, fingerprint="inputs-b")
    fit(other)
    assert any("belongs to other inputs" in r.getMessage() for r in caplog.records)
    assert not any("resuming" in r.getMessage() for r in caplog.records)
    finish(other.checkpoint_path)
    assert not other.checkpoint_path.exists()


def test_too_few_samples_for_one_batch_is_an_error(tmp_path):
    training = make_training(tmp_path)
    training.batch_size = 11
    with pytest.raises(ValueError, match="exceeds the 10 samples"):
        fit(training)


def test_cpu_precision_is_float32_and_leaves_layout_alone():
    precision = Precision.for_device(torch.device("cpu"))
    assert precision.dtype is None and precision.grad_scaler() is None and not precision.channels_last
    x = torch.zeros(1, 3, 4, 4)
    assert precision.to_device(x).is_contiguous()
    with precision.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_sample_randomness_depends_on_seed_epoch_and_index_only():
    a = sample_rng(1, 2, 3).random(4)
    assert np.array_equal(a, sample_rng(1, 2, 3).random(4))
    assert not np.array_equal(a, sample_rng(1, 3, 3).random(4))


@pytest.mark.parametrize(
    ("epochs", "min_steps", "steps_per_epoch", "expected"),
    [
        (6, 300, 50, 6),  # the demo: 6 epochs of 50 steps reach the floor exactly
        (6, 300, 30, 10),  # 240 images at batch 8: 10 epochs for the same 300 steps
        (6, 301, 50, 7),  # whole epochs: the floor rounds up
        (3, 0, 4, 3),  # no floor
        (12, 264, 100, 12),  # a larger dataset trains its epochs
        (1, 10, 0, 10),  # fewer samples than a batch: the caller raises; never a division by zero here
    ],
)
def test_epochs_for_keeps_a_floor_of_optimiser_steps(epochs, min_steps, steps_per_epoch, expected):
    assert epochs_for("toy", epochs, min_steps, steps_per_epoch) == expected
