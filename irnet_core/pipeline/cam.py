"""CAM stage entry points: train the classifier, infer CAMs for a shard, evaluate CAMs (method doc §2.3-2.5)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import fingerprint
from ..data import transforms as T
from ..data.images import load_image
from ..data.training_sets import ClassificationCrops, multi_hot, split_holdout
from ..errors import InputError
from ..evaluation import sweep_cam_thresholds, sweep_summary
from ..inference import compute_cams
from ..metrics import ConfusionMatrix, classification_report, semantic_report
from ..models.cam_net import build_cam_net, load_cam_net, save_cam_net
from ..palette import read_label_png
from ..provenance import code_digest, file_digest
from ..settings import BackboneSettings, CamTrainSettings, OptimizerSettings, as_plain
from ..store import ShardWriter, open_shards
from ..training import Precision, Training, build_optimizer, build_scheduler, finish, fit, seed_everything
from .common import progress, read_labels_file, write_json

log = logging.getLogger(__name__)


# ---- training ---------------------------------------------------------------------------------------------


@torch.inference_mode()
def _held_out_metrics(model, paths: Sequence[str], targets: np.ndarray, device: torch.device) -> dict:
    """Classification metrics on whole held-out images (see :func:`irnet_core.metrics.classification_report`)."""
    if not len(paths):
        return {}
    model.eval()
    scores = []
    for path in paths:
        image = torch.from_numpy(T.to_chw(T.normalize(load_image(path))).copy())[None].to(device)
        scores.append(torch.sigmoid(model(image)).float().cpu().numpy()[0])
    model.train()
    return classification_report(np.stack(scores), targets)


def train_cam(
    *,
    labels_path: str,
    classes: Sequence[str],
    train: CamTrainSettings,
    recipe: OptimizerSettings,
    backbone: BackboneSettings,
    out_model: str,
    out_history: str,
    checkpoint_dir: str,
    device: torch.device,
    num_workers: int = 0,
) -> dict:
    """Train the CAM classifier on the images and labels of ``labels_path`` (prepare_dataset's file); resumable
    per epoch. Returns the last history row."""
    labels = read_labels_file(labels_path)
    ids = labels["image_ids"]
    paths = [labels["paths"][i] for i in ids]
    targets = multi_hot([labels["labels"][i] for i in ids], len(classes))
    train_pos, held_pos = split_holdout(ids, train.holdout_fraction)
    if len(train_pos) < train.batch_size:
        raise InputError(
            "config key cam.train.batch_size", f"{train.batch_size} exceeds the {len(train_pos)} training images"
        )
    dataset = ClassificationCrops([paths[i] for i in train_pos], targets[train_pos], crop_size=train.crop_size,
                                  resize_long=train.resize_long, seed=train.seed)  # fmt: skip
    seed_everything(train.seed)
    precision = Precision.for_device(device)
    model = precision.prepare_model(build_cam_net(backbone.arch, backbone.weights, len(classes)))
    groups = model.param_groups()
    optimizer = build_optimizer(
        [{"params": groups["backbone"]}, {"params": groups["head"], "lr_mult": recipe.head_lr_mult}], recipe
    )
    max_step = (len(dataset) // train.batch_size) * train.epochs
    # Content, not names: labels and image bytes (digests recorded by prepare_dataset), settings, code.
    digests = labels.get("image_digests") or {}
    digest = fingerprint(as_plain(train), as_plain(recipe), as_plain(backbone), list(classes), ids,
                         [labels["labels"][i] for i in ids], [digests.get(i) or file_digest(p) for i, p in zip(ids, paths)],
                         code_digest())  # fmt: skip

    def step(batch):
        images, batch_targets = batch
        with precision.autocast():
            logits = model(precision.to_device(images))
        return {"loss": F.multilabel_soft_margin_loss(logits.float(), batch_targets.to(device))}

    held = ([paths[i] for i in held_pos], targets[held_pos])
    checkpoint = Path(checkpoint_dir) / "last.pt"
    history = fit(Training(
        name="train_cam", model=model, optimizer=optimizer, scheduler=build_scheduler(optimizer, max_step, recipe.schedule, recipe.poly_power),
        dataset=dataset, step=step, batch_size=train.batch_size, epochs=train.epochs, seed=train.seed, precision=precision,
        checkpoint_path=checkpoint, fingerprint=digest, history_path=out_history, num_workers=num_workers,
        end_of_epoch=lambda: _held_out_metrics(model, *held, device),
    ))  # fmt: skip
    save_cam_net(out_model, model, arch=backbone.arch, weights=backbone.weights, classes=classes, fingerprint=digest)
    finish(checkpoint)
    return history[-1] if history else {}


# ---- inference --------------------------------------------------------------------------------------------


def infer_cam_shard(
    *,
    model_path: str,
    image_ids: Sequence[str],
    image_paths: Sequence[str],
    image_labels: Mapping[str, Sequence[int]],
    scales: Sequence[float],
    out_store: str,
    device: torch.device,
) -> int:
    """Multi-scale CAMs of one shard's images into a Zarr store (float16 `cam` at stride 4 and `high_res`)."""
    model, state = load_cam_net(model_path, device)
    with ShardWriter(
        out_store, stage="cam", image_ids=image_ids, attrs={"classes": state["classes"], "scales": list(scales)}
    ) as writer:
        for image_id, image_path in progress(zip(image_ids, image_paths, strict=True), len(image_ids), "CAMs", log):
            keys = list(image_labels[image_id])
            image = load_image(image_path)
            cam, high_res = compute_cams(model, image, keys, scales=scales, device=device)
            writer.write(
                image_id,
                {"cam": cam.astype(np.float16), "high_res": high_res.astype(np.float16)},
                {"keys": keys, "size": list(image.shape[:2]), "stride": 4},
            )
    log.info("wrote CAMs of %d images to %s", len(image_ids), out_store)
    return len(image_ids)


# ---- evaluation -------------------------------------------------------------------------------------------


def evaluate_cam(
    *,
    cam_stores: Sequence[str],
    untrained_path: str,
    image_ids: Sequence[str],
    gt_paths: Sequence[str],
    classes: Sequence[str],
    threshold: float,
    sweep: Sequence[float],
    out_path: str,
) -> dict:
    """mIoU at the configured threshold and over a sweep, with the all-background and untrained baselines."""
    shards = open_shards(cam_stores)
    missing = [i for i in image_ids if i not in shards]
    if missing:
        raise ValueError(f"{missing[0]}: eval image has no CAMs in any shard store")

    def samples():
        for image_id, gt_path in zip(image_ids, gt_paths, strict=True):
            yield gt_path, read_label_png(gt_path), lambda i=image_id: _stored_cams(shards[i], i)

    thresholds = sorted({float(threshold), *map(float, sweep)})
    matrices = sweep_cam_thresholds(samples(), thresholds, len(classes))
    main = semantic_report(matrices[float(threshold)], ["background", *classes])
    background = ConfusionMatrix(len(classes) + 1)
    for gt_path in gt_paths:
        gt = read_label_png(gt_path)
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


def _stored_cams(reader, image_id: str):
    arrays, attrs = reader.read(image_id, ["high_res"])
    return arrays["high_res"], attrs["keys"]


def evaluate_untrained_cams(
    *,
    image_ids: Sequence[str],
    image_paths: Sequence[str],
    image_labels: Mapping[str, Sequence[int]],
    gt_paths: Sequence[str],
    classes: Sequence[str],
    train: CamTrainSettings,
    backbone: BackboneSettings,
    scales: Sequence[float],
    sweep: Sequence[float],
    out_path: str,
    device: torch.device,
) -> dict:
    """Baseline: CAMs of the network as initialised for training (same seed), at its best threshold."""
    seed_everything(train.seed)
    model = build_cam_net(backbone.arch, backbone.weights, len(classes)).to(device).eval()

    def samples():
        for image_id, image_path, gt_path in zip(image_ids, image_paths, gt_paths, strict=True):
            keys = list(image_labels[image_id])
            yield (
                gt_path,
                read_label_png(gt_path),
                lambda p=image_path, k=keys: (
                    compute_cams(model, load_image(p), k, scales=scales, device=device)[1],
                    k,
                ),
            )

    matrices = sweep_cam_thresholds(samples(), sorted(map(float, sweep)), len(classes))
    result = {**sweep_summary(matrices, classes), "n_images": len(image_ids)}
    write_json(out_path, result)
    return result
