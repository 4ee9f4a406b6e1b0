"""Networks: the shared backbone (ResNet or MobileNetV2), the CAM classifier and IRNet (method spec §2.2, §2.3, §2.8)."""

from irnet_core.models.backbone import ARCHS, Backbone, FrozenStatsBatchNorm2d, build_backbone
from irnet_core.models.cam_net import CAMNet, build_cam_net
from irnet_core.models.irnet import IRNet, build_irnet

__all__ = [
    "ARCHS",
    "Backbone",
    "CAMNet",
    "FrozenStatsBatchNorm2d",
    "IRNet",
    "build_backbone",
    "build_cam_net",
    "build_irnet",
]
