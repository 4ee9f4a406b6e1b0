"""Backbone shared by the CAM network and IRNet (method spec §2.2): a torchvision ResNet or MobileNetV2.

Contract of :func:`build_backbone`:

* ``arch`` is one of :data:`ARCHS`; the ImageNet head (``fc`` / ``classifier``, and ``avgpool``) is removed.
* Five stages ``stem, layer1 .. layer4`` return ``x1 .. x5`` at strides ``(4, 4, 8, 16, 16)`` for every
  arch: the last stage's stride-2 convolution is set to stride 1 (ResNet: the first block of ``layer4``,
  main conv and downsample; MobileNetV2: the depthwise conv of ``features.14``), with **no dilation**. Every
  stride-2 op rounds up, hence the stride-16 map of an ``H x W`` input is ``ceil(H/16) x ceil(W/16)``.
* :data:`SPECS` is the one place that knows which torchvision modules form each stage (see :class:`ArchSpec`);
  the CAM network, IRNet and the final models only see stages, channels and torchvision module names.
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

import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from irnet_core.errors import InputError

STAGE_NAMES: tuple[str, ...] = ("stem", "layer1", "layer2", "layer3", "layer4")
STRIDES: tuple[int, ...] = (4, 4, 8, 16, 16)  # of x1 .. x5, for every arch


@dataclass(frozen=True)
class ArchSpec:
    """What the project needs to know of one torchvision architecture: which of its modules form the five stages.

    Attributes:
        stages: torchvision module names (dotted into ``features`` for MobileNetV2) of ``stem, layer1 .. layer4``,
            in forward order. A stage of one module *is* that module (its keys are ``layer1.*``); a stage of
            several is a ``Sequential`` keyed by the last part of each name (``stem.conv1.*``, ``layer2.4.*``).
        head: prefix of torchvision's ImageNet head (dropped from weight files; the final models lack it).
        deeplab_dilation: ``replace_stride_with_dilation`` for DeepLabv3 (output stride 8; bottleneck ResNets
            only), or ``None``: output stride 16 by the same stride change as the backbone.
    """

    stages: tuple[tuple[str, ...], ...]
    head: str
    deeplab_dilation: tuple[bool, bool, bool] | None = None

    def key_prefixes(self) -> list[tuple[str, str]]:
        """(torchvision prefix, backbone prefix) of every stage module, e.g. ``("conv1.", "stem.conv1.")``."""
        pairs = []
        for stage, names in zip(STAGE_NAMES, self.stages, strict=True):
            for name in names:
                pairs.append((name + ".", f"{stage}." if len(names) == 1 else f"{stage}.{name.rsplit('.', 1)[-1]}."))
        return pairs

    def level_layers(self, levels: tuple[int, ...]) -> tuple[str, dict[str, str]]:
        """Where stages ``levels`` (1-based, as ``x1 .. x5``) end in the torchvision model: the parent module's
        name (``""``: the model) and ``{child name: str(position)}`` for torchvision's IntermediateLayerGetter."""
        ends = [self.stages[level - 1][-1] for level in levels]
        parents = {end.rpartition(".")[0] for end in ends}
        assert len(parents) == 1, f"stage ends {ends} have different parents"
        return parents.pop(), {end.rpartition(".")[2]: str(k) for k, end in enumerate(ends)}


_RESNET = ArchSpec(
    stages=(("conv1", "bn1", "relu", "maxpool"), ("layer1",), ("layer2",), ("layer3",), ("layer4",)), head="fc"
)
_BOTTLENECK = ArchSpec(stages=_RESNET.stages, head="fc", deeplab_dilation=(False, True, True))


def _features(first: int, last: int) -> tuple[str, ...]:
    return tuple(f"features.{k}" for k in range(first, last + 1))


# MobileNetV2 (torchvision): features.0 is the stride-2 stem conv, then inverted-residual blocks of 16, 24 (two,
# the first strided), 32 (three, strided), 64 + 96 (seven, the first strided), 160 + 320 (four, the first
# strided) channels and the 1x1 conv to 1280. The stages end where the stride changes, so that x1 and x2 are
# both at stride 4 as in the ResNets (IRNet's boundary branch fuses them without resampling): x1 = the first
# 24-channel block (stride 4), x2 = the second, x3 = the 32-channel blocks (8), x4 = the 64/96-channel blocks
# (16), x5 = the 160/320-channel blocks and the 1280-channel conv (16 once features.14 has stride 1).
_MOBILENET_V2 = ArchSpec(
    stages=(_features(0, 2), _features(3, 3), _features(4, 6), _features(7, 13), _features(14, 18)),
    head="classifier",
)

SPECS: dict[str, ArchSpec] = {
    "resnet18": _RESNET,
    "resnet34": _RESNET,
    "resnet50": _BOTTLENECK,
    "resnet101": _BOTTLENECK,
    "mobilenet_v2": _MOBILENET_V2,
}
ARCHS: tuple[str, ...] = tuple(SPECS)


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
    """Five stages of a torchvision network returning the feature maps used by the CAM net and IRNet.

    Attributes:
        arch: the torchvision architecture name.
        frozen_bn: whether the BatchNorms are :class:`FrozenStatsBatchNorm2d`.
        stem, layer1 .. layer4: the stages (strides 4, 4, 8, 16, 16; ResNet: ``Sequential(conv1, bn1, relu,
            maxpool)`` and its four stages; MobileNetV2: see :data:`SPECS`).
        out_channels: channels of each returned map, keyed ``"x1"`` .. ``"x5"``.
    """

    def __init__(self, model: nn.Module, *, arch: str, frozen_bn: bool) -> None:
        super().__init__()
        self.arch = arch
        self.frozen_bn = frozen_bn
        self.out_channels: dict[str, int] = {}
        for k, (stage, names) in enumerate(zip(STAGE_NAMES, SPECS[arch].stages, strict=True)):
            modules = [model.get_submodule(name) for name in names]
            if len(modules) == 1:
                setattr(self, stage, modules[0])
            else:
                setattr(self, stage, nn.Sequential(OrderedDict(
                    (name.rsplit(".", 1)[-1], module) for name, module in zip(names, modules, strict=True)
                )))  # fmt: skip
            self.out_channels[f"x{k + 1}"] = stage_channels(getattr(self, stage))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x`` (N,3,H,W) normalised RGB -> ``[x1, x2, x3, x4, x5]`` at strides (4, 4, 8, 16, 16)."""
        x1 = self.stem(x)
        x2 = self.layer1(x1)
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        x5 = self.layer4(x4)
        return [x1, x2, x3, x4, x5]


def stage_channels(stage: nn.Module) -> int:
    """Output channels of a stage: its last convolution's (every stage of :data:`SPECS` ends in a conv and
    its norm/activation; a ResNet block's downsample conv has the block's output channels too)."""
    convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
    return int(convs[-1].out_channels)


def set_last_stage_stride_one(stage: nn.Module) -> None:
    """Make every stride-2 conv of the last stage stride 1 (ResNet: the first block's main conv and shortcut;
    MobileNetV2: features.14's depthwise conv), keeping dilation 1; blocks that record a stride say 1."""
    for module in stage.modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (1, 1)
        if isinstance(getattr(module, "stride", None), int):
            module.stride = 1


def torchvision_model(arch: str, norm_layer: type[nn.Module] | None = None, **kwargs: Any) -> nn.Module:
    """torchvision's ``arch`` with random weights (``norm_layer`` None: ordinary BatchNorm)."""
    if arch not in SPECS:
        raise ValueError(f"unknown architecture {arch!r}")
    if norm_layer is not None:
        kwargs["norm_layer"] = norm_layer
    return getattr(torchvision.models, arch)(weights=None, **kwargs)


def build_backbone(arch: str, weights: str, *, frozen_bn: bool) -> Backbone:
    """Build a stride-16 backbone (see the module docstring for the full contract).

    Args:
        arch: one of :data:`ARCHS`.
        weights: ``"none"``, ``"imagenet"`` or a local state-dict path (torchvision key names or this
            module's stage names; ``module.`` prefixes are stripped and the ImageNet head is dropped; the file
            may also wrap the state dict as ``{"state_dict": ...}`` or ``{"model": ...}``).
        frozen_bn: use :class:`FrozenStatsBatchNorm2d` for every BatchNorm.

    Raises:
        InputError: unknown ``arch`` (``backbone.arch``), unavailable ImageNet weights
            (``backbone.weights``), or a missing/unreadable/mismatching weights file (its path).
    """
    if arch not in ARCHS:
        raise InputError("backbone.arch", f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}")
    norm_layer = FrozenStatsBatchNorm2d if frozen_bn else nn.BatchNorm2d
    backbone = Backbone(torchvision_model(arch, norm_layer), arch=arch, frozen_bn=frozen_bn)
    set_last_stage_stride_one(backbone.layer4)
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


def _check_hash_prefix(path: Path) -> None:
    """The SHA-256 of a cached hub file must start with the hex digits its name carries (``name-<hex>.pth``),
    the check torch.hub makes on download only: a truncated or replaced file in the cache is named, not loaded."""
    match = re.search(r"-([a-f0-9]+)\.", path.name)
    if match is None:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(match.group(1)):
        raise InputError(
            str(path), f"SHA-256 {digest.hexdigest()[:12]}... does not start with {match.group(1)} (its name's hash)"
        )


def _imagenet_state_dict(arch: str) -> Mapping[str, Any]:
    """ImageNet weights of ``arch`` from the hub cache (hash-checked), else one download; InputError if neither
    works."""
    url, cached = imagenet_weights_location(arch)
    if cached.is_file():
        _check_hash_prefix(cached)
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


def _normalise_keys(arch: str, state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Strip ``module.``, drop the ImageNet head, map torchvision's module names to the stages' (``conv1.`` ->
    ``stem.conv1.``, MobileNetV2's ``features.4.`` -> ``layer2.4.``); backbone names pass unchanged."""
    spec = SPECS[arch]
    prefixes = spec.key_prefixes()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith(spec.head + "."):
            continue
        for torchvision_prefix, backbone_prefix in prefixes:
            if key.startswith(torchvision_prefix):
                key = backbone_prefix + key[len(torchvision_prefix) :]
                break
        out[key] = value
    return out


def torchvision_state(backbone: Backbone) -> dict[str, torch.Tensor]:
    """The backbone's state under torchvision's key names (no head), detached copies: the final models'
    initial state."""
    prefixes = SPECS[backbone.arch].key_prefixes()
    out = {}
    for key, value in backbone.state_dict().items():
        for torchvision_prefix, backbone_prefix in prefixes:
            if key.startswith(backbone_prefix):
                key = torchvision_prefix + key[len(backbone_prefix) :]
                break
        out[key] = value.detach().clone()
    return out


def load_backbone_state(backbone: Backbone, state: Mapping[str, Any], *, where: str) -> None:
    """Load ``state`` into ``backbone`` strictly; any key or shape mismatch raises InputError(where, ...).

    BatchNorm ``num_batches_tracked`` counters may be absent (old torchvision files lack them).
    """
    state = _normalise_keys(backbone.arch, state)
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
