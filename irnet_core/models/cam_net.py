"""CAM classifier (method spec §2.3): backbone (ResNet or MobileNetV2) + bias-free 1x1 classifier.

Two training recipes, chosen by ``paper_recipe``:

* ``True`` (pretrained weights, the paper's): the backbone must have frozen BatchNorm statistics
  (``build_backbone(..., frozen_bn=True)``); the stages up to stride 8 (stem, layer1 and layer2; for
  MobileNetV2 features 0-6) are frozen (their output is detached and their parameters have
  ``requires_grad=False``); layer3, layer4 (convs and BN affine) and the classifier train.
* ``False`` (training from scratch, used when ``backbone.weights == "none"``): ordinary BatchNorm
  (``frozen_bn=False``) and every parameter trains — frozen random features would learn nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from irnet_core.models.backbone import Backbone, build_backbone


class CAMNet(nn.Module):
    """Multi-label classifier whose 1x1 head doubles as a class-activation-map generator.

    ``forward(x)`` -> logits (N, num_classes) = classifier(global-average-pool(x5));
    ``cams(x)`` -> ReLU(classifier applied at every stride-16 location) (N, num_classes, ceil(H/16), ceil(W/16)).
    Because the classifier is linear and bias-free, ``forward`` equals the spatial mean of the
    pre-ReLU CAMs.
    """

    def __init__(self, backbone: Backbone, num_classes: int, *, paper_recipe: bool) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if backbone.frozen_bn != paper_recipe:
            # The two recipes differ in their BN handling; a mismatch is a wiring bug, not user input.
            raise ValueError(
                f"paper_recipe={paper_recipe} needs a backbone built with frozen_bn={paper_recipe}, "
                f"got frozen_bn={backbone.frozen_bn}"
            )
        self.backbone = backbone
        self.num_classes = num_classes
        self.paper_recipe = paper_recipe
        self.classifier = nn.Conv2d(backbone.out_channels["x5"], num_classes, kernel_size=1, bias=False)
        if paper_recipe:
            for module in (backbone.stem, backbone.layer1, backbone.layer2):
                for p in module.parameters():
                    p.requires_grad_(False)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """Stride-16 features (N, C_feat, ceil(H/16), ceil(W/16)); cut the graph after layer2 in the paper recipe."""
        b = self.backbone
        x = b.layer2(b.layer1(b.stem(x)))
        if self.paper_recipe:
            x = x.detach()
        return b.layer4(b.layer3(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (N,3,H,W) -> class logits (N, num_classes)."""
        pooled = F.adaptive_avg_pool2d(self._features(x), 1)
        return self.classifier(pooled).flatten(1)

    def cams(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (N,3,H,W) -> ReLU'd CAMs (N, num_classes, ceil(H/16), ceil(W/16))."""
        return F.relu(self.classifier(self._features(x)))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters: ``backbone`` (lr x1 in the paper) and ``head`` (classifier, lr x10)."""
        return {
            "backbone": [p for p in self.backbone.parameters() if p.requires_grad],
            "head": [p for p in self.classifier.parameters() if p.requires_grad],
        }


def build_cam_net(arch: str, weights: str, num_classes: int) -> CAMNet:
    """CAMNet with the recipe implied by ``weights``: the paper recipe unless ``weights == "none"``."""
    paper_recipe = weights != "none"
    return CAMNet(build_backbone(arch, weights, frozen_bn=paper_recipe), num_classes, paper_recipe=paper_recipe)


def save_cam_net(
    path: str | Path, model: CAMNet, *, arch: str, weights: str, classes: Sequence[str], fingerprint: str
) -> None:
    """The trained classifier and what rebuilding it needs (architecture, recipe, class names)."""
    from irnet_core import __version__

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "arch": arch,
            "weights": weights,
            "classes": list(classes),
            "paper_recipe": bool(model.paper_recipe),
            "irnet_core": __version__,
            "fingerprint": fingerprint,
        },
        path,
    )


def load_cam_net(path: str | Path, device: torch.device) -> tuple[CAMNet, dict]:
    """A saved classifier in eval mode on ``device``, and its metadata (``classes``, ``arch``, ...).

    The backbone is built without pretrained weights (the stored state replaces them all), with the stored
    recipe's structure (frozen BatchNorm for the paper's recipe).
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    paper = state["paper_recipe"]
    model = CAMNet(build_backbone(state["arch"], "none", frozen_bn=paper), len(state["classes"]), paper_recipe=paper)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state


def cam_backbone(path: str | Path) -> Backbone:
    """The backbone of a saved classifier (IRNet's backbone without pretrained weights, the final models' init)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    backbone = build_backbone(state["arch"], "none", frozen_bn=bool(state["paper_recipe"]))
    prefix = "backbone."
    backbone.load_state_dict({k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)})
    return backbone
