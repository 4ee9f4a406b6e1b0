"""Opening the configured dataset: :func:`open_dataset`, the formats it knows (:data:`FORMAT_CLASSES`), and the
list helpers over the config's ``dataset:`` section.

Formats: ``voc`` (:class:`~irnet_core.data.voc.VOCDataset`, the PASCAL VOC 2012 layout), ``coco``
(:class:`~irnet_core.data.coco.CocoDataset`, the MS-COCO 2014 layout) and ``folder``
(:class:`~irnet_core.data.folder.FolderDataset`, an image folder plus a labels CSV); each implements the
interface of :class:`~irnet_core.data.base.Dataset`. This module imports the formats and no format imports
it, so adding one is a module of its own plus a line in :data:`FORMAT_CLASSES`.

The config's ``dataset:`` section. Keys of every format:

    format            voc (default) | coco | folder
    root              the dataset folder; relative paths in the other keys are relative to it
    classes           list of names, or null for the format's default (below)
    exif_orientation  ignore | apply (default: ignore for voc and coco, apply for folder; see .images)
    max_image_pixels  images with more pixels are refused (default Pillow's limit, 89,478,485); null: none
    train_list, infer_list, eval_list, calibration_list, val_list
                      list specs (see each format); absent or null lists are skipped by read_lists()

voc: no further keys. ``classes`` defaults to the 20 VOC classes. A list spec is an id list file.

coco (2014 layout: ``annotations/instances_{split}.json``, images in ``{split}/``)::

    splits            [train2014, val2014]  the splits ids are looked up in
    annotation_file   annotations/instances_{split}.json
    image_dir         "{split}"
    index_cache       null, or a folder for the id index (relative to the working directory, e.g.
                      results/dataset/coco_index): makes a repeated open cost well under a second

  A list spec is a split name (every image of that split) or an id list file (ends with ``.txt`` or contains
  a ``/``). Ids are file stems (``COCO_val2014_000000000042``). ``classes`` defaults to every category,
  sorted by id. Example (``configs/coco14.yaml``)::

      dataset:
        format: coco
        root: data/coco
        index_cache: results/dataset/coco_index
        classes: null            # the 80 categories in id order
        train_list: train2014
        infer_list: train2014
        eval_list: lists/train2014_eval.txt   # ids, a subset of infer_list (all 82,783 images is slow)

folder (an image folder, nested subfolders allowed, and a CSV ``image,labels``)::

    labels_csv        labels.csv
    class_gt_dir      null, or a folder of class-index PNGs named like the images (``a/b.jpg`` -> ``a/b.png``)
    instance_gt_dir   null, or a folder of instance-id PNGs (VOC semantics: 1..254, 255 void)

  A list spec is ``all`` (every CSV row, in file order) or an id list file. ``classes`` defaults to the
  sorted set of names in the CSV (required when ``class_gt_dir`` is set: the PNG values index it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import InputError
from .base import MAX_CLASSES, Dataset
from .coco import CocoDataset
from .folder import FolderDataset
from .images import DEFAULT_MAX_PIXELS, check_exif_policy, check_max_pixels
from .voc import VOCDataset

logger = logging.getLogger(__name__)

# Importing a format is cheap: COCO's compiled pycocotools is imported only where ground truth is decoded.
FORMAT_CLASSES: dict[str, type[Dataset]] = {
    dataset_class.format: dataset_class for dataset_class in (VOCDataset, CocoDataset, FolderDataset)
}
FORMATS: tuple[str, ...] = tuple(FORMAT_CLASSES)
LIST_KEYS: tuple[str, ...] = ("train_list", "infer_list", "eval_list", "calibration_list", "val_list")
COMMON_KEYS: tuple[str, ...] = ("format", "root", "classes", "exif_orientation", "max_image_pixels", *LIST_KEYS)


def _format_class(name: object) -> type[Dataset]:
    if isinstance(name, str) and name in FORMAT_CLASSES:
        return FORMAT_CLASSES[name]
    raise InputError("dataset.format", f"unknown format {name!r} (one of {', '.join(FORMATS)})")


def check_classes(classes: object, where: str = "dataset.classes") -> list[str] | None:
    """``None`` or a list of distinct, non-empty names (at most :data:`MAX_CLASSES`)."""
    if classes is None:
        return None
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise InputError(where, f"must be a list of class names or null, got {classes!r}")
    names = list(classes)
    if not names or len(names) > MAX_CLASSES:
        raise InputError(where, f"must hold 1..{MAX_CLASSES} names, got {len(names)}")
    for name in names:
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise InputError(where, f"class names must be non-empty strings without surrounding spaces, got {name!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(where, f"class {duplicates[0]!r} is listed twice")
    return names


def open_dataset(section: Mapping[str, object]) -> Dataset:
    """Open the dataset that the config's ``dataset:`` section describes (keys: see the module docstring).

    Cheap: nothing per image is read here except what the format needs to know its classes (COCO: the
    index, cached). Unknown keys, an unknown format and a missing root are :class:`InputError`.
    """
    if not isinstance(section, Mapping):
        raise InputError("dataset", f"must be a mapping, got {type(section).__name__}")
    dataset_class = _format_class(section.get("format", "voc"))
    unknown = sorted(set(section) - set(COMMON_KEYS) - set(dataset_class.options))
    if unknown:
        known = ", ".join([*COMMON_KEYS, *dataset_class.options])
        raise InputError(f"dataset.{unknown[0]}", f"unknown key for format {dataset_class.format} (known: {known})")
    root = section.get("root")
    if not isinstance(root, (str, Path)) or not str(root):
        raise InputError("dataset.root", f"must be a folder path, got {root!r}")
    if not Path(root).is_dir():
        raise InputError("dataset.root", f"folder {root} does not exist")
    exif = section.get("exif_orientation") or dataset_class.default_exif
    options = {key: section.get(key, default) for key, default in dataset_class.options.items()}
    max_pixels = check_max_pixels(section.get("max_image_pixels", DEFAULT_MAX_PIXELS))
    dataset = dataset_class(
        root,
        classes=check_classes(section.get("classes")),
        exif=check_exif_policy(exif, "dataset.exif_orientation"),
        **options,
    )
    dataset.max_image_pixels = max_pixels
    return dataset


def read_lists(dataset: Dataset, section: Mapping[str, object]) -> dict[str, list[str]]:
    """The id lists the section names, by key (absent or null keys skipped); ``train_list`` is read with
    ``for_training=True``."""
    lists: dict[str, list[str]] = {}
    for key in LIST_KEYS:
        spec = section.get(key)
        if spec is None:
            continue
        if not isinstance(spec, str) or not spec:
            raise InputError(f"dataset.{key}", f"must be a list spec (a split name or a file), got {spec!r}")
        lists[key] = dataset.list_ids(spec, for_training=key == "train_list")
    return lists


GROUND_TRUTH_LISTS: tuple[str, ...] = ("eval_list", "calibration_list", "val_list")


def check_ground_truth(dataset: Dataset, lists: Mapping[str, Sequence[str]]) -> None:
    """Every image of the lists that are scored or calibrated on (eval, calibration, val) must have ground
    truth: one line naming the list, the first image without it and why, and how many there are."""
    for key in GROUND_TRUTH_LISTS:
        for image_id in lists.get(key, ()):
            problem = dataset.ground_truth_problem(image_id)
            if problem is not None:
                count = sum(dataset.ground_truth_problem(i) is not None for i in lists[key])
                raise InputError(
                    f"dataset.{key}",
                    f"image {image_id!r} has no ground truth to score or calibrate on: {problem} "
                    f"({count} such image(s) in the list)",
                )


def check_scope(lists: Mapping[str, Sequence[str]], calibration_max: int) -> tuple[list[str], list[str]]:
    """What the input check covers: every image of every list (in list order, once), and those whose ground
    truth is read (the eval and val lists, the first ``calibration_max`` of the calibration list)."""
    every = list(dict.fromkeys(i for key in LIST_KEYS for i in lists.get(key, ())))
    scored = [
        *lists.get("eval_list", ()),
        *lists.get("calibration_list", ())[:calibration_max],
        *lists.get("val_list", ()),
    ]
    return every, list(dict.fromkeys(scored))
