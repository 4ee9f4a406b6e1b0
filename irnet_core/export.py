"""Exports: label PNGs and COCO-style instance annotations (method doc §2.15, with its defects fixed).

The COCO file differs from the official ``make_cocoann`` on purpose: annotation ids are unique across the
whole file, category ids are 1-based (``class + 1``) with an explicit category list, masks are stored as
RLE (lossless, no polygon approximation), and every number is a plain Python int/float so ``json`` works.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .instances import Instances
from .palette import write_palette_png


def write_label_png(path: str | Path, label: np.ndarray) -> None:
    """Write a uint8 (H, W) label map as a VOC-palette PNG (creates parent folders)."""
    write_palette_png(path, label)


def coco_instances(
    images: Sequence[tuple[str, str, int, int, Instances]],
    class_names: Sequence[str],
) -> dict:
    """Build a COCO instances dict from ``(image_id, file_name, H, W, Instances)`` entries.

    * ``images``: ``id`` = 1-based position in ``images``, ``file_name``, ``height``, ``width`` and ``voc_id``
      (the original string id).
    * ``categories``: ``id`` = 1-based index into ``class_names``, ``name``, ``supercategory`` "object".
    * ``annotations``: ids 1..N unique over the file, ``category_id = class + 1``, ``segmentation`` =
      uncompressed-size RLE from pycocotools with ``counts`` as str, ``area`` and ``bbox`` from pycocotools,
      ``iscrowd`` 0 and the detection ``score``. Empty masks are skipped (COCO cannot represent them usefully).

    Raises InputError if a mask does not match its image size or a class is outside ``class_names``.
    """
    from pycocotools import mask as mask_utils  # lazy: compiled extension, only needed for exports

    categories = [
        {"id": index + 1, "name": str(name), "supercategory": "object"} for index, name in enumerate(class_names)
    ]
    image_entries: list[dict] = []
    annotations: list[dict] = []
    for position, (image_id, file_name, height, width, inst) in enumerate(images, start=1):
        height, width = int(height), int(width)
        if inst.masks.shape[1:] != (height, width):
            raise ValueError(
                f"{image_id}: instance masks {inst.masks.shape[1:]} do not match image size {(height, width)}"
            )
        if len(inst) and (inst.classes.min() < 0 or inst.classes.max() >= len(categories)):
            raise ValueError(f"{image_id}: instance classes must lie in 0..{len(categories) - 1}")
        image_entries.append(
            {"id": position, "file_name": str(file_name), "height": height, "width": width, "voc_id": str(image_id)}
        )
        for mask, label, score in zip(inst.masks, inst.classes, inst.scores):
            if not mask.any():
                continue
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": position,
                    "category_id": int(label) + 1,
                    "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")},
                    "area": float(mask_utils.area(rle)),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "iscrowd": 0,
                    "score": float(score),
                }
            )
    return {"images": image_entries, "annotations": annotations, "categories": categories}


def write_coco(path: str | Path, coco_dict: dict) -> None:
    """Write ``coco_dict`` as JSON atomically (temporary file + rename), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(coco_dict, stream)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
