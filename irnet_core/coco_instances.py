"""Reading back the COCO instances files this project writes (:class:`irnet_core.export.CocoWriter`): the
instance pseudo-labels and the final model's predictions, by ``image_key``, decoded into :class:`Instances`.

The dataset format that reads MS-COCO ground truth is :mod:`irnet_core.data.coco`; this module reads only the
workflow's own files, which carry an ``image_key`` per image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import InputError
from .export import annotation_image_key, image_keys_by_id
from .instances import Instances


def read_coco_instances(coco_path: str | Path, class_names: Sequence[str]) -> dict[str, dict]:
    """``{image_key: {"size", "classes", "scores", "rles"}}`` of a COCO instances file this project wrote
    (pseudo-labels or predictions); categories are matched to ``class_names`` by name."""
    path = Path(coco_path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(str(path), f"cannot read the COCO instances file ({type(exc).__name__})") from exc
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [c["name"] for c in data.get("categories", []) if c["name"] not in index]
    if unknown:
        raise InputError(str(path), f"category {unknown[0]!r} is not one of dataset.classes")
    category = {c["id"]: index[c["name"]] for c in data["categories"]}
    images = {}
    for entry in data["images"]:
        key = entry.get("image_key")
        if key is None:
            raise InputError(str(path), f"image {entry.get('id')} has no image_key (not a file of this workflow)")
        images[key] = {"size": (int(entry["height"]), int(entry["width"])), "classes": [], "scores": [], "rles": []}
    keys_by_id = image_keys_by_id(data["images"])
    for annotation in data["annotations"]:
        image = images[annotation_image_key(annotation, keys_by_id, str(path))]
        image["classes"].append(category[annotation["category_id"]])
        image["scores"].append(float(annotation.get("score", 1.0)))
        image["rles"].append(annotation["segmentation"])
    return images


def decode_instances(record: Mapping) -> Instances:
    """The :class:`Instances` of one image of :func:`read_coco_instances`."""
    from pycocotools import mask as mask_utils  # lazy: a compiled extension, needed only to decode

    size = record["size"]
    if not record["rles"]:
        return Instances.empty(size)
    rles = [{"size": list(r["size"]), "counts": r["counts"].encode("ascii")} for r in record["rles"]]
    masks = np.moveaxis(mask_utils.decode(rles), -1, 0).astype(bool)
    return Instances(masks, np.asarray(record["classes"]), np.asarray(record["scores"]))
