"""One self-training round's rule (beyond the paper; docs/method-notes.md, "Self-training rounds").

Round j (j >= 1) takes the Mask R-CNN trained on round j-1's instance targets, lets it predict the training images,
and combines its predictions with round j-1's targets into round j's targets (round 0's are IRNet's instance
pseudo-labels). The rule, per image:

1. A prediction is **confident** when its score is at least ``score_threshold``, its class is one of the image's
   labels (the only supervision there is: a class the image does not hold is certainly wrong) and its mask is not
   empty.
2. A target of round j-1 is **replaced** when at least ``cover`` of its area lies inside the union of the
   confident predictions of its class: the model has an opinion there, usually a cleaner outline, and where
   IRNet merged touching objects of one class into one mask the model may see two.
3. Round j's targets are the confident predictions, with their scores, and the targets of round j-1 that were
   not replaced, with theirs. A target the model does not find is kept: a real object the model missed is not
   lost, so the round never removes an object that only the pseudo-labels knew.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .instances import Instances


def confident_predictions(predicted: Instances, image_classes: Iterable[int], score_threshold: float) -> Instances:
    """The predictions that rule 1 keeps."""
    allowed = np.isin(predicted.classes, np.asarray(sorted(set(image_classes)), dtype=np.int64))
    keep = (predicted.scores >= score_threshold) & allowed & predicted.masks.any(axis=(1, 2))
    return Instances(predicted.masks[keep], predicted.classes[keep], predicted.scores[keep])


def combine_round(
    previous: Instances,
    predicted: Instances,
    image_classes: Iterable[int],
    *,
    score_threshold: float,
    cover: float,
) -> tuple[Instances, int]:
    """Round j's targets of one image from round j-1's targets ``previous`` and the predictions of the model
    trained on them (the module's rule), and how many of them are predictions (they come first)."""
    if previous.masks.shape[1:] != predicted.masks.shape[1:]:
        raise ValueError(f"targets are {previous.masks.shape[1:]} but the predictions {predicted.masks.shape[1:]}")
    confident = confident_predictions(predicted, image_classes, score_threshold)
    kept = np.ones(len(previous.classes), dtype=bool)
    for label in np.unique(confident.classes):
        claimed = confident.masks[confident.classes == label].any(axis=0)
        for index in np.flatnonzero(previous.classes == label):
            area = previous.masks[index].sum()
            kept[index] = area == 0 or (previous.masks[index] & claimed).sum() < cover * area
    targets = Instances(
        np.concatenate([confident.masks, previous.masks[kept]]),
        np.concatenate([confident.classes, previous.classes[kept]]),
        np.concatenate([confident.scores, previous.scores[kept]]),
    )
    return targets, len(confident)
