"""One self-training round's rule (beyond the paper; docs/method-notes.md, "Self-training rounds").

Round j (j >= 1) takes the Mask R-CNN trained on round j-1's instance targets, lets it predict the training images,
and combines its predictions with round j-1's targets into round j's targets (round 0's are IRNet's instance
pseudo-labels). The model is used for what it does better than IRNet, telling objects apart and finding missed
ones, and not for outlines: its masks (28 x 28 per box) are coarser than the targets' (measured in
docs/method-notes.md: replacing targets by predictions cut mAP75 by three quarters). The rule, per image:

1. A prediction is **confident** when its score is at least ``score_threshold``, its class is one of the image's
   labels (the only supervision there is: a class the image does not hold is certainly wrong) and its mask is not
   empty; of confident predictions of one class that overlap at mask IoU >= ``DUPLICATE_IOU``, the lower-scored
   are duplicates and dropped.
2. A confident prediction lies **in** a target of its class when at least ``cover`` of its area is inside it. A
   target that holds two or more confident predictions is **split** among them: each of its pixels goes to the
   nearest of them (distance 0 inside a prediction's mask, ties to the higher score). The parts keep the target's
   outline and score.
3. A confident prediction with less than ``cover`` of its area inside the targets of its class is a **new
   object** the pseudo-labels missed: it is added with its own mask and score.
4. Every other target stays as it is. No target is dropped, so a round never loses an object that only the
   pseudo-labels knew.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .instances import Instances
from .metrics import mask_iou

# Two confident predictions of one class that overlap this much are one object predicted twice.
DUPLICATE_IOU = 0.5


@dataclass(frozen=True)
class RoundChanges:
    """What a round did to one image's targets: targets split (and the parts they gave), objects added."""

    split: int = 0
    parts: int = 0
    added: int = 0

    def __add__(self, other: RoundChanges) -> RoundChanges:
        return RoundChanges(self.split + other.split, self.parts + other.parts, self.added + other.added)


def confident_predictions(predicted: Instances, image_classes: Iterable[int], score_threshold: float) -> Instances:
    """The predictions that rule 1 keeps, highest score first."""
    allowed = np.isin(predicted.classes, np.asarray(sorted(set(image_classes)), dtype=np.int64))
    candidates = (predicted.scores >= score_threshold) & allowed & predicted.masks.any(axis=(1, 2))
    kept: list[int] = []
    for index in np.flatnonzero(candidates)[np.argsort(-predicted.scores[candidates], kind="stable")]:
        same = [k for k in kept if predicted.classes[k] == predicted.classes[index]]
        if not same or mask_iou(predicted.masks[index : index + 1], predicted.masks[same]).max() < DUPLICATE_IOU:
            kept.append(int(index))
    return Instances(predicted.masks[kept], predicted.classes[kept], predicted.scores[kept])


def _split(target: np.ndarray, owners: np.ndarray) -> list[np.ndarray]:
    """The target's pixels divided among the masks ``owners`` (highest score first): each pixel to the nearest."""
    distances = np.stack([ndimage.distance_transform_edt(~owner) for owner in owners])
    nearest = np.argmin(distances, axis=0)  # ties: the first, i.e. the higher score
    return [target & (nearest == n) for n in range(len(owners))]


def combine_round(
    previous: Instances,
    predicted: Instances,
    image_classes: Iterable[int],
    *,
    score_threshold: float,
    cover: float,
) -> tuple[Instances, RoundChanges]:
    """Round j's targets of one image from round j-1's targets ``previous`` and the predictions of the model
    trained on them (the module's rule), and what changed."""
    if previous.masks.shape[1:] != predicted.masks.shape[1:]:
        raise ValueError(f"targets are {previous.masks.shape[1:]} but the predictions {predicted.masks.shape[1:]}")
    confident = confident_predictions(predicted, image_classes, score_threshold)
    areas = confident.masks.sum(axis=(1, 2))
    masks, classes, scores = [], [], []
    in_a_target = np.zeros(len(confident), dtype=bool)
    n_split = n_parts = 0
    for target, label, score in zip(previous.masks, previous.classes, previous.scores):
        same_class = confident.classes == label
        inside = np.flatnonzero(same_class & ((confident.masks & target).sum(axis=(1, 2)) >= cover * areas))
        in_a_target[inside] = True
        parts = [part for part in _split(target, confident.masks[inside]) if part.any()] if len(inside) >= 2 else []
        if len(parts) >= 2:
            n_split, n_parts = n_split + 1, n_parts + len(parts)
        else:
            parts = [target]
        masks += parts
        classes += [label] * len(parts)
        scores += [score] * len(parts)
    added = 0
    for index in np.flatnonzero(~in_a_target):
        label = confident.classes[index]
        targets_of_class = previous.masks[previous.classes == label].any(axis=0)
        if (confident.masks[index] & targets_of_class).sum() < cover * areas[index]:
            masks.append(confident.masks[index])
            classes.append(label)
            scores.append(confident.scores[index])
            added += 1
    if not masks:
        return Instances.empty(previous.masks.shape[1:]), RoundChanges()
    targets = Instances(np.stack(masks), np.asarray(classes), np.asarray(scores))
    return targets, RoundChanges(split=n_split, parts=n_parts, added=added)
