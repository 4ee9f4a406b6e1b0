"""Exports: label PNGs and COCO-style instance annotations (method doc §2.15, with its defects fixed).

The COCO file differs from the official ``make_cocoann`` on purpose: annotation ids are unique across the
whole file, masks are stored as RLE (lossless, no polygon approximation), every number is a plain Python
int/float so ``json`` works, and it carries ``info`` and ``licenses`` (pycocotools 2.0.9+ needs ``info`` in
``loadRes``). Image and category ids are the dataset's own where it has them (COCO), so the file can be scored
with ``COCOeval`` against the official annotation file without any remapping; otherwise images are numbered
1..N in export order and categories 1..C. Each image entry also keeps the workflow's string id
(``image_key``), and so does each annotation: two splits of a user-made COCO dataset may reuse an integer
image id, and the string id is what tells their predictions apart (:func:`annotation_image_key`).

:class:`CocoWriter` streams: image entries and annotations go to temporary files as they come, so the memory of
an export does not grow with the number of images.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__
from .atomic import atomic_path
from .errors import InputError
from .instances import Instances
from .palette import write_palette_png

INFO = {"description": "IRNet pseudo-labels (irnet_core)", "version": __version__}


def write_label_png(path: str | Path, label: np.ndarray) -> None:
    """Write a uint8 (H, W) label map as a VOC-palette PNG (creates parent folders)."""
    write_palette_png(path, label)


def coco_categories(class_names: Sequence[str], category_ids: Sequence[int] | None = None) -> list[dict]:
    ids = list(category_ids) if category_ids is not None else list(range(1, len(class_names) + 1))
    if len(ids) != len(class_names):
        raise ValueError(f"{len(ids)} category ids for {len(class_names)} classes")
    return [{"id": int(i), "name": str(name), "supercategory": "object"} for i, name in zip(ids, class_names)]


def _annotations(inst: Instances, image_id: int, size: tuple[int, int], category_ids: Sequence[int], where: str):
    """COCO annotation dicts (without ``id``) of one image's instances; empty masks are skipped."""
    from pycocotools import mask as mask_utils  # lazy: compiled extension, only needed for exports

    if inst.masks.shape[1:] != size:
        raise ValueError(f"{where}: instance masks {inst.masks.shape[1:]} do not match image size {size}")
    if len(inst) and (inst.classes.min() < 0 or inst.classes.max() >= len(category_ids)):
        raise ValueError(f"{where}: instance classes must lie in 0..{len(category_ids) - 1}")
    for mask, label, score in zip(inst.masks, inst.classes, inst.scores, strict=True):
        if not mask.any():
            continue
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        yield {
            "image_id": image_id,
            "category_id": int(category_ids[int(label)]),
            "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")},
            "area": float(mask_utils.area(rle)),
            "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            "iscrowd": 0,
            "score": float(score),
            # The workflow's id beside the integer one: splits of a user's dataset may reuse integer ids.
            "image_key": where,
        }


class CocoWriter:
    """Write a COCO instances file one image at a time; the file appears (atomically) on :meth:`close`."""

    def __init__(self, path: str | Path, class_names: Sequence[str], category_ids: Sequence[int] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.categories = coco_categories(class_names, category_ids)
        self.category_ids = [c["id"] for c in self.categories]
        # Closed in close() or __exit__: the writer is their context.
        self._images = tempfile.TemporaryFile("w+", encoding="utf-8", dir=self.path.parent)  # noqa: SIM115
        self._annotations = tempfile.TemporaryFile("w+", encoding="utf-8", dir=self.path.parent)  # noqa: SIM115
        self.n_images = self.n_annotations = 0

    def add(
        self, image_key: str, file_name: str, size: tuple[int, int], inst: Instances, source_id: int | None = None
    ) -> None:
        """One image and its instances; ``source_id`` is the dataset's own image id (else 1..N in order)."""
        image_id = int(source_id) if source_id is not None else self.n_images + 1
        height, width = int(size[0]), int(size[1])
        entry = {"id": image_id, "file_name": str(file_name), "height": height, "width": width, "image_key": image_key}
        self._images.write(("," if self.n_images else "") + json.dumps(entry))
        self.n_images += 1
        for annotation in _annotations(inst, image_id, (height, width), self.category_ids, image_key):
            self.n_annotations += 1
            record = {"id": self.n_annotations, **annotation}
            self._annotations.write(("," if self.n_annotations > 1 else "") + json.dumps(record))

    def close(self) -> None:
        try:
            with atomic_path(self.path) as temporary, open(temporary, "w", encoding="utf-8") as out:
                out.write(f'{{"info": {json.dumps(INFO)}, "licenses": [], "images": [')
                for part in (self._images, self._annotations):
                    part.seek(0)
                    shutil.copyfileobj(part, out)
                    out.write('], "annotations": [' if part is self._images else "], ")
                out.write(f'"categories": {json.dumps(self.categories)}}}')
        finally:
            self._images.close()
            self._annotations.close()

    def __enter__(self) -> CocoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._images.close()
            self._annotations.close()


def annotation_image_key(annotation: dict, keys_by_id: dict[int, list[str]], where: object) -> str:
    """The workflow's id of the image an exported annotation belongs to: its own ``image_key``, else (files
    without it) the one image entry with its integer id; an id that two image entries share is an error."""
    key = annotation.get("image_key")
    if key is not None:
        return key
    keys = keys_by_id.get(annotation.get("image_id"), [])
    if len(keys) != 1:
        problem = "is not an image of the file" if not keys else f"is shared by images {', '.join(map(str, keys))}"
        raise InputError(where, f"annotation {annotation.get('id')}: image id {annotation.get('image_id')} {problem}")
    return keys[0]


def image_keys_by_id(images: Sequence[dict]) -> dict[int, list[str]]:
    keys: dict[int, list[str]] = {}
    for entry in images:
        keys.setdefault(entry["id"], []).append(entry.get("image_key"))
    return keys
