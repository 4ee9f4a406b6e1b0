"""Small file helpers shared by the stage entry points."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

from ..data.dataset import Dataset
from ..errors import InputError


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return _json_safe(value.item())
    return value


def write_json(path: str | Path, data) -> None:
    """Write JSON atomically, with NaN/inf turned into null (strict JSON) and numpy scalars into Python ones."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(_json_safe(data), handle, indent=2, allow_nan=False)
        handle.write("\n")
    os.replace(tmp, path)


def read_labels_file(path: str | Path) -> dict:
    with open(path) as handle:
        return json.load(handle)


def prepare_labels(
    *,
    dataset: Dataset,
    image_ids: Sequence[str],
    out_path: str,
    also_check: Sequence[str] = (),
    ground_truth_ids: Sequence[str] = (),
    cache_dir: str | None = None,
) -> dict:
    """Write the training images' image-level labels, sizes and content digests, after the input check.

    The check (:mod:`.verify`) covers the training images and ``also_check`` (the workflow passes every other
    list: no training starts before every input was decoded), and the ground truth of ``ground_truth_ids``;
    with ``cache_dir`` it takes the verdicts the shard jobs (rule ``verify_inputs``) already reached by content
    and decodes only what they have not. A training image without any label is an error (it would teach the
    classifier "no class present"). The SHA-256 of each image file lets the trainings tell a checkpoint of these
    exact images from one of others, and holds out images by content whatever their ids (the same images in
    another dataset format train the same networks).
    """
    from .verify import run_check

    labels = {}
    for image_id in image_ids:
        labels[image_id] = dataset.image_labels(image_id)
        if not labels[image_id]:
            where = dataset.annotation_files([image_id], "labels")[0]
            raise InputError(where, f"training image {image_id!r} has no image-level label")
    checked = run_check(
        dataset, list(dict.fromkeys([*image_ids, *also_check])), ground_truth_ids, cache_dir, "prepare_dataset"
    )
    data = {
        "classes": list(dataset.classes),
        "image_ids": list(image_ids),
        "labels": labels,
        "sizes": {i: list(checked.sizes[i]) for i in image_ids},
        "image_digests": {i: checked.digests[i] for i in image_ids},
        "paths": {i: str(dataset.image_path(i)) for i in image_ids},
    }
    write_json(out_path, data)
    return data


def progress(items, total: int, what: str, logger, every_seconds: float = 30.0):
    """Yield ``items`` and log how far a shard job is: images done, images/s and the time left, about ten times
    over the job and at least every ``every_seconds`` (a long shard shows it is alive)."""
    step = max(1, total // 10)
    start = last = time.perf_counter()
    for done, item in enumerate(items, start=1):
        yield item
        now = time.perf_counter()
        if done % step == 0 or done == total or now - last >= every_seconds:
            last = now
            rate = done / max(now - start, 1e-9)
            left = (total - done) / rate
            logger.info("%s: %d/%d images, %.2f images/s, ETA %dm%02ds", what, done, total, rate, left // 60, left % 60)
