"""IRNet: boundary and displacement heads on the shared backbone (method spec §2.8).

The heads read the backbone's five levels at strides (4, 4, 8, 16, 16), which every arch provides
(:data:`irnet_core.models.backbone.SPECS`).

Every head block is 1x1 conv (no bias) -> GroupNorm -> [bilinear upsample, align_corners=False] -> ReLU.
Upsampled maps are cropped top-left to the size of the finer map they are concatenated with, which
is what makes inputs whose size is not a multiple of 16 work (each stride-2 op rounds up).

Outputs of ``forward`` for an ``H x W`` input, with ``h4 = ceil(H/4)``, ``w4 = ceil(W/4)``:

* ``edge_logits`` (N, 1, h4, w4): boundary logits (sigmoid gives the boundary probability).
* ``displacement`` (N, 2, h4, w4): raw displacement field, channel 0 = dy, channel 1 = dx, in units of
  stride-4 grid cells. The calibration offset ``mean_displacement`` (a buffer, so it is saved in the
  state dict) is **not** subtracted here; :func:`irnet_core.inference.infer_boundary_displacement` does it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from irnet_core.models.backbone import Backbone, build_backbone


class _HeadBlock(nn.Module):
    """1x1 conv (no bias) -> GroupNorm -> optional bilinear upsampling -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int, groups: int, upsample: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=False)
        self.norm = nn.GroupNorm(groups, out_ch)
        self.upsample = upsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        if self.upsample != 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False)
        return F.relu(x)


def _crop_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Top-left crop of ``x`` to the spatial size of ``ref``."""
    return x[..., : ref.shape[-2], : ref.shape[-1]]


class IRNet(nn.Module):
    """Inter-pixel relation network: boundary branch + displacement branch.

    Args:
        backbone: a :class:`Backbone`; head input channels come from ``backbone.out_channels``.
        train_backbone: ``False`` (paper): the backbone is frozen — no gradients, parameters with
            ``requires_grad=False``, and it stays in eval mode even after ``.train()``. ``True``: the
            backbone is fine-tuned with ordinary train/eval switching.
    """

    def __init__(self, backbone: Backbone, *, train_backbone: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.train_backbone = train_backbone
        ch = backbone.out_channels
        # Boundary branch: five 32-channel maps at stride 4 -> 160 -> 1 logit (with bias).
        self.edge1 = _HeadBlock(ch["x1"], 32, 4)
        self.edge2 = _HeadBlock(ch["x2"], 32, 4)
        self.edge3 = _HeadBlock(ch["x3"], 32, 4, upsample=2)
        self.edge4 = _HeadBlock(ch["x4"], 32, 4, upsample=4)
        self.edge5 = _HeadBlock(ch["x5"], 32, 4, upsample=4)
        self.edge6 = nn.Conv2d(160, 1, kernel_size=1, bias=True)
        # Displacement branch: deep features fused at stride 8, upsampled to stride 4, fused with shallow ones.
        self.disp1 = _HeadBlock(ch["x1"], 64, 8)
        self.disp2 = _HeadBlock(ch["x2"], 128, 16)
        self.disp3 = _HeadBlock(ch["x3"], 256, 16)
        self.disp4 = _HeadBlock(ch["x4"], 256, 16, upsample=2)
        self.disp5 = _HeadBlock(ch["x5"], 256, 16, upsample=2)
        self.disp6 = _HeadBlock(768, 256, 16, upsample=2)
        self.disp7 = nn.Sequential(_HeadBlock(448, 256, 16), nn.Conv2d(256, 2, kernel_size=1, bias=False))
        # Calibration offset mu (dy, dx), filled by the mean-displacement pass after training.
        self.register_buffer("mean_displacement", torch.zeros(2))
        if not train_backbone:
            for p in backbone.parameters():
                p.requires_grad_(False)
            backbone.eval()

    def train(self, mode: bool = True) -> IRNet:
        """Usual mode switch, except that a frozen backbone always stays in eval mode."""
        super().train(mode)
        if not self.train_backbone:
            self.backbone.eval()
        return self

    def _edge_modules(self) -> list[nn.Module]:
        return [self.edge1, self.edge2, self.edge3, self.edge4, self.edge5, self.edge6]

    def _disp_modules(self) -> list[nn.Module]:
        return [self.disp1, self.disp2, self.disp3, self.disp4, self.disp5, self.disp6, self.disp7]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images (N,3,H,W) -> (edge logits (N,1,h4,w4), raw displacement (N,2,h4,w4))."""
        if self.train_backbone:
            x1, x2, x3, x4, x5 = self.backbone(x)
        else:
            # Frozen backbone: no graph is needed (same as detaching every stage output, minus the memory).
            with torch.no_grad():
                x1, x2, x3, x4, x5 = self.backbone(x)

        e2 = self.edge2(x2)
        deep = [_crop_to(block(feat), e2) for block, feat in ((self.edge3, x3), (self.edge4, x4), (self.edge5, x5))]
        edge_logits = self.edge6(torch.cat([self.edge1(x1), e2, *deep], dim=1))

        d3 = self.disp3(x3)
        d6 = self.disp6(torch.cat([d3, _crop_to(self.disp4(x4), d3), _crop_to(self.disp5(x5), d3)], dim=1))
        d2 = self.disp2(x2)
        displacement = self.disp7(torch.cat([self.disp1(x1), d2, _crop_to(d6, d2)], dim=1))
        return edge_logits, displacement

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters: ``edge`` (lr x1), ``displacement`` (lr x10), ``backbone`` (empty when frozen)."""

        def params(modules: list[nn.Module]) -> list[nn.Parameter]:
            return [p for m in modules for p in m.parameters() if p.requires_grad]

        return {
            "edge": params(self._edge_modules()),
            "displacement": params(self._disp_modules()),
            "backbone": params([self.backbone]) if self.train_backbone else [],
        }


def build_irnet(arch: str, weights: str, *, train_backbone: bool = False) -> IRNet:
    """IRNet with the paper's wiring (ImageNet weights, not the CAM-trained ones, frozen backbone).

    BatchNorm statistics are frozen unless ``weights == "none"``; this only matters with
    ``train_backbone=True``, since a frozen backbone always runs in eval mode.
    """
    return IRNet(build_backbone(arch, weights, frozen_bn=weights != "none"), train_backbone=train_backbone)


def irnet_for_training(arch: str, weights: str, source: str, cam_model_path: str | Path | None) -> IRNet:
    """IRNet with its backbone from the pretrained weights (``pretrained_frozen``, the paper's) or from the
    trained CAM network (``cam_frozen``, ``cam_finetune``: the only weights trained on this data when there
    are no pretrained ones)."""
    from irnet_core.errors import InputError
    from irnet_core.models.cam_net import cam_backbone

    if source == "pretrained_frozen":
        if weights == "none":
            raise InputError(
                "config key irnet.backbone_source", "pretrained_frozen needs backbone.weights other than none"
            )
        return IRNet(build_backbone(arch, weights, frozen_bn=True), train_backbone=False)
    if source not in ("cam_frozen", "cam_finetune"):
        raise ValueError(f"unknown IRNet backbone source {source!r}")
    if not cam_model_path:
        raise ValueError(f"IRNet backbone source {source} needs the trained CAM model")
    return IRNet(cam_backbone(cam_model_path), train_backbone=source == "cam_finetune")


def save_irnet(path: str | Path, net: IRNet, **meta) -> None:
    """The trained heads (and backbone), with what rebuilding the network needs."""
    from irnet_core import __version__

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": net.state_dict(),
        "arch": net.backbone.arch,
        "frozen_bn": bool(net.backbone.frozen_bn),
        "train_backbone": bool(net.train_backbone),
        **meta,
        "irnet_core": __version__,
    }
    torch.save(state, path)


def load_irnet(path: str | Path, device: torch.device) -> IRNet:
    """A saved IRNet in eval mode on ``device`` (backbone rebuilt without pretrained weights, then loaded)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = IRNet(
        build_backbone(state["arch"], "none", frozen_bn=state["frozen_bn"]), train_backbone=state["train_backbone"]
    )
    net.load_state_dict(state["model"])
    return net.to(device).eval()
