"""Final-model entry points (method doc §4): train Mask R-CNN and DeepLabv3 on the pseudo-labels, predict the
val list, and score everything on it in one file.

The val list is never seen by the pseudo-label pipeline's training, relation mining or threshold choices; the
pseudo-label pipeline itself is also run on it (with the networks trained on the train list), so that
``results/eval/final.json`` shows on the same images what the final models add.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..coco_instances import read_coco_instances
from ..config import fingerprint
from ..data.base import Dataset
from ..errors import InputError
from ..evaluation import cam_label_map
from ..export import CocoWriter, write_label_png
from ..final_prediction import predict_instances, predict_semantic
from ..inference import stored_high_res
from ..instances import cam_component_instances
from ..losses import semantic_loss
from ..metrics import REPORT_IOUS, ConfusionMatrix, InstanceAP, instance_ap_report, semantic_report
from ..models.final import (
    build_instance_model,
    build_semantic_model,
    initial_backbone_state,
    instance_param_groups,
    resolve_arch,
    semantic_param_groups,
)
from ..palette import read_label_png
from ..provenance import backbone_digest, code_digest, file_digest
from ..settings import BackboneSettings, InstanceModelSettings, SemanticModelSettings, SGDSettings, as_plain
from ..store import open_shards
from ..training import Precision, Training, TrainingRun, build_optimizer, build_scheduler, finish, fit, seed_everything
from ..training_sets import InstanceSamples, SemanticCrops, collate_lists
from .common import progress, read_labels_file, write_json
from .pseudo_labels import coco_scores, score_instance_file

log = logging.getLogger(__name__)


# ---- shared -----------------------------------------------------------------------------------------------


def _image_digests(dataset: Dataset, image_ids: Sequence[str], labels_path: str | None) -> list[str]:
    """Content digests of the images (prepare_dataset's where it has them, else hashed here)."""
    known = read_labels_file(labels_path)["image_digests"] if labels_path else {}
    return [known.get(i) or file_digest(dataset.image_path(i)) for i in image_ids]


def _save(path: str, model: torch.nn.Module, **meta) -> None:
    from .. import __version__

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "irnet_core": __version__, **meta}, path)


def _load_meta(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _check_finite(loss: torch.Tensor, section: str) -> None:
    """A diverged training stops with one line instead of saving a model of NaNs."""
    if not torch.isfinite(loss):
        raise InputError(f"config key {section}.lr", "the training diverged (non-finite loss); lower it")


def _check_batch(batch_size: int, n: int, key: str) -> None:
    if n < batch_size:
        raise InputError(f"config key {key}", f"{batch_size} exceeds the {n} images with pseudo-labels")


# ---- Mask R-CNN -------------------------------------------------------------------------------------------


def train_instance_model(
    *,
    dataset: Dataset,
    coco_path: str,
    image_ids: Sequence[str],
    settings: InstanceModelSettings,
    backbone: BackboneSettings,
    cam_model_path: str | None,
    labels_path: str | None,
    run: TrainingRun,
) -> dict:
    """Train Mask R-CNN on the instance pseudo-labels of ``image_ids`` (the exported COCO file); resumable."""
    train = settings.train
    records = read_coco_instances(coco_path, dataset.classes)
    missing = [i for i in image_ids if i not in records]
    if missing:
        raise InputError(coco_path, f"image {missing[0]!r} of the infer list has no entry")
    _check_batch(train.batch_size, len(image_ids), "final_models.instance.train.batch_size")
    arch = resolve_arch(settings.arch, backbone.arch)
    seed_everything(train.seed)
    state = initial_backbone_state(arch, backbone.weights, cam_model_path, where="final_models.instance.arch")
    model = build_instance_model(
        arch, len(dataset.classes), backbone_state=state, trainable_layers=settings.trainable_layers,
        fpn_channels=settings.fpn_channels, min_size=train.min_size, max_size=train.max_size,
        score_threshold=settings.infer.score_threshold, max_detections=settings.infer.max_detections,
        rpn_proposals=settings.rpn_proposals, roi_samples=settings.roi_samples,
    )  # fmt: skip
    device = run.device
    precision = Precision.for_device(device)
    model = precision.prepare_model(model)
    samples = InstanceSamples(dataset.load_image, records, image_ids, min_score=settings.min_score, seed=train.seed)
    optimizer = build_optimizer(instance_param_groups(model), SGDSettings.of(train))
    max_step = (len(samples) // train.batch_size) * train.epochs
    digest = fingerprint(_training_settings(settings), backbone_digest(backbone), list(dataset.classes), list(image_ids),
                         file_digest(coco_path), file_digest(cam_model_path) if cam_model_path else None,
                         _image_digests(dataset, image_ids, labels_path), code_digest())  # fmt: skip

    def step(batch):
        images, targets = batch
        images = [precision.to_device(image) for image in images]
        targets = [{k: v.to(device) for k, v in target.items()} for target in targets]
        with precision.autocast():
            losses = model(images, targets)
        losses = {key.removeprefix("loss_"): value.float() for key, value in losses.items()}
        total = sum(losses.values())
        _check_finite(total, "final_models.instance.train")
        return {"loss": total, **losses}

    checkpoint = Path(run.checkpoint_dir) / "last.pt"
    history = fit(Training(
        name="train_instance_model", model=model, optimizer=optimizer,
        scheduler=build_scheduler(optimizer, max_step, train.schedule, warmup=train.warmup_steps), dataset=samples, step=step,
        batch_size=train.batch_size, epochs=train.epochs, seed=train.seed, precision=precision,
        checkpoint_path=checkpoint, fingerprint=digest, history_path=run.out_history, num_workers=run.num_workers,
        collate_fn=collate_lists, log_every=10,
    ))  # fmt: skip
    _save(run.out_model, model, kind="mask_rcnn", arch=arch, classes=list(dataset.classes), fingerprint=digest,
          settings=json.dumps(_training_settings(settings)))  # fmt: skip
    finish(checkpoint)
    return history[-1] if history else {}


def _training_settings(settings) -> dict:
    """A final model's settings as its training sees them: without ``infer``, which only prediction reads (a
    prediction setting changes neither the fingerprint nor the saved model)."""
    return {key: value for key, value in as_plain(settings).items() if key != "infer"}


def load_instance_model(path: str, settings: InstanceModelSettings, device: torch.device):
    meta = _load_meta(path)
    model = build_instance_model(
        meta["arch"], len(meta["classes"]), trainable_layers=settings.trainable_layers,
        fpn_channels=settings.fpn_channels, min_size=settings.train.min_size, max_size=settings.train.max_size,
        score_threshold=settings.infer.score_threshold, max_detections=settings.infer.max_detections,
        rpn_proposals=settings.rpn_proposals, roi_samples=settings.roi_samples,
    )  # fmt: skip
    model.load_state_dict(meta["model"])
    return model.to(device).eval(), meta


def predict_instance_set(
    *,
    model_path: str,
    dataset: Dataset,
    image_ids: Sequence[str],
    settings: InstanceModelSettings,
    out_coco: str,
    device: torch.device,
) -> dict:
    """Mask R-CNN detections of ``image_ids`` as a COCO instances file with scores (the pseudo-labels' format:
    the dataset's own image and category ids where it has them)."""
    model, _ = load_instance_model(model_path, settings, device)
    with CocoWriter(out_coco, dataset.classes, dataset.category_ids) as coco:
        for image_id in progress(image_ids, len(image_ids), "instance predictions", log):
            image = dataset.load_image(image_id)
            found = predict_instances(model, image, device, settings.infer.mask_threshold)
            coco.add(image_id, dataset.file_name(image_id), image.shape[:2], found, dataset.source_image_id(image_id))
    log.info("predicted %d instances on %d images", coco.n_annotations, coco.n_images)
    return {"images": coco.n_images, "annotations": coco.n_annotations}


# ---- DeepLabv3 --------------------------------------------------------------------------------------------


def train_semantic_model(
    *,
    dataset: Dataset,
    label_dir: str,
    image_ids: Sequence[str],
    settings: SemanticModelSettings,
    backbone: BackboneSettings,
    cam_model_path: str | None,
    labels_path: str | None,
    run: TrainingRun,
) -> dict:
    """Train DeepLabv3 on the semantic pseudo-label PNGs of ``image_ids`` (255 ignored); resumable."""
    train = settings.train
    _check_batch(train.batch_size, len(image_ids), "final_models.semantic.train.batch_size")
    arch = resolve_arch(settings.arch, backbone.arch)
    seed_everything(train.seed)
    state = initial_backbone_state(arch, backbone.weights, cam_model_path, where="final_models.semantic.arch")
    device = run.device
    precision = Precision.for_device(device)
    model = precision.prepare_model(build_semantic_model(arch, len(dataset.classes), backbone_state=state))
    samples = SemanticCrops(dataset.load_image, label_dir, image_ids, crop_size=train.crop_size,
                            scale_range=train.scale_range, seed=train.seed)  # fmt: skip
    groups = semantic_param_groups(model)
    optimizer = build_optimizer(
        [{"params": groups["backbone"]}, {"params": groups["head"], "lr_mult": train.head_lr_mult}],
        SGDSettings.of(train),
    )
    max_step = (len(samples) // train.batch_size) * train.epochs
    label_digests = [file_digest(Path(label_dir) / f"{i}.png") for i in image_ids]
    digest = fingerprint(_training_settings(settings), backbone_digest(backbone), list(dataset.classes), list(image_ids),
                         label_digests, file_digest(cam_model_path) if cam_model_path else None,
                         _image_digests(dataset, image_ids, labels_path), code_digest())  # fmt: skip

    def step(batch):
        images, labels = batch
        with precision.autocast():
            logits = model(precision.to_device(images))["out"]
        loss = semantic_loss(logits.float(), labels.to(device))
        _check_finite(loss, "final_models.semantic.train")
        return {"loss": loss}

    checkpoint = Path(run.checkpoint_dir) / "last.pt"
    history = fit(Training(
        name="train_semantic_model", model=model, optimizer=optimizer,
        scheduler=build_scheduler(optimizer, max_step, train.schedule), dataset=samples, step=step,
        batch_size=train.batch_size, epochs=train.epochs, seed=train.seed, precision=precision,
        checkpoint_path=checkpoint, fingerprint=digest, history_path=run.out_history, num_workers=run.num_workers,
        log_every=10,
    ))  # fmt: skip
    _save(run.out_model, model, kind="deeplabv3", arch=arch, classes=list(dataset.classes), fingerprint=digest)
    finish(checkpoint)
    return history[-1] if history else {}


def load_semantic_model(path: str, device: torch.device):
    meta = _load_meta(path)
    model = build_semantic_model(meta["arch"], len(meta["classes"]))
    model.load_state_dict(meta["model"])
    return model.to(device).eval(), meta


def predict_semantic_set(
    *,
    model_path: str,
    dataset: Dataset,
    image_ids: Sequence[str],
    settings: SemanticModelSettings,
    out_dir: str,
    device: torch.device,
) -> int:
    """DeepLabv3 label maps of ``image_ids`` as VOC-palette PNGs (the pseudo-labels' format)."""
    model, _ = load_semantic_model(model_path, device)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for image_id in progress(image_ids, len(image_ids), "semantic predictions", log):
        labels = predict_semantic(model, dataset.load_image(image_id), device, flip=settings.infer.flip,
                                  max_long_side=settings.infer.max_long_side)  # fmt: skip
        write_label_png(Path(out_dir) / f"{image_id}.png", labels)
    return len(image_ids)


# ---- evaluation -------------------------------------------------------------------------------------------


def _semantic_miou(dataset: Dataset, image_ids: Sequence[str], label_dir: str) -> dict:
    matrix = ConfusionMatrix(len(dataset.classes) + 1)
    for image_id in image_ids:
        gt = dataset.semantic_gt(image_id)
        path = Path(label_dir) / f"{image_id}.png"
        if not path.exists():
            raise ValueError(f"{path}: val image has no label map")
        pred = read_label_png(path)
        if pred.shape != gt.shape:
            raise ValueError(f"{path}: label map is {pred.shape} but the ground truth is {gt.shape}")
        matrix.update(gt, np.where(pred == 255, 0, pred))
    return semantic_report(matrix, dataset.classes)


def _cam_baselines(dataset, image_ids, cam_store, cam_threshold, components_threshold) -> dict:
    """CAM mIoU (argmax over [threshold; CAMs]) and the CAM-components instance AP, on the val images."""
    cams = open_shards([cam_store])
    matrix = ConfusionMatrix(len(dataset.classes) + 1)
    components = InstanceAP(len(dataset.classes), tuple(REPORT_IOUS.values()))
    for image_id in image_ids:
        high_res, attrs = stored_high_res(cams[image_id], image_id)
        high_res, keys = high_res.astype(np.float32), list(attrs["keys"])
        matrix.update(dataset.semantic_gt(image_id), cam_label_map(high_res, keys, cam_threshold))
        found = cam_component_instances(high_res, keys, components_threshold)
        gt_masks, gt_classes, _ = dataset.instance_gt(image_id)
        components.add(found.masks, found.classes, found.scores, gt_masks, gt_classes)
    report = instance_ap_report(components, dataset.classes)
    return {"cam_miou": matrix.miou(), "cam_components_map50": report["map50"], "cam_components_map25": report["map25"],
            "cam_components_map75": report["map75"], "cam_threshold": cam_threshold,
            "cam_components_threshold": components_threshold}  # fmt: skip


def evaluate_final(
    *,
    dataset: Dataset,
    image_ids: Sequence[str],
    semantic_dir: str,
    instance_coco: str,
    pseudo_semantic_dir: str,
    pseudo_instance_coco: str,
    cam_store: str,
    thresholds: dict,
    out_path: str,
) -> dict:
    """``results/eval/final.json``: on the val images, the final models (``semantic.miou``,
    ``instance.map25|map50|map75``), the pseudo-label pipeline run on them (``pseudo_labels.*``) and the CAM
    baselines (``baselines.*``); fractions in [0, 1]. COCO sources add COCO's AP / AP50 / AP75 (``*.coco``)."""
    if not image_ids:
        raise InputError("config key dataset.val_list", "the val list is empty")
    semantic = _semantic_miou(dataset, image_ids, semantic_dir)
    instance = score_instance_file(dataset, image_ids, instance_coco, "val image")
    pseudo_semantic = _semantic_miou(dataset, image_ids, pseudo_semantic_dir)
    pseudo_instance = score_instance_file(dataset, image_ids, pseudo_instance_coco, "val image")
    baselines = _cam_baselines(
        dataset, image_ids, cam_store, thresholds["cam_eval_threshold"], thresholds["cam_baseline_threshold"]
    )
    result = {
        "semantic": {"miou": semantic["miou"], "per_class": semantic["per_class"]},
        "instance": {key: instance[key] for key in ("map25", "map50", "map75", "per_class", "recall50", "merged")},
        "pseudo_labels": {
            "miou": pseudo_semantic["miou"],
            **{key: pseudo_instance[key] for key in ("map25", "map50", "map75")},
        },
        "baselines": baselines,
        "n_images": len(image_ids),
    }
    if dataset.format == "coco":
        result["instance"]["coco"] = coco_scores(dataset, image_ids, instance_coco)
        result["pseudo_labels"]["coco"] = coco_scores(dataset, image_ids, pseudo_instance_coco)
    write_json(out_path, result)
    log.info("final models on %d val images: %s", len(image_ids),
             {k: v for k, v in {**result["semantic"], **result["instance"]}.items() if k != "per_class"})  # fmt: skip
    return result
