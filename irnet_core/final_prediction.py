"""Prediction of the final models (:mod:`irnet_core.models.final`) on one image each: Mask R-CNN instances and
a DeepLabv3 label map, at the image's own size."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.segmentation.deeplabv3 import DeepLabV3

from . import transforms as T
from .instances import Instances


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
