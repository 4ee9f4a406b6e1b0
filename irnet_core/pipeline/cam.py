"""CAM stage entry points: train the classifier, infer CAMs for a shard, evaluate CAMs (method doc §2.3-2.5)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..config import fingerprint
from ..provenance import code_digest, file_digest
from ..data import transforms as T
from ..data.voc import load_image
from ..errors import InputError
from ..inference import compute_cams
from ..metrics import ConfusionMatrix, semantic_report
from ..models.cam_net import build_cam_net
from ..palette import read_label_png
from ..store import ShardWriter, open_shards
from ..training import (
    build_optimizer,
    epoch_order,
    finish,
    lr_factor,
    resume,
    sample_rng,
    save_epoch,
    seed_everything,
    set_lr,
    write_history,
)
from .common import progress, read_labels_file, write_json

log = logging.getLogger(__name__)


# ---- training ---------------------------------------------------------------------------------------------


def split_holdout(image_ids: Sequence[str], fraction: float) -> tuple[list[int], list[int]]:
    """Positions of training and held-out images; membership is a hash of the id, stable under list edits."""
    train, held = [], []
    for pos, image_id in enumerate(image_ids):
        digest = hashlib.blake2b(f"holdout:{image_id}".encode(), digest_size=8).digest()
        (held if int.from_bytes(digest, "big") / 2**64 < fraction else train).append(pos)
    return train, held


class CamTrainSet(torch.utils.data.Dataset):
    """Random long-side resize, flip and crop (method doc §2.3); randomness from (seed, epoch, index)."""

    def __init__(self, paths: Sequence[str], targets: np.ndarray, *, crop_size: int, resize_long, seed: int):
        self.paths, self.targets = list(paths), targets
        self.crop_size, self.resize_long, self.seed = crop_size, resize_long, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        rng = sample_rng(self.seed, self.epoch, index)
        image = load_image(self.paths[index])
        image = T.random_resize_long(image, int(self.resize_long[0]), int(self.resize_long[1]), rng)
        image = T.normalize(image)
        image, _ = T.random_hflip(image, None, rng)
        image, _ = T.random_crop(image, None, self.crop_size, rng)
        return torch.from_numpy(np.ascontiguousarray(T.to_chw(image))), torch.from_numpy(self.targets[index])


def multilabel_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes with at least one positive of the (non-interpolated) average precision."""
    aps = []
    for c in range(targets.shape[1]):
        positives = targets[:, c] > 0.5
        if not positives.any():
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        hits = positives[order]
        precision_at_hit = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
        aps.append(precision_at_hit.mean())
    return float(np.mean(aps)) if aps else float("nan")


@torch.inference_mode()
def evaluate_classifier(model, paths: Sequence[str], targets: np.ndarray, device: torch.device) -> dict:
    """Held-out multi-label loss, mAP and accuracies on whole images: a network stuck at the label prior shows."""
    if not len(paths):
        return {}
    model.eval()
    scores = []
    for path in paths:
        image = torch.from_numpy(T.to_chw(T.normalize(load_image(path))).copy())[None].to(device)
        scores.append(torch.sigmoid(model(image)).float().cpu().numpy()[0])
    model.train()
    probs = np.stack(scores)
    loss = F.binary_cross_entropy(torch.from_numpy(probs).clamp(1e-6, 1 - 1e-6), torch.from_numpy(targets)).item()
    predicted = probs > 0.5
    positive = targets > 0.5
    return {
        "val_loss": loss,
        "val_map": multilabel_average_precision(probs, targets),
        "val_label_accuracy": float((predicted == positive).mean()),
        "val_exact_match": float((predicted == positive).all(axis=1).mean()),
    }


def train_cam(
    *,
    labels_path: str,
    image_paths: Sequence[str] | None = None,
    classes: Sequence[str],
    train: dict,
    recipe: dict,
    backbone: dict,
    out_model: str,
    out_history: str,
    checkpoint_dir: str,
    device: torch.device,
    num_workers: int = 0,
) -> dict:
    """Train the CAM classifier; resumable from the last epoch's checkpoint. Returns the final metrics row.

    ``image_paths`` (aligned with the labels file's ids) defaults to the paths recorded in the labels file.
    """
    labels = read_labels_file(labels_path)
    image_ids = labels["image_ids"]
    if image_paths is None:  # the paths prepare_dataset validated
        image_paths = [labels["paths"][i] for i in image_ids]
    if len(image_ids) != len(image_paths):
        raise InputError(labels_path, f"lists {len(image_ids)} images but the rule gave {len(image_paths)} image files")
    targets = np.zeros((len(image_ids), len(classes)), dtype=np.float32)
    for row, image_id in enumerate(image_ids):
        targets[row, labels["labels"][image_id]] = 1.0

    train_pos, held_pos = split_holdout(image_ids, train.get("holdout_fraction", 0.0))
    if len(train_pos) < train["batch_size"]:
        raise InputError("config key cam.train.batch_size", f"{train['batch_size']} exceeds the {len(train_pos)} training images")
    paths = [image_paths[i] for i in train_pos]
    dataset = CamTrainSet(paths, targets[train_pos], crop_size=train["crop_size"], resize_long=train["resize_long"], seed=train["seed"])
    held_paths, held_targets = [image_paths[i] for i in held_pos], targets[held_pos]

    seed_everything(train["seed"])
    model = build_cam_net(backbone["arch"], backbone["weights"], len(classes)).to(device)
    groups = model.param_groups()
    optimizer = build_optimizer(
        [{"params": groups["backbone"]}, {"params": groups["head"], "lr_mult": recipe["head_lr_mult"]}], recipe
    )
    steps_per_epoch = len(dataset) // train["batch_size"]
    max_step = steps_per_epoch * train["epochs"]
    # Content, not names: the image-level labels and image bytes of every training image (digests recorded by
    # prepare_dataset; computed here for paths given directly), every result setting, and the code.
    image_digests = labels.get("image_digests") or {}
    digest = fingerprint(
        train, recipe, backbone, list(classes), image_ids, [labels["labels"][i] for i in image_ids],
        [image_digests.get(i) or file_digest(p) for i, p in zip(image_ids, image_paths, strict=True)], code_digest(),
    )
    checkpoint_path = Path(checkpoint_dir) / "last.pt"

    history, start_epoch = resume(checkpoint_path, digest, model, optimizer)

    log.info(
        "training %s (%s recipe, %s) on %d images (%d held out), %d steps",
        backbone["arch"], "paper" if model.paper_recipe else "from-scratch", recipe["optimizer"], len(dataset), len(held_paths), max_step,
    )
    model.train()
    for epoch in range(start_epoch, train["epochs"]):
        dataset.epoch = epoch
        order = epoch_order(len(dataset), train["seed"], epoch)[: steps_per_epoch * train["batch_size"]]
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=train["batch_size"], sampler=order.tolist(), num_workers=num_workers, drop_last=True
        )
        start, losses = time.perf_counter(), []
        for i, (images, batch_targets) in enumerate(loader):
            step = epoch * steps_per_epoch + i
            set_lr(optimizer, lr_factor(step, max_step, recipe["schedule"], recipe["poly_power"]))
            logits = model(images.to(device))
            loss = F.multilabel_soft_margin_loss(logits, batch_targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        row = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * steps_per_epoch,
            "loss": float(np.mean(losses)),
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - start, 2),
            **evaluate_classifier(model, held_paths, held_targets, device),
        }
        history.append(row)
        log.info("epoch %s", {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
        save_epoch(checkpoint_path, digest, model, optimizer, epoch, history)

    Path(out_model).parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "arch": backbone["arch"],
            "weights": backbone["weights"],
            "classes": list(classes),
            "paper_recipe": bool(model.paper_recipe),
            "irnet_core": __version__,
            "fingerprint": digest,
        },
        out_model,
    )
    write_history(out_history, history)
    finish(checkpoint_path)
    return history[-1] if history else {}


def load_cam_model(path: str, device: torch.device):
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = _cam_net_like(state)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state


def _cam_net_like(state: dict):
    """A CAM network with the stored recipe's structure (frozen BN for the paper recipe), random weights.

    The backbone is built without pretrained weights: the trained state dict replaces them all.
    """
    from ..models.backbone import build_backbone
    from ..models.cam_net import CAMNet

    paper = state["paper_recipe"]
    return CAMNet(build_backbone(state["arch"], "none", frozen_bn=paper), len(state["classes"]), paper_recipe=paper)


# ---- inference --------------------------------------------------------------------------------------------


def infer_cam_shard(
    *,
    model_path: str,
    image_ids: Sequence[str],
    image_paths: Sequence[str],
    label_paths: Sequence[str],
    scales: Sequence[float],
    out_store: str,
    device: torch.device,
) -> int:
    """Multi-scale CAMs of one shard's images into a Zarr store (float16 `cam` at stride 4 and `high_res`)."""
    from ..data.voc import load_image_labels

    model, state = load_cam_model(model_path, device)
    classes = state["classes"]
    with ShardWriter(out_store, stage="cam", image_ids=image_ids, attrs={"classes": classes, "scales": list(scales)}) as writer:
        jobs = zip(image_ids, image_paths, label_paths, strict=True)
        for image_id, image_path, label_path in progress(jobs, len(image_ids), "CAMs", log):
            keys = load_image_labels(Path(label_path).parent.parent, image_id, classes)
            image = load_image(image_path)
            cam, high_res = compute_cams(model, image, keys, scales=scales, device=device)
            writer.write(
                image_id,
                {"cam": cam.astype(np.float16), "high_res": high_res.astype(np.float16)},
                {"keys": list(keys), "size": list(image.shape[:2]), "stride": 4},
            )
    log.info("wrote CAMs of %d images to %s", len(image_ids), out_store)
    return len(image_ids)


# ---- evaluation -------------------------------------------------------------------------------------------


def cam_label_map(high_res: np.ndarray, keys: Sequence[int], threshold: float) -> np.ndarray:
    """Label map from CAMs: argmax over [threshold (background); CAMs], mapped to 0 / key+1 (method doc §2.5)."""
    if len(keys) == 0:
        return np.zeros(high_res.shape[1:], dtype=np.uint8)
    scores = np.concatenate([np.full((1, *high_res.shape[1:]), threshold, dtype=np.float32), high_res.astype(np.float32)])
    lookup = np.array([0, *[k + 1 for k in keys]], dtype=np.uint8)
    return lookup[scores.argmax(axis=0)]


def sweep_cams(cams_by_id: dict, gt_paths: Sequence[str], image_ids: Sequence[str], thresholds: Sequence[float], n_classes: int):
    """Confusion matrices for several background thresholds; ``cams_by_id[id]() -> (high_res, keys)``."""
    matrices = {float(t): ConfusionMatrix(n_classes + 1) for t in thresholds}
    for image_id, gt_path in zip(image_ids, gt_paths, strict=True):
        gt = read_label_png(gt_path)
        high_res, keys = cams_by_id[image_id]()
        if high_res.shape[1:] != gt.shape:
            raise InputError(gt_path, f"ground truth is {gt.shape} but the image is {high_res.shape[1:]}")
        for threshold, matrix in matrices.items():
            matrix.update(gt, cam_label_map(high_res, keys, threshold))
    return matrices


def _sweep_summary(matrices: dict, classes: Sequence[str]) -> dict:
    sweep = {f"{t:g}": semantic_report(m, ["background", *classes])["miou"] for t, m in matrices.items()}
    best = max(matrices, key=lambda t: matrices[t].miou())
    return {"sweep": sweep, "best_threshold": best, "best_miou": matrices[best].miou()}


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
        raise InputError(missing[0], "eval image has no CAMs in any shard store")

    def loader(image_id):
        def load():
            arrays, attrs = shards[image_id].read(image_id, ["high_res"])
            return arrays["high_res"], attrs["keys"]

        return load

    thresholds = sorted({float(threshold), *map(float, sweep)})
    matrices = sweep_cams({i: loader(i) for i in image_ids}, gt_paths, image_ids, thresholds, len(classes))
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
        **_sweep_summary(matrices, classes),
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
    image_ids: Sequence[str],
    image_paths: Sequence[str],
    label_paths: Sequence[str],
    gt_paths: Sequence[str],
    classes: Sequence[str],
    train: dict,
    backbone: dict,
    scales: Sequence[float],
    sweep: Sequence[float],
    out_path: str,
    device: torch.device,
) -> dict:
    """Baseline: CAMs of the network as initialised for training (same seed), at its best threshold."""
    from ..data.voc import load_image_labels

    seed_everything(train["seed"])
    model = build_cam_net(backbone["arch"], backbone["weights"], len(classes)).to(device).eval()

    def loader(image_id, image_path, label_path):
        def load():
            keys = load_image_labels(Path(label_path).parent.parent, image_id, classes)
            return compute_cams(model, load_image(image_path), keys, scales=scales, device=device)[1], keys

        return load

    cams = {i: loader(i, p, lp) for i, p, lp in zip(image_ids, image_paths, label_paths, strict=True)}
    matrices = sweep_cams(cams, gt_paths, image_ids, sorted(map(float, sweep)), len(classes))
    result = {**_sweep_summary(matrices, classes), "n_images": len(image_ids)}
    write_json(out_path, result)
    return result
