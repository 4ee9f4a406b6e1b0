"""IRNet stage entry points: relation mining, training, calibration and inference (method doc §2.6-2.10)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..config import fingerprint
from ..provenance import code_digest, file_digest
from ..data import transforms as T
from ..data.voc import load_image
from ..errors import InputError
from ..inference import infer_boundary_displacement, mean_displacement
from ..losses import irnet_loss, pair_labels
from ..models.backbone import build_backbone
from ..models.irnet import IRNet
from ..path_index import get_path_index
from ..store import ShardReader, ShardWriter, open_shards
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
from .common import progress, write_json

log = logging.getLogger(__name__)


# ---- relation mining --------------------------------------------------------------------------------------


def mine_relations_shard(
    *, cam_store: str, image_ids: Sequence[str], image_paths: Sequence[str], relations: dict, out_store: str
) -> int:
    """Relation labels (0 bg, c+1 fg, 255 unsure) of one shard's training images, as uint8 maps."""
    from ..relations import CRFParams, mine_relation_labels

    crf = CRFParams.from_dict(relations["crf"])
    cams = ShardReader(cam_store, expected_ids=image_ids)
    with ShardWriter(out_store, stage="relations", image_ids=image_ids, attrs={"relations": relations}) as writer:
        for image_id, image_path in progress(zip(image_ids, image_paths, strict=True), len(image_ids), "relations", log):
            arrays, attrs = cams.read(image_id, ["high_res"])
            image = load_image(image_path)
            labels = mine_relation_labels(
                image,
                arrays["high_res"].astype(np.float32),
                attrs["keys"],
                conf_fg=relations["conf_fg"],
                conf_bg=relations["conf_bg"],
                crf=crf,
            )
            writer.write(image_id, {"labels": labels}, {"keys": attrs["keys"], "size": list(labels.shape)})
    return len(image_ids)


# ---- model construction -----------------------------------------------------------------------------------


def build_irnet_for_training(backbone: dict, source: str, cam_model_path: str | None) -> IRNet:
    """IRNet with its backbone from ImageNet/local weights (paper) or from the trained CAM network."""
    if source == "pretrained_frozen":
        if backbone["weights"] == "none":
            raise InputError(
                "config key irnet.backbone_source", "pretrained_frozen needs backbone.weights other than none"
            )
        net = IRNet(build_backbone(backbone["arch"], backbone["weights"], frozen_bn=True), train_backbone=False)
        return net
    if not cam_model_path:
        raise InputError("config key irnet.backbone_source", f"{source} needs the trained CAM model")
    cam_state = torch.load(cam_model_path, map_location="cpu", weights_only=True)
    features = build_backbone(cam_state["arch"], "none", frozen_bn=bool(cam_state["paper_recipe"]))
    prefix = "backbone."
    features.load_state_dict({k[len(prefix) :]: v for k, v in cam_state["model"].items() if k.startswith(prefix)})
    return IRNet(features, train_backbone=source == "cam_finetune")


def save_irnet(path: str, net: IRNet, meta: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": net.state_dict(), **meta, "irnet_core": __version__}, path)


def load_irnet(path: str, device: torch.device) -> IRNet:
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = IRNet(build_backbone(state["arch"], "none", frozen_bn=state["frozen_bn"]), train_backbone=state["train_backbone"])
    net.load_state_dict(state["model"])
    return net.to(device).eval()


# ---- training ---------------------------------------------------------------------------------------------


class RelationTrainSet(torch.utils.data.Dataset):
    """Random rescale, flip and crop of image and relation labels; labels then at stride 4 (method doc §2.9)."""

    def __init__(self, image_paths, image_ids, relation_index, *, crop_size: int, scale_range, seed: int):
        self.image_paths, self.image_ids, self.relations = list(image_paths), list(image_ids), relation_index
        self.crop_size, self.scale_range, self.seed = crop_size, scale_range, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int):
        rng = sample_rng(self.seed, self.epoch, index)
        image_id = self.image_ids[index]
        image = load_image(self.image_paths[index])
        labels = self.relations[image_id].read(image_id, ["labels"])[0]["labels"]
        if labels.shape != image.shape[:2]:
            raise InputError(self.image_paths[index], f"image is {image.shape[:2]} but its relation labels are {labels.shape}")
        image, labels = T.random_scale(image, labels, float(self.scale_range[0]), float(self.scale_range[1]), rng)
        image = T.normalize(image)
        image, labels = T.random_hflip(image, labels, rng)
        image, labels = T.random_crop(image, labels, self.crop_size, rng)
        grid = T.downsample_label_nearest(labels, 4)
        return torch.from_numpy(np.ascontiguousarray(T.to_chw(image))), torch.from_numpy(grid.astype(np.int64))


def train_irnet(
    *,
    relation_stores: Sequence[str],
    image_ids: Sequence[str],
    image_paths: Sequence[str] | None = None,
    labels_path: str | None = None,
    cam_model_path: str | None,
    train: dict,
    backbone: dict,
    backbone_source: str,
    out_model: str,
    out_history: str,
    checkpoint_dir: str,
    device: torch.device,
    num_workers: int = 0,
) -> dict:
    """Train IRNet's boundary and displacement branches on relation labels; resumable per epoch.

    ``image_paths`` (aligned with ``image_ids``) may instead come from ``labels_path`` (prepare_dataset's file).
    """
    image_digests: dict = {}
    if image_paths is None:
        if labels_path is None:
            raise ValueError("train_irnet needs image_paths or labels_path")
        with open(labels_path) as handle:
            recorded = json.load(handle)
        image_paths = [recorded["paths"][i] for i in image_ids]
        image_digests = recorded.get("image_digests") or {}
    relations = open_shards(relation_stores)
    missing = [i for i in image_ids if i not in relations]
    if missing:
        raise InputError(missing[0], "training image has no relation labels in any shard store")
    dataset = RelationTrainSet(
        image_paths, image_ids, relations, crop_size=train["crop_size"], scale_range=train["scale_range"], seed=train["seed"]
    )
    if len(dataset) < train["batch_size"]:
        raise InputError("config key irnet.train.batch_size", f"{train['batch_size']} exceeds the {len(dataset)} training images")

    seed_everything(train["seed"])
    net = build_irnet_for_training(backbone, backbone_source, cam_model_path).to(device)
    groups = net.param_groups()
    recipe = {"optimizer": "sgd", "lr": train["lr"], "momentum": train["momentum"], "weight_decay": train["weight_decay"]}
    optimizer = build_optimizer(
        [
            {"params": groups["edge"]},
            {"params": groups["displacement"], "lr_mult": train["disp_lr_mult"]},
            {"params": groups["backbone"]},
        ],
        recipe,
    )
    grid = train["crop_size"] // 4
    index = get_path_index(train["radius"], grid, grid).to(device)
    steps_per_epoch = len(dataset) // train["batch_size"]
    max_step = steps_per_epoch * train["epochs"]
    # Content, not names: the relation labels (digests their writer recorded), the CAM network's bytes, the
    # image bytes, every result setting, and the code.
    relation_digests = [ShardReader(store).content_digest for store in relation_stores]
    cam_digest = file_digest(cam_model_path) if cam_model_path else None
    images = [image_digests.get(i) or file_digest(p) for i, p in zip(image_ids, image_paths, strict=True)]
    digest = fingerprint(
        train, backbone, backbone_source, list(image_ids), relation_digests, cam_digest, images, code_digest()
    )
    checkpoint_path = Path(checkpoint_dir) / "last.pt"

    history, start_epoch = resume(checkpoint_path, digest, net, optimizer)

    log.info("training IRNet (%s backbone, %s) on %d images, %d steps", backbone["arch"], backbone_source, len(dataset), max_step)
    net.train()
    for epoch in range(start_epoch, train["epochs"]):
        dataset.epoch = epoch
        order = epoch_order(len(dataset), train["seed"], epoch)[: steps_per_epoch * train["batch_size"]]
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=train["batch_size"], sampler=order.tolist(), num_workers=num_workers, drop_last=True
        )
        start = time.perf_counter()
        sums: dict[str, float] = {}
        for i, (images, label_grid) in enumerate(loader):
            step = epoch * steps_per_epoch + i
            set_lr(optimizer, lr_factor(step, max_step, "poly", train["poly_power"]))
            label_grid = label_grid.to(device)
            pos_bg, pos_fg, neg = pair_labels(label_grid, index)
            edge_logits, displacement = net(images.to(device))
            losses = irnet_loss(edge_logits, displacement, pos_bg, pos_fg, neg, index)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            optimizer.step()
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + value.item()
        row = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * steps_per_epoch,
            **{("loss" if k == "total" else f"loss_{k}"): v / max(1, steps_per_epoch) for k, v in sums.items()},
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - start, 2),
        }
        history.append(row)
        log.info("epoch %s", {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
        save_epoch(checkpoint_path, digest, net, optimizer, epoch, history)

    save_irnet(
        out_model,
        net,
        {
            "arch": backbone["arch"],
            "frozen_bn": bool(getattr(net.backbone, "frozen_bn", backbone["weights"] != "none")),
            "train_backbone": bool(net.train_backbone),
            "backbone_source": backbone_source,
            "crop_size": train["crop_size"],
            "fingerprint": digest,
        },
    )
    write_history(out_history, history)
    finish(checkpoint_path)
    return history[-1] if history else {}


# ---- calibration and inference ----------------------------------------------------------------------------


def calibrate_displacement(
    *, model_path: str, image_paths: Sequence[str], pad_size: int, out_path: str, device: torch.device, batch_size: int = 8
) -> dict:
    """The mean displacement μ over training images (method doc §2.9), written as JSON."""
    net = load_irnet(model_path, device)
    mu = mean_displacement(net, (load_image(p) for p in image_paths), pad_size=pad_size, device=device, batch_size=batch_size)
    result = {"mean_displacement": [float(mu[0]), float(mu[1])], "n_images": len(image_paths), "pad_size": pad_size}
    write_json(out_path, result)
    log.info("mean displacement (dy, dx) = (%.4f, %.4f) over %d images", mu[0], mu[1], len(image_paths))
    return result


def infer_irnet_shard(
    *,
    model_path: str,
    calibration_path: str,
    image_ids: Sequence[str],
    image_paths: Sequence[str],
    pad_size: int,
    out_store: str,
    device: torch.device,
) -> int:
    """Boundary map (flip-averaged) and calibrated displacement field of one shard's images, float16."""
    net = load_irnet(model_path, device)
    with open(calibration_path) as handle:
        mu = json.load(handle)["mean_displacement"]
    net.mean_displacement.copy_(torch.tensor(mu, dtype=net.mean_displacement.dtype))
    with ShardWriter(out_store, stage="irnet", image_ids=image_ids, attrs={"mean_displacement": mu}) as writer:
        for image_id, image_path in progress(zip(image_ids, image_paths, strict=True), len(image_ids), "IRNet maps", log):
            image = load_image(image_path)
            boundary, displacement = infer_boundary_displacement(net, image, pad_size=pad_size, device=device)
            writer.write(
                image_id,
                {"boundary": boundary.astype(np.float16), "displacement": displacement.astype(np.float16)},
                {"size": list(image.shape[:2]), "stride": 4},
            )
    return len(image_ids)
