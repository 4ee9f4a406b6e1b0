"""ResNet backbone shared by the CAM network and IRNet (method spec §2.2).

Contract of :func:`build_backbone`:

* ``arch`` is one of :data:`ARCHS` (torchvision ResNets); ``fc`` and ``avgpool`` are removed.
* Strides ``(2, 2, 2, 1)``: the first block of ``layer4`` has stride 1 (main conv and downsample),
  with **no dilation**, so ``layer3`` and ``layer4`` both have output stride 16. Every stride-2 op
  rounds up, hence the stride-16 map of an ``H x W`` input is ``ceil(H/16) x ceil(W/16)``.
* ``frozen_bn=True`` replaces every BatchNorm by :class:`FrozenStatsBatchNorm2d`: it always
  normalises with its running statistics (the training flag is ignored, the statistics are never
  updated) while its affine ``weight``/``bias`` stay ordinary trainable parameters. torchvision's
  ``FrozenBatchNorm2d`` is not used on purpose: it turns the affine parameters into buffers, whereas
  the paper's recipe trains them in layer3/layer4.
* ``weights``: ``"none"`` (torchvision's random init), ``"imagenet"`` (torchvision's
  ``IMAGENET1K_V1`` weights, read from torch hub's cache; one download attempt if absent) or a path to
  a local state-dict file. Every failure raises :class:`~irnet_core.errors.InputError` naming
  ``backbone.weights`` or the file.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from irnet_core.errors import InputError

ARCHS: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101")


class FrozenStatsBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that always uses (and never updates) its running statistics.

    Unlike ``torchvision.ops.FrozenBatchNorm2d`` the affine ``weight`` and ``bias`` remain
    ``nn.Parameter``s, so they can be trained; only the normalisation statistics are frozen.
    Being a ``BatchNorm2d`` subclass, torchvision's init and ``isinstance`` checks still apply.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # training=False: normalise with running stats, and do not update them, whatever self.training is.
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=False, momentum=0.0, eps=self.eps
        )


class Backbone(nn.Module):
    """ResNet trunk returning the five feature maps used by the CAM net and IRNet.

    Attributes:
        arch: the torchvision architecture name.
        frozen_bn: whether the BatchNorms are :class:`FrozenStatsBatchNorm2d`.
        stem: ``Sequential(conv1, bn1, relu, maxpool)`` (stride 4).
        layer1..layer4: the ResNet stages (strides 4, 8, 16, 16).
        out_channels: channels of each returned map, keyed ``"x1"`` .. ``"x5"``.
    """

    def __init__(self, resnet: torchvision.models.ResNet, *, arch: str, frozen_bn: bool) -> None:
        super().__init__()
        self.arch = arch
        self.frozen_bn = frozen_bn
        self.stem = nn.Sequential(
            OrderedDict(conv1=resnet.conv1, bn1=resnet.bn1, relu=resnet.relu, maxpool=resnet.maxpool)
        )
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4
        self.out_channels: dict[str, int] = {
            "x1": resnet.conv1.out_channels,
            "x2": _stage_channels(resnet.layer1),
            "x3": _stage_channels(resnet.layer2),
            "x4": _stage_channels(resnet.layer3),
            "x5": _stage_channels(resnet.layer4),
        }

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x`` (N,3,H,W) normalised RGB -> ``[x1, x2, x3, x4, x5]`` at strides (4, 4, 8, 16, 16)."""
        x1 = self.stem(x)
        x2 = self.layer1(x1)
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        x5 = self.layer4(x4)
        return [x1, x2, x3, x4, x5]


def _stage_channels(layer: nn.Sequential) -> int:
    """Output channels of a ResNet stage (last conv of its last block)."""
    last = layer[-1]
    conv = last.conv3 if hasattr(last, "conv3") else last.conv2
    return int(conv.out_channels)


def _set_layer4_stride_one(layer4: nn.Sequential) -> None:
    """Make the first block of ``layer4`` stride 1 (main path and shortcut), keeping dilation 1."""
    block = layer4[0]
    for conv in (getattr(block, "conv1", None), getattr(block, "conv2", None)):
        # BasicBlock strides conv1, torchvision's Bottleneck (v1.5) strides conv2 (like the official code).
        if conv is not None and conv.stride != (1, 1):
            conv.stride = (1, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)
    block.stride = 1


def build_backbone(arch: str, weights: str, *, frozen_bn: bool) -> Backbone:
    """Build a stride-16 ResNet backbone (see the module docstring for the full contract).

    Args:
        arch: one of :data:`ARCHS`.
        weights: ``"none"``, ``"imagenet"`` or a local state-dict path (torchvision key names or this
            module's ``stem.*`` names; ``module.`` prefixes are stripped and ``fc.*`` is dropped; the file
            may also wrap the state dict as ``{"state_dict": ...}`` or ``{"model": ...}``).
        frozen_bn: use :class:`FrozenStatsBatchNorm2d` for every BatchNorm.

    Raises:
        InputError: unknown ``arch`` (``backbone.arch``), unavailable ImageNet weights
            (``backbone.weights``), or a missing/unreadable/mismatching weights file (its path).
    """
    if arch not in ARCHS:
        raise InputError("backbone.arch", f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}")
    norm_layer = FrozenStatsBatchNorm2d if frozen_bn else nn.BatchNorm2d
    resnet = getattr(torchvision.models, arch)(weights=None, norm_layer=norm_layer)
    _set_layer4_stride_one(resnet.layer4)
    backbone = Backbone(resnet, arch=arch, frozen_bn=frozen_bn)
    if weights == "none":
        return backbone
    if weights == "imagenet":
        state, where = _imagenet_state_dict(arch), "backbone.weights"
    else:
        state, where = _read_weights_file(weights), weights
    load_backbone_state(backbone, state, where=where)
    return backbone


def imagenet_weights_location(arch: str) -> tuple[str, Path]:
    """(download URL, expected path in torch hub's cache) of the ImageNet weights for ``arch``."""
    url = torchvision.models.get_model_weights(arch).IMAGENET1K_V1.url
    filename = os.path.basename(urlparse(url).path)
    return url, Path(torch.hub.get_dir()) / "checkpoints" / filename


def _download_state_dict(url: str, cache_dir: Path) -> dict[str, Any]:
    """One download attempt into ``cache_dir`` (separate function so tests can replace it)."""
    return torch.hub.load_state_dict_from_url(
        url, model_dir=str(cache_dir), map_location="cpu", progress=False, check_hash=True, weights_only=True
    )


def _imagenet_state_dict(arch: str) -> Mapping[str, Any]:
    """ImageNet weights of ``arch`` from the hub cache, else one download; InputError if neither works."""
    url, cached = imagenet_weights_location(arch)
    if cached.is_file():
        return _read_weights_file(str(cached))
    try:
        return _download_state_dict(url, cached.parent)
    except Exception as exc:  # any failure (no network, bad hash, disk) means "not available offline"
        raise InputError(
            "backbone.weights",
            f"ImageNet weights for {arch} are not available offline ({type(exc).__name__}): put {cached.name} "
            f"from {url} into {cached.parent}, or set backbone.weights to a local file",
        ) from exc


def _read_weights_file(path: str) -> Mapping[str, Any]:
    """Load a state dict from ``path`` with ``weights_only=True``; unwrap ``state_dict``/``model``."""
    if not os.path.isfile(path):
        raise InputError(path, "backbone weights file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(path, f"cannot read backbone weights ({type(exc).__name__})") from exc
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if wrapper in obj and isinstance(obj[wrapper], Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(path, "not a state dict of tensors")
    return obj


def _normalise_keys(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Strip ``module.``, drop ``fc.*``, map torchvision's ``conv1.``/``bn1.`` to ``stem.conv1.``/``stem.bn1.``."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("module."):
            key = key[len("module.") :]
        if key.startswith("fc."):
            continue
        if key.startswith(("conv1.", "bn1.")):
            key = "stem." + key
        out[key] = value
    return out


def load_backbone_state(backbone: Backbone, state: Mapping[str, Any], *, where: str) -> None:
    """Load ``state`` into ``backbone`` strictly; any key or shape mismatch raises InputError(where, ...).

    BatchNorm ``num_batches_tracked`` counters may be absent (old torchvision files lack them).
    """
    state = _normalise_keys(state)
    expected = backbone.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [k for k in state if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    if wrong_shape:
        k = wrong_shape[0]
        shapes = f"file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        problems.append(f"{len(wrong_shape)} shape mismatches (e.g. {k}: {shapes})")
    if problems:
        raise InputError(where, f"weights do not fit {backbone.arch}: " + "; ".join(problems))
    backbone.load_state_dict(state, strict=False)  # strict=False only for the optional num_batches_tracked
