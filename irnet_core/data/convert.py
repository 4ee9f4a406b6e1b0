"""Write a VOC-layout dataset (e.g. the generated demo) in the other layouts the readers accept.

The conversions are lossless, so the same images read through all three readers give the same labels and
ground truth (tested). Each returns the id mapping ``{voc id: new id}``.

:func:`voc_to_coco` writes the MS-COCO 2014 layout:

* images copied byte for byte to ``{split}/COCO_{split}_{coco id:012d}{suffix}`` (2014 naming), so the ids
  become ``COCO_{split}_{coco id:012d}``; COCO image ids are ``42, 45, 48, ...`` (not positions);
* categories with gaps like COCO's (:func:`coco_like_category_ids`: 1, 2, 3, 5, 6, 7, 9, ...), listed in
  descending id order, and annotations listed in descending id order, so that a reader must sort both;
* one annotation per ``SegmentationObject`` instance, as compressed RLE or as polygons. COCO polygons cannot
  hold holes (several polygons are united), so a mask is written as pixel-aligned rectangles (merged runs of
  rows), which pycocotools rasterises back exactly; the conversion checks that it does;
* VOC's void (255) as crowd annotations (COCO's ignore regions) in uncompressed RLE, as COCO stores crowds.
  COCO has no class-less ignore region, so each void pixel goes to the class of the nearest instance pixel
  (one crowd annotation per class); those classes are already in the image, so labels do not change;
* ``info`` and ``licenses`` sections, as in the real files.

Painting the instances back (void as 255) must give ``SegmentationClass`` exactly, else the image cannot be
converted without loss and :class:`~irnet_core.errors.InputError` names it.

:func:`voc_to_folder` writes the folder + CSV layout: images copied to ``<sub>/<voc id><suffix>`` where
``<sub>`` cycles through the top level, ``group a`` and ``group a/nested-b`` (nested folders and a space,
so ids ``2026_000001``, ``group_a__2026_000002``, ``group_a__nested-b__2026_000003``), ``labels.csv``, the
ground truth copied to ``ground_truth/{class,instance}/<sub>/<voc id>.png`` where VOC has it, and each list
as ``lists/<name>.txt`` of the new ids.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import InputError
from .coco import write_json_atomically
from .folder import folder_image_id
from .images import load_label_png
from .voc import image_path, instances_from_label_maps, load_image_labels

FIRST_COCO_IMAGE_ID = 42
COCO_IMAGE_ID_STEP = 3
FOLDER_SUBFOLDERS = ("", "group a", "group a/nested-b")
FOLDER_CLASS_GT = "ground_truth/class"
FOLDER_INSTANCE_GT = "ground_truth/instance"


def coco_like_category_ids(n_classes: int) -> list[int]:
    """Category ids with a gap after every third, like COCO's 1..90 for 80 classes: 1, 2, 3, 5, 6, 7, 9, ..."""
    return [k + 1 + k // 3 for k in range(n_classes)]


# ------------------------------------------------------------------------------------------ mask encodings


def _compressed_rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths over the column-major pixels, starting with a run of zeros."""
    flat = mask.reshape(-1, order="F").astype(bool)
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]]))
    counts = ([0] if flat.size and flat[0] else []) + [int(r) for r in runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def rectangle_polygons(mask: np.ndarray) -> list[list[float]]:
    """The mask as pixel-aligned rectangles ``[x0, y0, x1, y0, x1, y1, x0, y1]`` (runs of equal row spans merged).

    Corners lie on pixel borders, where pycocotools' polygon rasterisation is exact.
    """
    rectangles: list[list[float]] = []
    open_spans: dict[tuple[int, int], int] = {}  # (x0, x1) -> first row
    padded = np.zeros((mask.shape[0] + 1, mask.shape[1] + 2), dtype=np.int8)
    padded[:-1, 1:-1] = mask  # an empty last row closes every span
    for y, row in enumerate(padded):
        edges = np.flatnonzero(np.diff(row))
        spans = {(int(x0), int(x1)) for x0, x1 in zip(edges[::2], edges[1::2])}
        for span in [s for s in open_spans if s not in spans]:
            y0, (x0, x1) = open_spans.pop(span), span
            rectangles.append([float(v) for v in (x0, y0, x1, y0, x1, y, x0, y)])
        for span in spans:
            open_spans.setdefault(span, y)
    return rectangles


def _segmentation(mask: np.ndarray, kind: str) -> dict | list:
    if kind == "rle":
        return _compressed_rle(mask)
    from pycocotools import mask as mask_utils

    polygons = rectangle_polygons(mask)
    decoded = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, *mask.shape)))
    if not np.array_equal(decoded.astype(bool), mask):  # guards the exactness the docstring promises
        raise RuntimeError("rectangle polygons do not rasterise back to their mask")
    return polygons


def _bbox(mask: np.ndarray) -> list[float]:
    rows, cols = np.nonzero(mask)
    x0, y0 = cols.min(), rows.min()
    return [float(x0), float(y0), float(cols.max() - x0 + 1), float(rows.max() - y0 + 1)]


# ------------------------------------------------------------------------------------------------ COCO


def _crowd_masks(class_map: np.ndarray, masks: np.ndarray, labels: np.ndarray, where: Path) -> dict[int, np.ndarray]:
    """Void pixels split by the class of their nearest instance pixel: ``{class index: mask}``."""
    void = class_map == 255
    if not void.any():
        return {}
    if not len(masks):
        raise InputError(
            where, "has void pixels but no instance to give them a class (COCO has no class-less ignore region)"
        )
    painted = np.zeros(class_map.shape, dtype=np.int64)
    for mask, label in zip(masks, labels):
        painted[mask] = label + 1
    _, (rows, cols) = ndimage.distance_transform_edt(painted == 0, return_indices=True)
    nearest = painted[rows, cols] - 1
    return {int(c): void & (nearest == c) for c in np.unique(nearest[void])}


def _check_lossless(class_map: np.ndarray, masks: np.ndarray, labels: np.ndarray, where: Path) -> None:
    painted = np.zeros(class_map.shape, dtype=np.uint8)
    for mask, label in zip(masks, labels):
        painted[mask] = label + 1
    painted[class_map == 255] = 255
    if not np.array_equal(painted, class_map):
        y, x = np.argwhere(painted != class_map)[0]
        raise InputError(
            where,
            f"pixel (row {y}, column {x}) has class value {class_map[y, x]} but the instances "
            f"give {painted[y, x]}; the image cannot be written as COCO without loss",
        )


def voc_to_coco(
    voc_root: str | Path,
    out_root: str | Path,
    splits: Mapping[str, Sequence[str]],
    *,
    classes: Sequence[str],
    category_ids: Sequence[int] | None = None,
    segmentation: str = "rle",
) -> dict[str, str]:
    """Write the VOC images of each split (``{split name: voc ids}``) in the COCO 2014 layout under ``out_root``.

    ``segmentation`` is ``"rle"`` or ``"polygon"``; ``category_ids`` default to :func:`coco_like_category_ids`.
    Every image needs ``SegmentationClass`` and ``SegmentationObject`` PNGs. Returns ``{voc id: coco id}``.
    """
    if segmentation not in ("rle", "polygon"):
        raise ValueError(f"segmentation must be 'rle' or 'polygon', got {segmentation!r}")
    voc_root, out_root = Path(voc_root), Path(out_root)
    category_ids = list(category_ids) if category_ids is not None else coco_like_category_ids(len(classes))
    if len(category_ids) != len(classes) or len(set(category_ids)) != len(category_ids):
        raise ValueError("category_ids must hold one distinct id per class")
    categories = sorted(
        ({"id": cat_id, "name": name, "supercategory": "shape"} for cat_id, name in zip(category_ids, classes)),
        key=lambda c: -c["id"],
    )
    mapping: dict[str, str] = {}
    next_image_id, next_annotation_id = FIRST_COCO_IMAGE_ID, 1
    for split, voc_ids in splits.items():
        images, annotations = [], []
        for voc_id in voc_ids:
            if voc_id in mapping:
                raise ValueError(f"image {voc_id!r} is in two splits")
            source = image_path(voc_root, voc_id)
            file_name = f"COCO_{split}_{next_image_id:012d}{source.suffix}"
            class_path = voc_root / "SegmentationClass" / f"{voc_id}.png"
            object_path = voc_root / "SegmentationObject" / f"{voc_id}.png"
            class_map = load_label_png(class_path)
            masks, labels = instances_from_label_maps(class_map, load_label_png(object_path), class_path, object_path)
            _check_lossless(class_map, masks, labels, class_path)
            height, width = class_map.shape
            images.append(
                {
                    "id": next_image_id,
                    "file_name": file_name,
                    "height": height,
                    "width": width,
                    "license": 1,
                    "voc_id": voc_id,
                }
            )
            regions = [(mask, int(label), 0, _segmentation(mask, segmentation)) for mask, label in zip(masks, labels)]
            regions += [
                (mask, label, 1, uncompressed_rle(mask))
                for label, mask in _crowd_masks(class_map, masks, labels, class_path).items()
            ]
            for mask, label, iscrowd, encoded in regions:
                annotations.append({
                    "id": next_annotation_id, "image_id": next_image_id, "category_id": category_ids[label],
                    "segmentation": encoded, "area": float(mask.sum()), "bbox": _bbox(mask), "iscrowd": iscrowd,
                })  # fmt: skip
                next_annotation_id += 1
            (out_root / split).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out_root / split / file_name)
            mapping[voc_id] = Path(file_name).stem
            next_image_id += COCO_IMAGE_ID_STEP
        write_json_atomically(out_root / "annotations" / f"instances_{split}.json", {
            "info": {"description": f"{voc_root} converted by irnet_core.data.convert", "version": "1.0"},
            "licenses": [{"id": 1, "name": "as the source dataset", "url": ""}],
            "images": images,
            "annotations": annotations[::-1],
            "categories": categories,
        })  # fmt: skip
    return mapping


# ---------------------------------------------------------------------------------------------- folder


def voc_to_folder(
    voc_root: str | Path,
    out_root: str | Path,
    lists: Mapping[str, Sequence[str]],
    *,
    classes: Sequence[str],
) -> dict[str, str]:
    """Write the images of ``lists`` (``{list name: voc ids}``) as a folder + CSV dataset under ``out_root``.

    Returns ``{voc id: folder id}``; see the module docstring for the layout.
    """
    voc_root, out_root = Path(voc_root), Path(out_root)
    all_ids = list(dict.fromkeys(voc_id for ids in lists.values() for voc_id in ids))
    mapping: dict[str, str] = {}
    rows = []
    for position, voc_id in enumerate(all_ids):
        source = image_path(voc_root, voc_id)
        folder = FOLDER_SUBFOLDERS[position % len(FOLDER_SUBFOLDERS)]
        relative = f"{folder}/{voc_id}{source.suffix}" if folder else f"{voc_id}{source.suffix}"
        (out_root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out_root / relative)
        for gt_dir, voc_dir in ((FOLDER_CLASS_GT, "SegmentationClass"), (FOLDER_INSTANCE_GT, "SegmentationObject")):
            gt_source = voc_root / voc_dir / f"{voc_id}.png"
            if gt_source.is_file():
                target = out_root / gt_dir / Path(relative).with_suffix(".png")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(gt_source, target)
        names = [classes[c] for c in load_image_labels(voc_root, voc_id, classes)]
        rows.append((relative, ";".join(names)))
        mapping[voc_id] = folder_image_id(relative)
    with open(out_root / "labels.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image", "labels"])
        writer.writerows(rows)
    (out_root / "lists").mkdir(parents=True, exist_ok=True)
    for name, ids in lists.items():
        (out_root / "lists" / f"{name}.txt").write_text("".join(f"{mapping[voc_id]}\n" for voc_id in ids))
    return mapping


def convert_dataset(
    voc_root: str | Path, out_root: str | Path, fmt: str, lists: Mapping[str, Sequence[str]], *, classes: Sequence[str]
) -> dict[str, str]:
    """The VOC dataset at ``voc_root`` in format ``fmt`` (``coco`` or ``folder``) under ``out_root``, with each of
    ``lists`` (``{name: voc ids}``, e.g. the demo's train_aug and train) written as ``lists/<name>.txt`` of the new
    ids in the same order: read through those lists, the same images train the same networks in every format.
    COCO gets one split, ``train2014``, holding every listed image. Returns ``{voc id: new id}``."""
    out_root = Path(out_root)
    if fmt == "folder":
        return voc_to_folder(voc_root, out_root, lists, classes=classes)
    if fmt != "coco":
        raise ValueError(f"unknown dataset format {fmt!r}")
    every = list(dict.fromkeys(voc_id for ids in lists.values() for voc_id in ids))
    mapping = voc_to_coco(voc_root, out_root, {"train2014": every}, classes=classes)
    (out_root / "lists").mkdir(parents=True, exist_ok=True)
    for name, ids in lists.items():
        (out_root / "lists" / f"{name}.txt").write_text("".join(f"{mapping[voc_id]}\n" for voc_id in ids))
    return mapping
