"""The paper's last step: fully supervised models trained on the pseudo-labels (method doc §4).

* **Instance**: torchvision's Mask R-CNN with an FPN on the backbone's last four stages (ResNet or MobileNetV2,
  at torchvision's own strides 4-32), trained on the exported COCO file of the
  instance pseudo-labels. Instances with a score at or below ``min_score`` (the score-0 fragments that instance
  extraction keeps only for completeness) are not trained as objects: they leave the targets.
* **Semantic**: torchvision's DeepLabv3 (ASPP head on the backbone's last stage; output stride 8 with dilation
  for ResNet-50/101, 16 for ResNet-18/34, whose basic blocks cannot dilate, and MobileNetV2, as the CAM
  network's backbone), trained on the exported label PNGs with 255 ignored.

Which torchvision modules form each stage is known only to :data:`irnet_core.models.backbone.SPECS`.
Both backbones start from one backbone state: the configured ``backbone.weights`` (torchvision's ImageNet weights
or a local file, loaded by :func:`irnet_core.models.backbone.build_backbone`) when it is not ``none``, else the
trained CAM network's backbone, the only weights trained on this data. This module knows nothing of files
beyond what its functions are given, and nothing of Snakemake.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3
from torchvision.ops.misc import FrozenBatchNorm2d

from .data import transforms as T
from .errors import InputError
from .export import annotation_image_key, image_keys_by_id
from .instances import Instances
from .models.backbone import (
    ARCHS,
    SPECS,
    build_backbone,
    set_last_stage_stride_one,
    stage_channels,
    torchvision_model,
    torchvision_state,
)
from .models.cam_net import cam_backbone
from .palette import read_label_png
from .training import sample_rng

IGNORE = 255


# ---- backbones --------------------------------------------------------------------------------------------


def resolve_arch(arch: str, backbone_arch: str) -> str:
    """``auto`` means the shared backbone's architecture."""
    return backbone_arch if arch == "auto" else arch


def initial_backbone_state(
    arch: str, weights: str, cam_model_path: str | None, *, where: str
) -> dict[str, torch.Tensor]:
    """The backbone state (torchvision key names, no ImageNet head) both final models start from.

    ``weights`` other than ``none``: that backbone (ImageNet through torchvision's weights API, or a file).
    ``none``: the trained CAM network's backbone, which must be of architecture ``arch`` (``where`` names the
    config key in the error).
    """
    if weights != "none":
        backbone = build_backbone(arch, weights, frozen_bn=False)
    else:
        if cam_model_path is None:
            raise ValueError("backbone.weights is none: the final models need the CAM network's backbone")
        backbone = cam_backbone(cam_model_path)
        if backbone.arch != arch:
            raise InputError(
                where, f"{arch} cannot start from the CAM network's {backbone.arch} backbone (backbone.weights none)"
            )
    return torchvision_state(backbone)


def _load_backbone(arch: str, model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load a backbone state into torchvision's whole ``arch`` model: only its ImageNet head may be missing."""
    missing, unexpected = model.load_state_dict(dict(state), strict=False)
    head = SPECS[arch].head + "."
    missing = [k for k in missing if not k.startswith(head) and not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"backbone state does not fit: missing {missing[:3]}, unexpected {list(unexpected)[:3]}")


# ---- Mask R-CNN -------------------------------------------------------------------------------------------


def build_instance_model(
    arch: str,
    num_classes: int,
    *,
    backbone_state: Mapping[str, torch.Tensor] | None = None,
    trainable_layers: int = 3,
    fpn_channels: int = 256,
    min_size: int = 800,
    max_size: int = 1333,
    score_threshold: float = 0.05,
    max_detections: int = 100,
    rpn_proposals: int = 2000,
    roi_samples: int = 512,
) -> MaskRCNN:
    """Mask R-CNN (``num_classes`` foreground classes + background) on an FPN over the backbone's stages 2-5
    (torchvision's strides 4, 8, 16, 32; ResNet: layer1-4, MobileNetV2: features 3, 6, 13, 18), frozen BatchNorm.

    ``trainable_layers`` of the five stages train, from the top (torchvision's ``trainable_backbone_layers``). Inputs
    are lists of float RGB images in [0, 1]; the model resizes and normalises them itself (ImageNet statistics).
    ``rpn_proposals`` RPN proposals per image are kept in training (half of them in prediction) and
    ``roi_samples`` of them train the box head per image (torchvision's 2000 and 512; small images need fewer).
    """
    if arch not in ARCHS:
        raise InputError("final_models.instance.arch", f"unknown architecture {arch!r}")
    spec = SPECS[arch]
    model = torchvision_model(arch, FrozenBatchNorm2d)
    if backbone_state is not None:
        _load_backbone(arch, model, backbone_state)
    trained = tuple(name + "." for stage in spec.stages[::-1][:trainable_layers] for name in stage)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(trained))
    parent, layers = spec.level_layers((2, 3, 4, 5))
    body = model.get_submodule(parent)
    channels = [stage_channels(body.get_submodule(name)) for name in layers]
    backbone = BackboneWithFPN(body, layers, channels, fpn_channels)
    return MaskRCNN(
        backbone,
        min_size=min_size,
        max_size=max_size,
        rpn_pre_nms_top_n_train=rpn_proposals,
        rpn_post_nms_top_n_train=rpn_proposals,
        rpn_pre_nms_top_n_test=max(1, rpn_proposals // 2),
        rpn_post_nms_top_n_test=max(1, rpn_proposals // 2),
        box_batch_size_per_image=roi_samples,
        box_score_thresh=score_threshold,
        box_detections_per_img=max_detections,
        mask_head=MaskRCNNHeads(fpn_channels, [fpn_channels] * 4, 1),
        # Heads sized to the FPN (torchvision's defaults assume 256 channels); box head: TwoMLPHead of 1024.
        box_predictor=FastRCNNPredictor(1024, num_classes + 1),
        mask_predictor=MaskRCNNPredictor(fpn_channels, fpn_channels, num_classes + 1),
    )


def instance_param_groups(model: nn.Module) -> list[dict]:
    return [{"params": [p for p in model.parameters() if p.requires_grad]}]


def _boxes(masks: np.ndarray) -> np.ndarray:
    """(M, 4) float32 ``x0, y0, x1, y1`` boxes of (M, H, W) masks, with x1 > x0 and y1 > y0 (pixel edges)."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, mask in enumerate(masks):
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


def read_coco_instances(coco_path: str | Path, class_names: Sequence[str]) -> dict[str, dict]:
    """``{image_key: {"size", "classes", "scores", "rles"}}`` of a COCO instances file this project wrote
    (pseudo-labels or predictions); categories are matched to ``class_names`` by name."""
    path = Path(coco_path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(str(path), f"cannot read the COCO instances file ({type(exc).__name__})") from exc
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [c["name"] for c in data.get("categories", []) if c["name"] not in index]
    if unknown:
        raise InputError(str(path), f"category {unknown[0]!r} is not one of dataset.classes")
    category = {c["id"]: index[c["name"]] for c in data["categories"]}
    images = {}
    for entry in data["images"]:
        key = entry.get("image_key")
        if key is None:
            raise InputError(str(path), f"image {entry.get('id')} has no image_key (not a file of this workflow)")
        images[key] = {"size": (int(entry["height"]), int(entry["width"])), "classes": [], "scores": [], "rles": []}
    keys_by_id = image_keys_by_id(data["images"])
    for annotation in data["annotations"]:
        image = images[annotation_image_key(annotation, keys_by_id, str(path))]
        image["classes"].append(category[annotation["category_id"]])
        image["scores"].append(float(annotation.get("score", 1.0)))
        image["rles"].append(annotation["segmentation"])
    return images


def decode_instances(record: Mapping) -> Instances:
    """The :class:`Instances` of one image of :func:`read_coco_instances`."""
    from pycocotools import mask as mask_utils

    size = record["size"]
    if not record["rles"]:
        return Instances.empty(size)
    rles = [{"size": list(r["size"]), "counts": r["counts"].encode("ascii")} for r in record["rles"]]
    masks = np.moveaxis(mask_utils.decode(rles), -1, 0).astype(bool)
    return Instances(masks, np.asarray(record["classes"]), np.asarray(record["scores"]))


class InstanceSamples(torch.utils.data.Dataset):
    """Mask R-CNN samples: a float image in [0, 1] (C, H, W), randomly mirrored, and its target dict
    (``boxes``, ``labels`` 1..C, ``masks``). Instances at or below ``min_score`` and empty masks are left out;
    an image without instances is a valid sample (background only)."""

    def __init__(self, load: Callable[[str], np.ndarray], records: Mapping[str, Mapping], image_ids: Sequence[str],
                 *, min_score: float, seed: int):  # fmt: skip
        self.load, self.records, self.image_ids = load, records, list(image_ids)
        self.min_score, self.seed = min_score, seed

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        rng = sample_rng(self.seed, epoch, index)
        image_id = self.image_ids[index]
        image = self.load(image_id)
        found = decode_instances(self.records[image_id])
        if found.masks.shape[1:] != image.shape[:2]:
            raise ValueError(f"{image_id}: image is {image.shape[:2]} but its instances are {found.masks.shape[1:]}")
        keep = (found.scores > self.min_score) & found.masks.any(axis=(1, 2))
        masks = found.masks[keep]
        if rng.random() < 0.5:
            image, masks = image[:, ::-1], masks[:, :, ::-1]
        target = {
            "boxes": torch.from_numpy(_boxes(masks)).reshape(-1, 4),
            "labels": torch.from_numpy(found.classes[keep] + 1),
            "masks": torch.from_numpy(np.ascontiguousarray(masks, dtype=np.uint8)),
        }
        return torch.from_numpy(np.ascontiguousarray(T.to_chw(image), dtype=np.float32) / 255.0), target


def collate_lists(batch):
    """Detection batches: a tuple of images and a tuple of targets (images differ in size)."""
    return tuple(zip(*batch))


@torch.inference_mode()
def predict_instances(model: MaskRCNN, image: np.ndarray, device: torch.device, mask_threshold: float) -> Instances:
    """Detections of one uint8 RGB image at its own size: masks, 0-based classes and scores."""
    model.eval()
    tensor = torch.from_numpy(np.ascontiguousarray(T.to_chw(image), dtype=np.float32) / 255.0).to(device)
    output = model([tensor])[0]
    masks = (output["masks"][:, 0].float() > mask_threshold).cpu().numpy()
    keep = masks.any(axis=(1, 2))
    return Instances(
        masks[keep], output["labels"].cpu().numpy()[keep] - 1, output["scores"].float().cpu().numpy()[keep]
    )


# ---- DeepLabv3 --------------------------------------------------------------------------------------------


def build_semantic_model(
    arch: str, num_classes: int, *, backbone_state: Mapping[str, torch.Tensor] | None = None
) -> DeepLabV3:
    """DeepLabv3 with ``num_classes + 1`` outputs (background first) on the backbone's last stage, ordinary
    BatchNorm."""
    if arch not in ARCHS:
        raise InputError("final_models.semantic.arch", f"unknown architecture {arch!r}")
    spec = SPECS[arch]
    if spec.deeplab_dilation is not None:
        model = torchvision_model(arch, replace_stride_with_dilation=list(spec.deeplab_dilation))
    else:
        model = torchvision_model(arch)
        # Output stride 16 without dilation, as the CAM network's backbone (basic blocks cannot dilate).
        for name in spec.stages[-1]:
            set_last_stage_stride_one(model.get_submodule(name))
    if backbone_state is not None:
        _load_backbone(arch, model, backbone_state)
    parent, layers = spec.level_layers((5,))
    body = torchvision.models._utils.IntermediateLayerGetter(model.get_submodule(parent), {next(iter(layers)): "out"})
    last = body[next(iter(layers))]
    return DeepLabV3(body, DeepLabHead(stage_channels(last), num_classes + 1), None)


def semantic_param_groups(model: DeepLabV3) -> dict[str, list[nn.Parameter]]:
    return {"backbone": list(model.backbone.parameters()), "head": list(model.classifier.parameters())}


class SemanticCrops(torch.utils.data.Dataset):
    """DeepLab samples: random rescale, mirror and crop of an image and its pseudo-label PNG; pixels outside the
    image and unsure pseudo-labels are 255 (ignored by the loss)."""

    def __init__(self, load: Callable[[str], np.ndarray], label_dir: str | Path, image_ids: Sequence[str], *,
                 crop_size: int, scale_range, seed: int):  # fmt: skip
        self.load, self.label_dir, self.image_ids = load, Path(label_dir), list(image_ids)
        self.crop_size, self.scale_range, self.seed = crop_size, scale_range, seed

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        rng = sample_rng(self.seed, epoch, index)
        image_id = self.image_ids[index]
        image = self.load(image_id)
        path = self.label_dir / f"{image_id}.png"
        if not path.exists():
            raise InputError(str(path), f"image {image_id!r} has no semantic pseudo-label")
        labels = read_label_png(path)
        if labels.shape != image.shape[:2]:
            raise InputError(str(path), f"pseudo-label is {labels.shape} but the image is {image.shape[:2]}")
        image, labels = T.random_scale(image, labels, float(self.scale_range[0]), float(self.scale_range[1]), rng)
        image = T.normalize(image)
        image, labels = T.random_hflip(image, labels, rng)
        image, labels = T.random_crop(image, labels, self.crop_size, rng)
        return torch.from_numpy(T.to_chw(image)), torch.from_numpy(labels.astype(np.int64))


def semantic_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Pixel cross-entropy with 255 ignored (a batch of only ignored pixels gives 0, not NaN)."""
    if not (labels != IGNORE).any():
        return logits.sum() * 0.0
    return nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE)


@torch.inference_mode()
def predict_semantic(
    model: DeepLabV3, image: np.ndarray, device: torch.device, *, flip: bool, max_long_side: int | None
) -> np.ndarray:
    """uint8 (H, W) label map (0 background, c + 1 class c) of one uint8 RGB image."""
    model.eval()
    size = image.shape[:2]
    scale = T.long_side_scale(size, max_long_side)
    if scale < 1.0:
        image = T.resize_image(image, T.scaled_size(size, scale))
    x = torch.from_numpy(T.to_chw(T.normalize(image)))[None].to(device)
    batch = torch.cat([x, x.flip(-1)]) if flip else x
    logits = model(batch)["out"].float().softmax(1)
    probabilities = (logits[0] + logits[1].flip(-1)) / 2 if flip else logits[0]
    if scale < 1.0:
        probabilities = nn.functional.interpolate(probabilities[None], size=size, mode="bilinear", align_corners=False)[
            0
        ]
    return probabilities.argmax(0).to(torch.uint8).cpu().numpy()
