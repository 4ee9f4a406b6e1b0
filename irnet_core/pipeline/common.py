"""Small file helpers shared by the stage entry points."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..data.voc import image_size, load_image, load_image_labels
from ..errors import InputError
from ..provenance import file_digest


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
    image_ids: Sequence[str],
    image_paths: Sequence[str],
    label_paths: Sequence[str],
    classes: Sequence[str],
    out_path: str,
    threads: int = 1,
) -> dict:
    """Validate the training images and write their image-level labels, sizes and content digests.

    Every image is fully decoded once here, so a corrupt file stops the workflow before training starts; a
    training image without any label is an error (it would teach the classifier "no class present"). The
    SHA-256 of each image file lets the trainings tell a checkpoint of these exact images from one of others.
    """

    def check(args):
        image_id, image_path, label_path = args
        keys = load_image_labels(Path(label_path).parent.parent, image_id, classes)
        if not keys:
            raise InputError(label_path, f"training image {image_id!r} has no image-level label")
        height, width = image_size(image_path)
        load_image(image_path)  # full decode: truncated or corrupt files fail here
        return image_id, keys, [height, width], file_digest(image_path)

    jobs = list(zip(image_ids, image_paths, label_paths, strict=True))
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(pool.map(check, jobs))
    data = {
        "classes": list(classes),
        "image_ids": [r[0] for r in results],
        "labels": {r[0]: r[1] for r in results},
        "sizes": {r[0]: r[2] for r in results},
        "image_digests": {r[0]: r[3] for r in results},
        # Training rules read the image paths from here instead of listing every image as an input.
        "paths": {image_id: str(path) for image_id, path, _ in jobs},
    }
    write_json(out_path, data)
    return data


def progress(items, total: int, what: str, logger):
    """Yield ``items`` and log progress about ten times (every item when there are fewer than ten)."""
    step = max(1, total // 10)
    for done, item in enumerate(items, start=1):
        yield item
        if done % step == 0 or done == total:
            logger.info("%s: %d/%d", what, done, total)
