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

Their training samples are in :mod:`irnet_core.training_sets` (:class:`~irnet_core.training_sets.InstanceSamples`,
:class:`~irnet_core.training_sets.SemanticCrops`), the semantic loss in :mod:`irnet_core.losses` and prediction in
:mod:`irnet_core.final_prediction`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torchvision
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3
from torchvision.ops.misc import FrozenBatchNorm2d

from irnet_core.errors import InputError
from irnet_core.models.backbone import (
    ARCHS,
    SPECS,
    build_backbone,
    set_last_stage_stride_one,
    stage_channels,
    torchvision_model,
    torchvision_state,
)
from irnet_core.models.cam_net import cam_backbone

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
