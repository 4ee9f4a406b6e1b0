"""CAM stage entry points: train the classifier, infer CAMs for a shard, evaluate CAMs (method doc §2.3-2.5)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import training
from .. import transforms as T
from ..config import fingerprint
from ..data.base import Dataset
from ..errors import InputError
from ..evaluation import sweep_cam_thresholds, sweep_summary
from ..inference import (
    SCALE_MAP_PREFIX,
    cam_from_scale_maps,
    compute_cams,
    scale_maps_from_inputs,
    stored_high_res,
)
from ..inference_sets import CamInferenceInputs, loader
from ..metrics import ConfusionMatrix, classification_report, semantic_report
from ..models.cam_net import build_cam_net, load_cam_net, save_cam_net
from ..provenance import backbone_digest, code_digest
from ..settings import BackboneSettings, CamInferSettings, CamTrainSettings, OptimizerSettings, as_plain
from ..store import ShardWriter, open_shards
from ..training import Precision, Training, build_optimizer, build_scheduler, epochs_for, finish, fit, seed_everything
from ..training_sets import ClassificationCrops, multi_hot, split_holdout
from .common import progress, read_labels_file, write_json

log = logging.getLogger(__name__)


# ---- training ---------------------------------------------------------------------------------------------


@torch.inference_mode()
def _held_out_metrics(
    model, load, image_ids: Sequence[str], targets: np.ndarray, device: torch.device, max_long_side: int
) -> dict:
    """Classification metrics on whole held-out images (see :func:`irnet_core.metrics.classification_report`),
    scaled down to the training's largest long side when larger (any image size fits in memory)."""
    if not len(image_ids):
        return {}
    model.eval()
    scores = []
    for image_id in image_ids:
        image = load(image_id)
        fit = T.long_side_scale(image.shape[:2], max_long_side)
        if fit < 1.0:
            image = T.resize_image(image, T.scaled_size(image.shape[:2], fit))
        image = torch.from_numpy(T.to_chw(T.normalize(image)).copy())[None].to(device)
        scores.append(torch.sigmoid(model(image)).float().cpu().numpy()[0])
    model.train()
    return classification_report(np.stack(scores), targets)


def train_cam(
    *,
    dataset: Dataset,
    labels_path: str,
    train: CamTrainSettings,
    recipe: OptimizerSettings,
    backbone: BackboneSettings,
    run: training.TrainingRun,
) -> dict:
    """Train the CAM classifier on the images and labels of ``labels_path`` (prepare_dataset's file); resumable
    per epoch. Returns the last history row."""
    labels = read_labels_file(labels_path)
    ids, classes, digests = labels["image_ids"], dataset.classes, labels["image_digests"]
    targets = multi_hot([labels["labels"][i] for i in ids], len(classes))
    # Held out by content: the same images split the same way whatever ids their dataset format gives them.
    train_pos, held_pos = split_holdout([digests[i] for i in ids], train.holdout_fraction)
    if len(train_pos) < train.batch_size:
        raise InputError(
            "config key cam.train.batch_size", f"{train.batch_size} exceeds the {len(train_pos)} training images"
        )
    samples = ClassificationCrops(dataset.load_image, [ids[i] for i in train_pos], targets[train_pos],
                                  crop_size=train.crop_size, resize_long=train.resize_long, seed=train.seed)  # fmt: skip
    seed_everything(train.seed)
    device = run.device
    precision = Precision.for_device(device)
    model = precision.prepare_model(build_cam_net(backbone.arch, backbone.weights, len(classes)))
    groups = model.param_groups()
    optimizer = build_optimizer([{"params": groups["backbone"]}, {"params": groups["head"], "lr_mult": recipe.head_lr_mult}], recipe)  # fmt: skip
    epochs = epochs_for("train_cam", train.epochs, train.min_steps, len(samples) // train.batch_size)
    max_step = (len(samples) // train.batch_size) * epochs
    # Content, not names: labels and image bytes (digests recorded by prepare_dataset), settings, code.
    digest = fingerprint(as_plain(train), as_plain(recipe), backbone_digest(backbone), list(classes), ids,
                         [labels["labels"][i] for i in ids], [digests[i] for i in ids], code_digest())  # fmt: skip

    def step(batch):
        images, batch_targets = batch
        with precision.autocast():
            logits = model(precision.to_device(images))
        return {"loss": F.multilabel_soft_margin_loss(logits.float(), batch_targets.to(device))}

    held = ([ids[i] for i in held_pos], targets[held_pos])
    checkpoint = Path(run.checkpoint_dir) / "last.pt"
    history = fit(Training(
        name="train_cam", model=model, optimizer=optimizer, scheduler=build_scheduler(optimizer, max_step, recipe.schedule, recipe.poly_power),
        dataset=samples, step=step, batch_size=train.batch_size, epochs=epochs, seed=train.seed, precision=precision,
        checkpoint_path=checkpoint, fingerprint=digest, history_path=run.out_history, num_workers=run.num_workers,
        end_of_epoch=lambda: _held_out_metrics(model, dataset.load_image, *held, device, int(max(train.resize_long))),
    ))  # fmt: skip
    save_cam_net(
        run.out_model, model, arch=backbone.arch, weights=backbone.weights, classes=classes, fingerprint=digest
    )
    finish(checkpoint)
    return history[-1] if history else {}


# ---- inference --------------------------------------------------------------------------------------------


def infer_cam_shard(
    *,
    model_path: str,
    dataset: Dataset,
    image_ids: Sequence[str],
    infer: CamInferSettings,
    out_store: str,
    device: torch.device,
    num_workers: int = 0,
) -> int:
    """Multi-scale CAMs (``infer.scales``, images capped at ``infer.max_long_side``) of one shard's images into a Zarr store: float16 `cam` at stride 4 and the float32 maps of
    each scale (`scale_0`, ...), from which the full-resolution CAMs derive (:func:`inference.stored_high_res`).

    Images are decoded and resized ``num_workers`` processes ahead of the network (0: in this process); on
    CUDA the forward passes run in mixed precision and channels-last (:class:`irnet_core.training.Precision`).
    """
    model, state = load_cam_net(model_path, device)
    precision = Precision.for_device(device)
    model = precision.prepare_model(model)
    attrs = {"classes": state["classes"], "scales": list(infer.scales)}
    samples = loader(CamInferenceInputs(dataset, image_ids, infer.scales, infer.max_long_side), num_workers, device)
    with ShardWriter(out_store, stage="cam", image_ids=image_ids, attrs=attrs) as writer:
        for image_id, keys, size, inputs in progress(samples, len(image_ids), "CAMs", log):
            maps = scale_maps_from_inputs(model, inputs, keys, device=device, precision=precision)
            arrays = {"cam": cam_from_scale_maps(maps, size).cpu().numpy().astype(np.float16)}
            # The full-resolution CAMs are not stored: they derive from the scale maps (inference.stored_high_res),
            # which take a few percent of their bytes (docs/method-notes.md, "Stored CAMs").
            arrays.update({f"{SCALE_MAP_PREFIX}{i}": m.cpu().numpy() for i, m in enumerate(maps)})
            writer.write(image_id, arrays, {"keys": list(keys), "size": list(size), "stride": 4})
    log.info("wrote CAMs of %d images to %s", len(image_ids), out_store)
    return len(image_ids)


# ---- evaluation -------------------------------------------------------------------------------------------


def _stored_cams(reader, image_id: str):
    high_res, attrs = stored_high_res(reader, image_id)
    return high_res, attrs["keys"]


def evaluate_cam(
    *,
    cam_stores: Sequence[str],
    untrained_path: str,
    dataset: Dataset,
    image_ids: Sequence[str],
    threshold: float,
    sweep: Sequence[float],
    out_path: str,
) -> dict:
    """mIoU at the configured threshold and over a sweep, with the all-background and untrained baselines."""
    shards = open_shards(cam_stores)
    missing = [i for i in image_ids if i not in shards]
    if missing:
        raise ValueError(f"{missing[0]}: eval image has no CAMs in any shard store")
    classes = dataset.classes

    def samples():
        for image_id in image_ids:
            yield image_id, dataset.semantic_gt(image_id), lambda i=image_id: _stored_cams(shards[i], i)

    thresholds = sorted({float(threshold), *map(float, sweep)})
    matrices = sweep_cam_thresholds(samples(), thresholds, len(classes))
    main = semantic_report(matrices[float(threshold)], ["background", *classes])
    background = ConfusionMatrix(len(classes) + 1)
    for image_id in image_ids:
        gt = dataset.semantic_gt(image_id)
        background.update(gt, np.zeros_like(gt))
    with open(untrained_path) as handle:
        untrained = json.load(handle)
    result = {
        "miou": main["miou"],
        "threshold": float(threshold),
        **sweep_summary(matrices, classes),
        "per_class": main["per_class"],
        "pixel_accuracy": main.get("pixel_accuracy"),
        "baseline_background": background.miou(),
        "baseline_untrained": untrained["best_miou"],
        "baseline_untrained_threshold": untrained["best_threshold"],
        "n_images": len(image_ids),
    }
    write_json(out_path, result)
    return result


def evaluate_untrained_cams(
    *,
    dataset: Dataset,
    image_ids: Sequence[str],
    train: CamTrainSettings,
    backbone: BackboneSettings,
    scales: Sequence[float],
    sweep: Sequence[float],
    out_path: str,
    device: torch.device,
    max_long_side: int | None = None,
) -> dict:
    """Baseline: CAMs of the network as initialised for training (same seed), at its best threshold."""
    seed_everything(train.seed)
    model = build_cam_net(backbone.arch, backbone.weights, len(dataset.classes)).to(device).eval()

    def cams(image_id):
        keys = dataset.image_labels(image_id)
        image = dataset.load_image(image_id)
        return compute_cams(model, image, keys, scales=scales, device=device, max_long_side=max_long_side)[1], keys

    def samples():
        for image_id in image_ids:
            yield image_id, dataset.semantic_gt(image_id), lambda i=image_id: cams(i)

    matrices = sweep_cam_thresholds(samples(), sorted(map(float, sweep)), len(dataset.classes))
    result = {**sweep_summary(matrices, dataset.classes), "n_images": len(image_ids)}
    write_json(out_path, result)
    return result
