"""Typed settings: one frozen dataclass per config section that a stage uses, built once from a rule's params.

The schema (`irnet_core/config.schema.yaml`) is the only place that knows defaults; these classes have none.
:func:`from_section` therefore insists on exactly the dataclass's keys: a missing key means the dict did not go
through :func:`irnet_core.config.validate_config`, an extra one that the schema and the code disagree, and
both are programming errors (``ValueError``), not user errors. Lists become tuples, so settings hash and
compare by value; :func:`as_plain` turns them (and results and store attributes) back into JSON-able values.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class BackboneSettings:
    arch: str
    weights: str

    @property
    def pretrained(self) -> bool:
        return self.weights != "none"


@dataclass(frozen=True)
class SGDSettings:
    """The optimiser of the trainings whose sections give only lr, momentum and weight decay (IRNet, the final
    models): SGD, as in the paper. :func:`irnet_core.training.build_optimizer` takes it or an
    :class:`OptimizerSettings`."""

    lr: float
    momentum: float
    weight_decay: float
    optimizer = "sgd"

    @classmethod
    def of(cls, train: Any) -> SGDSettings:
        return cls(lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)


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
class WalkSettings:
    """The random walk's own settings, shared by the semantic and the instance scores (the params of the rules
    that walk without the semantic labels' threshold: rules/thresholds.smk `walk_params`)."""

    beta: float
    exp_times: int
    radius: int


@dataclass(frozen=True)
class RandomWalkSettings:
    beta: float
    exp_times: int
    radius: int
    sem_bg_threshold: float
    cam_veto: bool

    @property
    def walk(self) -> WalkSettings:
        return WalkSettings(beta=self.beta, exp_times=self.exp_times, radius=self.radius)


@dataclass(frozen=True)
class InstanceSettings:
    bg_threshold: float
    centroid_iterations: int
    weak_threshold: float
    min_fragment: float


@dataclass(frozen=True)
class SelfTrainingSettings:
    """How a self-training round combines predictions with the previous targets (irnet_core/self_training.py);
    not ``rounds``, which decides how many rounds run, not what one of them makes."""

    score_threshold: float
    cover: float


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


def as_plain(value: Any, *, finite: bool = False) -> Any:
    """The JSON-able form of settings, results and store attributes: dicts with string keys, lists and Python
    scalars in place of dataclasses, mappings, tuples, numpy arrays and numpy or torch scalars.

    The one conversion for fingerprints, store attributes and result files, so that the same settings give the
    same fingerprint wherever it is computed (a changed digest would rerun every cached result). ``finite``:
    NaN and infinities become None, as strict JSON needs (result files); without it they stay floats, as
    fingerprints and store attributes have always had them.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_plain(getattr(value, f.name), finite=finite) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): as_plain(v, finite=finite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_plain(v, finite=finite) for v in value]
    if isinstance(value, np.ndarray):
        return as_plain(value.tolist(), finite=finite)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy and torch scalars
        return as_plain(value.item(), finite=finite)
    if finite and isinstance(value, float) and not math.isfinite(value):
        return None
    return value
