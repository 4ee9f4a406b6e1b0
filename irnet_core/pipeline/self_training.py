"""Self-training entry points (docs/method-notes.md, "Self-training rounds"): a round's targets from the previous
round's and the predictions of the model trained on them, and each round's scores."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict

from ..coco_instances import decode_instances, read_coco_instances
from ..data.base import Dataset
from ..errors import InputError
from ..export import CocoWriter
from ..self_training import RoundChanges, combine_round
from ..settings import SelfTrainingSettings, as_plain
from .common import progress, read_labels_file, write_json
from .pseudo_labels import score_instance_file

log = logging.getLogger(__name__)


def combine_round_set(
    *,
    previous_coco: str,
    predictions_coco: str,
    dataset: Dataset,
    image_ids: Sequence[str],
    labels_path: str,
    settings: SelfTrainingSettings,
    out_coco: str,
) -> dict:
    """Round j's targets (a COCO instances file like the pseudo-labels') of ``image_ids`` from round j-1's
    targets and the predictions of the model trained on them; the image-level labels come from
    prepare_dataset's labels file."""
    previous = read_coco_instances(previous_coco, dataset.classes)
    predicted = read_coco_instances(predictions_coco, dataset.classes)
    image_labels = read_labels_file(labels_path)["labels"]
    changes, n_previous, n_targets = RoundChanges(), 0, 0
    with CocoWriter(out_coco, dataset.classes, dataset.category_ids) as coco:
        for image_id in progress(image_ids, len(image_ids), "self-training round", log):
            for path, records in ((previous_coco, previous), (predictions_coco, predicted)):
                if image_id not in records:
                    raise InputError(path, f"image {image_id!r} of the infer list has no entry")
            if image_id not in image_labels:
                raise InputError(labels_path, f"image {image_id!r} has no image-level labels")
            before = decode_instances(previous[image_id])
            targets, changed = combine_round(
                before, decode_instances(predicted[image_id]), image_labels[image_id],
                score_threshold=settings.score_threshold, cover=settings.cover,
            )  # fmt: skip
            changes, n_previous, n_targets = changes + changed, n_previous + len(before), n_targets + len(targets)
            coco.add(image_id, dataset.file_name(image_id), before.masks.shape[1:], targets,
                     dataset.source_image_id(image_id))  # fmt: skip
    counts = {"images": len(image_ids), "previous": n_previous, "targets": n_targets, **asdict(changes)}
    log.info("round targets: %s (settings %s)", counts, as_plain(settings))
    return counts


def evaluate_round(
    *,
    targets_coco: str,
    dataset: Dataset,
    eval_ids: Sequence[str],
    round_index: int,
    out_path: str,
    val_predictions_coco: str | None = None,
    val_ids: Sequence[str] = (),
) -> dict:
    """``results/eval/self_training/round-J.json``: round J's targets on the evaluated training images
    (``targets``: AP, recall50, merged, per class) and, with a val list, the predictions on it of the Mask R-CNN
    trained on them (``val_model``)."""
    result = {"round": round_index, "targets": score_instance_file(dataset, eval_ids, targets_coco)}
    if val_predictions_coco is not None:
        result["val_model"] = score_instance_file(dataset, val_ids, val_predictions_coco, "val image")
    write_json(out_path, result)
    return result
