"""Score thresholds that fit the data: the rules behind `auto` (docs/method-notes.md, "Thresholds").

Every stage after the CAMs turns scores into labels with a background threshold. A threshold key holds a number
(used as it is) or ``auto``: the value that the calibration stages chose, read from their JSON file. Pure
functions over arrays; :mod:`irnet_core.pipeline.calibration` feeds them.

- Calibrated (ground truth of dataset.calibration_list): the best of a sweep (CAM and random-walk mIoU,
  instance mAP50).
- Label-free: the CAM threshold splits the pooled CAM scores by Otsu's criterion; the random-walk and instance
  thresholds are those whose labels agree best (mIoU, unsure pixels ignored) with the relation labels mined
  from the CAMs.
- conf_fg / conf_bg follow from the CAM threshold by fixed log-odds offsets (the paper's spacing).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import InputError

AUTO = "auto"
# Where each threshold key's `auto` value is found in the calibration files (see calibration stages).
CALIBRATED_NAME = {
    ("cam", "eval", "threshold"): "cam",
    ("evaluation", "cam_baseline_threshold"): "cam",
    ("relations", "conf_fg"): "conf_fg",
    ("relations", "conf_bg"): "conf_bg",
    ("random_walk", "sem_bg_threshold"): "semantic",
    ("instances", "bg_threshold"): "instances",
}


def logit(p: float) -> float:
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def relation_thresholds(cam_threshold: float, fg_offset: float, bg_offset: float) -> tuple[float, float]:
    """(conf_fg, conf_bg) from the CAM background threshold: fixed offsets in log-odds, so that the paper's
    spacing (0.15 -> 0.30 / 0.05) carries over to CAMs whose best threshold lies elsewhere without leaving
    [0, 1]."""
    base = logit(cam_threshold)
    return round(sigmoid(base + fg_offset), 4), round(sigmoid(base + bg_offset), 4)


class ScoreHistogram:
    """Pooled histogram of scores in [0, 1] (fixed bins), filled one image at a time."""

    def __init__(self, bins: int = 256):
        self.counts = np.zeros(bins, dtype=np.float64)

    def update(self, scores: np.ndarray) -> None:
        bins = self.counts.size
        index = np.clip((np.asarray(scores, np.float32).reshape(-1) * bins).astype(np.int64), 0, bins - 1)
        self.counts += np.bincount(index, minlength=bins)

    def otsu(self) -> float:
        """The threshold (a bin edge) that maximises the between-class variance of the two sides."""
        counts = self.counts
        total = counts.sum()
        if total == 0:
            raise ValueError("Otsu threshold of an empty histogram")
        centres = (np.arange(counts.size) + 0.5) / counts.size
        weight_low = np.cumsum(counts)[:-1]
        weight_high = total - weight_low
        mass_low = np.cumsum(counts * centres)[:-1]
        mean_low = mass_low / np.maximum(weight_low, 1e-12)
        mean_high = (mass_low[-1] + counts[-1] * centres[-1] - mass_low) / np.maximum(weight_high, 1e-12)
        between = weight_low * weight_high * (mean_low - mean_high) ** 2
        return float((np.argmax(between) + 1) / counts.size)


def best_of(curve: Mapping[float, float | None]) -> float:
    """The threshold with the highest score; ties go to the threshold nearest the middle of the tied run, so
    that a flat optimum does not push the choice to its edge. Undefined scores (None) never win."""
    items = sorted((float(t), s) for t, s in curve.items() if s is not None and not math.isnan(s))
    if not items:
        raise ValueError("no threshold of the sweep has a defined score")
    top = max(score for _, score in items)
    tied = [t for t, score in items if score >= top - 1e-12]
    return tied[(len(tied) - 1) // 2]


def snap(value: float, grid: Sequence[float]) -> float:
    """The grid value nearest ``value`` (label-free choices are reported on the calibration grid)."""
    return float(min(grid, key=lambda t: (abs(t - value), t)))


def read_calibrated(path: str | Path) -> dict[str, float]:
    """The chosen values ``{name: threshold}`` of a calibration stage's JSON file."""
    try:
        data = json.loads(Path(path).read_text())
        return {name: float(entry["value"]) for name, entry in data["thresholds"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(str(path), f"not a calibration file of this workflow ({exc})") from exc


def resolve(section: Mapping, path: Sequence[str], calibration_files: Sequence[str | Path]) -> dict:
    """A copy of the config ``section`` (at ``path``, e.g. ("relations",)) whose ``auto`` thresholds hold the
    calibrated values of ``calibration_files``; numbers given by the user stay as they are."""
    resolved = dict(section)
    chosen: dict[str, float] = {}
    for file in calibration_files:
        chosen.update(read_calibrated(file))
    for key_path, name in CALIBRATED_NAME.items():
        if tuple(key_path[: len(path)]) != tuple(path) or len(key_path) != len(path) + 1:
            continue
        key = key_path[-1]
        if resolved.get(key) == AUTO:
            if name not in chosen:
                raise ValueError(f"{'.'.join(key_path)} is auto but no calibration file given holds {name!r}")
            resolved[key] = chosen[name]
    return resolved


def is_auto(config: Mapping, key_path: Sequence[str]) -> bool:
    node = config
    for key in key_path:
        node = node[key]
    return node == AUTO


def label_free_sample(train_ids: Sequence[str], infer_ids: Sequence[str], limit: int) -> list[str]:
    """Up to ``limit`` training images (they have mined relation labels) for the label-free rules: those of the
    infer list first (they get IRNet maps anyway), then other training images. Chosen by a hash of the id:
    stable when the lists grow, and spread over a list rather than its first entries."""
    import hashlib

    def order(ids):
        return sorted(ids, key=lambda i: hashlib.blake2b(f"thresholds:{i}".encode(), digest_size=8).digest())

    infer = set(infer_ids)
    train = list(dict.fromkeys(train_ids))
    return (order(i for i in train if i in infer) + order(i for i in train if i not in infer))[:limit]
