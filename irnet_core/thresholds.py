"""Score thresholds that fit the data: the rules behind `auto` (docs/method-notes.md, "Thresholds").

Every stage after the CAMs turns scores into labels with a background threshold. A threshold key holds a number
(used as it is) or ``auto``: the value that the calibration stages chose, read from their JSON file. Pure
functions over arrays; :mod:`irnet_core.pipeline.calibration` feeds them.

- Calibrated (ground truth of dataset.calibration_list): the best of a sweep (CAM and random-walk mIoU,
  instance mAP50); on a list shorter than calibration.min_images, made robust (:func:`robust_choice`): the
  peak of the curve smoothed over grid neighbours (with calibration.min_gain > 0, only where it beats the
  label-free threshold by that much).
- Label-free: the threshold whose label maps put the most border on strong colour edges
  (:class:`EdgeAlignment`, with half a score cell of tolerance), for the CAMs as for the propagated semantic
  and instance scores.
- conf_fg / conf_bg follow from the CAM threshold by fixed log-odds offsets (the paper's spacing).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

AUTO = "auto"
# The threshold rules (THRESHOLD_RULES), by name as in calibration.method and the calibration files.
CALIBRATED, LABEL_FREE = "calibrated", "label-free"
# Where each threshold key's `auto` value is found in the calibration files (see calibration stages).
CALIBRATED_NAME = {
    ("cam", "eval", "threshold"): "cam",
    ("evaluation", "cam_baseline_threshold"): "cam",
    ("relations", "conf_fg"): "conf_fg",
    ("relations", "conf_bg"): "conf_bg",
    ("random_walk", "sem_bg_threshold"): "semantic",
    ("instances", "bg_threshold"): "instances",
}


# Edge masses within 2 % of the peak count as equally well aligned (EdgeAlignment).
EDGE_TOLERANCE = 0.02
# Label maps come from scores on a grid of stride 4 (the CAMs' high_res, IRNet's maps), upsampled: a border can
# only be placed to within half a cell, so an edge within 2 px of a border pixel counts as lying on it.
EDGE_BAND = 2


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


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """float32 (H, W): the Sobel gradient magnitude of an RGB image, summed over its channels."""
    from scipy import ndimage

    pixels = np.asarray(image, dtype=np.float32)
    total = np.zeros(pixels.shape[:2], dtype=np.float32)
    for channel in range(pixels.shape[2]):
        total += np.hypot(ndimage.sobel(pixels[..., channel], 0), ndimage.sobel(pixels[..., channel], 1))
    return total


def label_boundaries(labels: np.ndarray) -> np.ndarray:
    """bool (H, W): pixels with a 4-neighbour of another label (both sides of every label change)."""
    border = np.zeros(labels.shape, dtype=bool)
    rows, cols = labels[1:] != labels[:-1], labels[:, 1:] != labels[:, :-1]
    border[1:] |= rows
    border[:-1] |= rows
    border[:, 1:] |= cols
    border[:, :-1] |= cols
    return border


class EdgeAlignment:
    """The label-free rule of every background threshold: for each candidate threshold, the image-gradient mass
    along the borders of the label maps it gives, pooled over images; the best threshold puts the most label
    border on the strongest colour edges.

    A threshold too low or too high moves the borders into flat background or into the objects, whose
    gradients are weaker than the objects' outlines; a border that vanishes (all background, or all one class)
    contributes nothing, so the degenerate ends never win. Each border pixel counts the strongest gradient
    within ``band`` pixels: borders drawn from stride-4 scores are only placed to half a cell, and without the
    band a border just inside an outline (where the 3x3 Sobel still sees the edge) beats one just outside,
    which biases the rule towards thresholds that shrink the objects. Near the peak the mass is flat within
    the scores' precision, so the rule takes the middle of the run of thresholds within ``tolerance`` of it
    (as :func:`best_of` does with ties).
    """

    def __init__(self, grid: Sequence[float], tolerance: float = EDGE_TOLERANCE, band: int = EDGE_BAND):
        self.mass = {float(t): 0.0 for t in grid}
        self.tolerance = float(tolerance)
        self.band = int(band)

    def update(self, gradient: np.ndarray, label_map_at: Callable[[float], np.ndarray]) -> None:
        if self.band > 0:
            from scipy import ndimage

            gradient = ndimage.maximum_filter(gradient, size=2 * self.band + 1)
        for threshold in self.mass:
            self.mass[threshold] += float(gradient[label_boundaries(label_map_at(threshold))].sum())

    def best(self) -> float:
        thresholds = sorted(self.mass)
        masses = [self.mass[t] for t in thresholds]
        peak = max(range(len(masses)), key=masses.__getitem__)
        floor = (1 - self.tolerance) * masses[peak]
        low = high = peak
        while low > 0 and masses[low - 1] >= floor:
            low -= 1
        while high < len(masses) - 1 and masses[high + 1] >= floor:
            high += 1
        return thresholds[(low + high) // 2]


def best_of(curve: Mapping[float, float | None]) -> float:
    """The threshold with the highest score; ties go to the threshold nearest the middle of the tied run, so
    that a flat optimum does not push the choice to its edge. Undefined scores (None) never win."""
    items = sorted((float(t), s) for t, s in curve.items() if s is not None and not math.isnan(s))
    if not items:
        raise ValueError("no threshold of the sweep has a defined score")
    top = max(score for _, score in items)
    tied = [t for t, score in items if score >= top - 1e-12]
    return tied[(len(tied) - 1) // 2]


def smoothed(curve: Mapping[float, float | None]) -> dict[float, float | None]:
    """Each threshold's score averaged with its grid neighbours' (the defined ones): a sweep on few images has
    single-threshold spikes, and a threshold whose neighbours are also good is the safer choice."""
    items = sorted((float(t), s) for t, s in curve.items())
    out: dict[float, float | None] = {}
    for i, (t, score) in enumerate(items):
        window = [s for _, s in items[max(0, i - 1) : i + 2] if s is not None and not math.isnan(s)]
        out[t] = None if score is None or math.isnan(score) or not window else sum(window) / len(window)
    return out


def robust_choice(curve: Mapping[float, float | None], label_free: float, min_gain: float) -> tuple[float, str]:
    """The calibrated threshold, robust to a short calibration list: the peak of the :func:`smoothed` curve, where
    its smoothed score beats the label-free threshold's by at least ``min_gain`` (0.01: a point of mIoU or mAP);
    otherwise the label-free threshold, which the ground truth does not clearly improve on. Returns the value
    and how it was chosen, for the summary."""
    smooth = smoothed(curve)
    peak = best_of(smooth)
    at_label_free = smooth.get(float(label_free))
    if at_label_free is None:
        return peak, f"smoothed peak (the label-free {label_free:g} scored nothing)"
    gain = smooth[peak] - at_label_free
    if peak != float(label_free) and gain < min_gain:
        return float(
            label_free
        ), f"label-free {label_free:g} kept: the smoothed peak {peak:g} is only {100 * gain:+.1f} points"
    return peak, f"smoothed peak, {100 * gain:+.1f} points over the label-free {label_free:g}"


def calibrated_choice(
    curve: Mapping[float, float | None], label_free: float, n_images: int, min_images: int, min_gain: float
) -> tuple[float, str]:
    """The threshold a calibration list gives: the sweep's peak on ``min_images`` or more images; on fewer, the
    :func:`robust_choice` (a peak on few images is noisy: bench/calibration_sample.py). Value and how chosen."""
    if n_images >= min_images:
        return best_of(curve), "the sweep's peak"
    value, how = robust_choice(curve, label_free, min_gain)
    return value, f"{how}; fewer than {min_images} images"


def label_free_choice(
    curve: Mapping[float, float | None] | None, label_free: float, n_images: int, min_images: int, min_gain: float
) -> tuple[float, str]:
    """The label-free rule's threshold (:class:`EdgeAlignment`), whatever the curve."""
    return float(label_free), "label-free rule"


@dataclass(frozen=True)
class ThresholdRule:
    """How a calibration stage turns its sweep into a threshold: ``choose(curve, label_free, n_images, min_images,
    min_gain)`` returns the value and how it was chosen; ``curve`` (the sweep scored on ground truth) is None
    where the rule needs no ground truth."""

    name: str
    needs_ground_truth: bool
    choose: Callable[..., tuple[float, str]]


# The rules of `calibration.method` (besides `auto`: calibrated with a calibration list, else label-free). A new
# rule is one function and one entry here, plus its name in the schema's enum.
THRESHOLD_RULES = {
    rule.name: rule
    for rule in (
        ThresholdRule(CALIBRATED, needs_ground_truth=True, choose=calibrated_choice),
        ThresholdRule(LABEL_FREE, needs_ground_truth=False, choose=label_free_choice),
    )
}


def threshold_rule(method: str, has_calibration_list: bool) -> ThresholdRule:
    """The rule of ``calibration.method`` (``auto``: calibrated where there is a calibration list)."""
    if method == AUTO:
        method = CALIBRATED if has_calibration_list else LABEL_FREE
    rule = THRESHOLD_RULES[method]
    if rule.needs_ground_truth and not has_calibration_list:
        raise InputError(
            "config key calibration.method", f"{method} needs images with ground truth: set dataset.calibration_list"
        )
    return rule


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


def configured_value(config: Mapping, key_path: Sequence[str]):
    """The value at ``key_path`` (e.g. ("relations", "conf_fg")) of a validated config: a number or auto."""
    node = config
    for key in key_path:
        node = node[key]
    return node


def is_auto(config: Mapping, key_path: Sequence[str]) -> bool:
    return configured_value(config, key_path) == AUTO


def label_free_sample(train_ids: Sequence[str], infer_ids: Sequence[str], limit: int) -> list[str]:
    """Up to ``limit`` training images for the label-free rules: those of the infer list first (they get IRNet
    maps anyway), then other training images (they have CAMs; they get IRNet maps for this). Chosen by a hash of the id:
    stable when the lists grow, and spread over a list rather than its first entries."""
    import hashlib

    def order(ids):
        return sorted(ids, key=lambda i: hashlib.blake2b(f"thresholds:{i}".encode(), digest_size=8).digest())

    infer = set(infer_ids)
    train = list(dict.fromkeys(train_ids))
    return (order(i for i in train if i in infer) + order(i for i in train if i not in infer))[:limit]
