"""IRNet stage entry points: relation mining, training, calibration and inference (method doc §2.6-2.10)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .. import training
from ..config import fingerprint
from ..data.base import Dataset
from ..errors import InputError
from ..inference import infer_boundary_displacement, mean_displacement, stored_high_res
from ..losses import irnet_loss, pair_labels
from ..models.irnet import irnet_for_training, load_irnet, save_irnet
from ..path_index import get_path_index
from ..provenance import backbone_digest, code_digest, file_digest
from ..settings import (
    BackboneSettings,
    CalibrationSettings,
    IRNetTrainSettings,
    RelationSettings,
    SGDSettings,
    as_plain,
)
from ..store import ShardReader, ShardWriter, open_shards
from ..training import Precision, Training, build_optimizer, build_scheduler, epochs_for, finish, fit, seed_everything
from ..training_sets import RelationCrops
from .common import progress, read_labels_file, write_json

log = logging.getLogger(__name__)


# ---- relation mining --------------------------------------------------------------------------------------


def mine_relations_shard(
    *, cam_store: str, dataset: Dataset, image_ids: Sequence[str], relations: RelationSettings, out_store: str
) -> int:
    """Relation labels (0 bg, c+1 fg, 255 unsure) of one shard's training images, as uint8 maps."""
    from ..relations import CRFParams, mine_relation_labels

    crf = CRFParams.from_dict(as_plain(relations.crf))
    cams = ShardReader(cam_store, expected_ids=image_ids)
    with ShardWriter(
        out_store, stage="relations", image_ids=image_ids, attrs={"relations": as_plain(relations)}
    ) as writer:
        for image_id in progress(image_ids, len(image_ids), "relations", log):
            high_res, attrs = stored_high_res(cams, image_id)
            labels = mine_relation_labels(
                dataset.load_image(image_id),
                high_res.astype(np.float32),
                attrs["keys"],
                conf_fg=relations.conf_fg,
                conf_bg=relations.conf_bg,
                crf=crf,
            )
            writer.write(image_id, {"labels": labels}, {"keys": attrs["keys"], "size": list(labels.shape)})
    return len(image_ids)


# ---- training ---------------------------------------------------------------------------------------------


def train_irnet(
    *,
    relation_stores: Sequence[str],
    dataset: Dataset,
    image_ids: Sequence[str],
    labels_path: str,
    cam_model_path: str | None,
    train: IRNetTrainSettings,
    backbone: BackboneSettings,
    backbone_source: str,
    run: training.TrainingRun,
) -> dict:
    """Train IRNet's boundary and displacement branches on relation labels; resumable per epoch."""
    image_digests = read_labels_file(labels_path)["image_digests"]
    relations = open_shards(relation_stores)
    missing = [i for i in image_ids if i not in relations]
    if missing:
        raise ValueError(f"{missing[0]}: training image has no relation labels in any shard store")
    samples = RelationCrops(dataset.load_image, image_ids, relations, crop_size=train.crop_size,
                            scale_range=train.scale_range, seed=train.seed)  # fmt: skip
    if len(samples) < train.batch_size:
        raise InputError(
            "config key irnet.train.batch_size", f"{train.batch_size} exceeds the {len(samples)} training images"
        )
    seed_everything(train.seed)
    device = run.device
    precision = Precision.for_device(device)
    net = precision.prepare_model(irnet_for_training(backbone.arch, backbone.weights, backbone_source, cam_model_path))
    groups = net.param_groups()
    optimizer = build_optimizer([{"params": groups["edge"]}, {"params": groups["displacement"], "lr_mult": train.disp_lr_mult},
                                 {"params": groups["backbone"]}], SGDSettings.of(train))  # fmt: skip
    index = get_path_index(train.radius, train.crop_size // 4, train.crop_size // 4).to(device)
    # Content, not names: relation labels (digests their writer recorded), CAM network bytes, image bytes.
    digest = fingerprint(as_plain(train), backbone_digest(backbone), backbone_source, list(image_ids),
                         [ShardReader(store).content_digest for store in relation_stores],
                         file_digest(cam_model_path) if cam_model_path else None,
                         [image_digests[i] for i in image_ids], code_digest())  # fmt: skip

    def step(batch):
        images, label_grid = batch
        pos_bg, pos_fg, neg = pair_labels(label_grid.to(device), index)
        with precision.autocast():
            edge_logits, displacement = net(precision.to_device(images))
        losses = irnet_loss(edge_logits.float(), displacement.float(), pos_bg, pos_fg, neg, index)
        return {("loss" if key == "total" else key): value for key, value in losses.items()}

    checkpoint = Path(run.checkpoint_dir) / "last.pt"
    epochs = epochs_for("train_irnet", train.epochs, train.min_steps, len(samples) // train.batch_size)
    max_step = (len(samples) // train.batch_size) * epochs
    history = fit(Training(
        name="train_irnet", model=net, optimizer=optimizer, scheduler=build_scheduler(optimizer, max_step, "poly", train.poly_power),
        dataset=samples, step=step, batch_size=train.batch_size, epochs=epochs, seed=train.seed, precision=precision,
        checkpoint_path=checkpoint, fingerprint=digest, history_path=run.out_history, num_workers=run.num_workers,
    ))  # fmt: skip
    save_irnet(run.out_model, net, backbone_source=backbone_source, crop_size=train.crop_size, fingerprint=digest)
    finish(checkpoint)
    return history[-1] if history else {}


# ---- calibration and inference ----------------------------------------------------------------------------


def calibrate_displacement(
    *,
    model_path: str,
    dataset: Dataset,
    image_ids: Sequence[str],
    pad_size: int,
    calibration: CalibrationSettings,
    out_path: str,
    device: torch.device,
) -> dict:
    """The mean displacement μ over training images (method doc §2.9), written as JSON; ``image_ids`` are the
    first ``calibration.max_images`` (chosen when the DAG is built), fed ``calibration.batch_size`` at a time."""
    net = load_irnet(model_path, device)
    images = (dataset.load_image(i) for i in image_ids)
    mu = mean_displacement(net, images, pad_size=pad_size, device=device, batch_size=calibration.batch_size)
    result = {"mean_displacement": [float(mu[0]), float(mu[1])], "n_images": len(image_ids), "pad_size": pad_size}
    write_json(out_path, result)
    log.info("mean displacement (dy, dx) = (%.4f, %.4f) over %d images", mu[0], mu[1], len(image_ids))
    return result


def infer_irnet_shard(
    *,
    model_path: str,
    calibration_path: str,
    dataset: Dataset,
    image_ids: Sequence[str],
    pad_size: int,
    out_store: str,
    device: torch.device,
    max_long_side: int | None = None,
) -> int:
    """Boundary map (flip-averaged) and calibrated displacement field of one shard's images, float16."""
    precision = Precision.for_device(device)
    net = precision.prepare_model(load_irnet(model_path, device))
    with open(calibration_path) as handle:
        mu = json.load(handle)["mean_displacement"]
    net.mean_displacement.copy_(torch.tensor(mu, dtype=net.mean_displacement.dtype))
    with ShardWriter(out_store, stage="irnet", image_ids=image_ids, attrs={"mean_displacement": mu}) as writer:
        for image_id in progress(image_ids, len(image_ids), "IRNet maps", log):
            image = dataset.load_image(image_id)
            boundary, displacement = infer_boundary_displacement(
                net, image, pad_size=pad_size, device=device, max_long_side=max_long_side, precision=precision
            )
            writer.write(
                image_id,
                {"boundary": boundary.astype(np.float16), "displacement": displacement.astype(np.float16)},
                {"size": list(image.shape[:2]), "stride": 4},
            )
    return len(image_ids)
