"""Typed settings: one frozen dataclass per config section that a stage uses, built once from a rule's params.

The schema (`irnet_core/config.schema.yaml`) is the only place that knows defaults; these classes have none.
:func:`from_section` therefore insists on exactly the dataclass's keys: a missing key means the dict did not go
through :func:`irnet_core.config.validate_config`, an extra one that the schema and the code disagree, and
both are programming errors (``ValueError``), not user errors. Lists become tuples, so settings hash and
compare by value; :func:`as_plain` turns them back into JSON-able dicts for fingerprints and store attributes.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class BackboneSettings:
    arch: str
    weights: str

    @property
    def pretrained(self) -> bool:
        return self.weights != "none"


@dataclass(frozen=True)
class OptimizerSettings:
    optimizer: str
    lr: float
    head_lr_mult: float
    momentum: float
    weight_decay: float
    schedule: str
    poly_power: float


@dataclass(frozen=True)
class CamTrainSettings:
    seed: int
    epochs: int
    min_steps: int
    batch_size: int
    crop_size: int
    resize_long: tuple[float, float]
    holdout_fraction: float


@dataclass(frozen=True)
class CamInferSettings:
    scales: tuple[float, ...]
    max_long_side: int | None


@dataclass(frozen=True)
class CRFSettings:
    gt_prob: float
    gauss_sxy: float
    gauss_compat: float
    bilateral_sxy: float
    bilateral_srgb: float
    bilateral_compat: float
    iterations: int


@dataclass(frozen=True)
class RelationSettings:
    conf_fg: float
    conf_bg: float
    crf: CRFSettings


@dataclass(frozen=True)
class IRNetTrainSettings:
    seed: int
    epochs: int
    min_steps: int
    batch_size: int
    crop_size: int
    scale_range: tuple[float, float]
    radius: int
    lr: float
    disp_lr_mult: float
    momentum: float
    weight_decay: float
    poly_power: float


@dataclass(frozen=True)
class CalibrationSettings:
    max_images: int
    batch_size: int


@dataclass(frozen=True)
class RandomWalkSettings:
    beta: float
    exp_times: int
    radius: int
    sem_bg_threshold: float
    cam_veto: bool


@dataclass(frozen=True)
class InstanceSettings:
    bg_threshold: float
    centroid_iterations: int
    weak_threshold: float
    min_fragment: float


@dataclass(frozen=True)
class InstanceTrainSettings:
    seed: int
    epochs: int
    batch_size: int
    min_size: int
    max_size: int
    lr: float
    momentum: float
    weight_decay: float
    schedule: str
    warmup_steps: int


@dataclass(frozen=True)
class InstanceInferSettings:
    score_threshold: float
    max_detections: int
    mask_threshold: float


@dataclass(frozen=True)
class InstanceModelSettings:
    """final_models.instance: Mask R-CNN on the instance pseudo-labels."""

    arch: str
    trainable_layers: int
    fpn_channels: int
    rpn_proposals: int
    roi_samples: int
    min_score: float
    train: InstanceTrainSettings
    infer: InstanceInferSettings


@dataclass(frozen=True)
class SemanticTrainSettings:
    seed: int
    epochs: int
    batch_size: int
    crop_size: int
    scale_range: tuple[float, float]
    lr: float
    head_lr_mult: float
    momentum: float
    weight_decay: float
    schedule: str


@dataclass(frozen=True)
class SemanticInferSettings:
    flip: bool
    max_long_side: int | None


@dataclass(frozen=True)
class SemanticModelSettings:
    """final_models.semantic: DeepLabv3 on the semantic pseudo-labels."""

    arch: str
    train: SemanticTrainSettings
    infer: SemanticInferSettings


def _convert(kind: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return from_section(kind, value, where)
    origin = typing.get_origin(kind)
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(kind):
            if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
                return from_section(option, value, where)
    return value


def from_section(cls: type[T], section: Mapping[str, Any], where: str = "") -> T:
    """Build ``cls`` from a validated config section; ``where`` names the section in error messages."""
    where = where or cls.__name__
    if not isinstance(section, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(section).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in section]
    extra = [k for k in section if k not in names]
    if missing or extra:
        raise ValueError(
            f"{where}: settings do not match {cls.__name__} (missing {missing}, unexpected {extra}); "
            "build them from a config that went through validate_config"
        )
    return cls(**{n: _convert(hints[n], section[n], f"{where}.{n}") for n in names})


def as_plain(settings: Any) -> Any:
    """JSON-able form (dicts and lists) of settings, for fingerprints, store attributes and logs."""
    if dataclasses.is_dataclass(settings):
        return {f.name: as_plain(getattr(settings, f.name)) for f in dataclasses.fields(settings)}
    if isinstance(settings, (list, tuple)):
        return [as_plain(v) for v in settings]
    if isinstance(settings, Mapping):
        return {k: as_plain(v) for k, v in settings.items()}
    return settings
