"""One interface over every dataset format, and :func:`open_dataset`, which opens one from the config.

Formats: ``voc`` (:class:`~irnet_core.data.voc.VOCDataset`, the PASCAL VOC 2012 layout), ``coco``
(:class:`~irnet_core.data.coco.CocoDataset`, the MS-COCO 2014 layout) and ``folder``
(:class:`~irnet_core.data.folder.FolderDataset`, an image folder plus a labels CSV).

The interface (:class:`Dataset`)::

    classes: list[str]                 foreground names; the 0-based position is the class index
    category_ids: list[int]            the source's own id per class (COCO's category ids; 1..C otherwise)
    list_ids(spec, *, for_training=False) -> list[str]
                                       a list spec from the config -> safe string ids, in order
    image_path(id) -> Path             image_labels(id) -> list[int] (sorted 0-based class indices)
    file_name(id) -> str               source_image_id(id) -> int | None (COCO's integer id)
    load_image(id) -> uint8 (H, W, 3)  image_size(id) -> (H, W)   (EXIF policy applied, sizes checked)
    has_ground_truth(id, kind="semantic") -> bool          kind: "semantic" or "instance"
    semantic_gt(id) -> uint8 (H, W)    0 background, c+1 class c, 255 ignore
    instance_gt(id) -> (masks bool (M, H, W), classes int64 (M,), ignore bool (H, W))
    annotation_files(ids, kind="labels") -> list[str]      kind: "labels", "semantic" or "instance"

``annotation_files`` names the files whose change must rerun work for those images, so that the workflow
can declare them as inputs: the files ``image_labels`` reads (``kind="labels"``) or the ground truth that
``semantic_gt`` / ``instance_gt`` read. Every id that leaves this layer passed
:func:`~irnet_core.store.check_image_id`; every problem is one :class:`~irnet_core.errors.InputError` line
naming the file (and line, row or annotation id).

``list_ids(..., for_training=True)`` drops images without any image-level label (with a logged count) where
labels are known cheaply (COCO, folder); such an image would teach the classifier "no class present". VOC
reads labels only when they are used, so there the dataset check reports such an image instead.

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

import abc
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import InputError
from .images import (
    DEFAULT_MAX_PIXELS,
    check_exif_policy,
    check_max_pixels,
    image_size,
    load_image,
    load_label_png,
)

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("voc", "coco", "folder")
LIST_KEYS: tuple[str, ...] = ("train_list", "infer_list", "eval_list", "calibration_list", "val_list")
COMMON_KEYS: tuple[str, ...] = ("format", "root", "classes", "exif_orientation", "max_image_pixels", *LIST_KEYS)
GT_KINDS: tuple[str, ...] = ("semantic", "instance")
ANNOTATION_KINDS: tuple[str, ...] = ("labels", *GT_KINDS)
# Label value c+1 encodes class c and 255 is ignore, so a uint8 label map holds at most 254 classes.
MAX_CLASSES = 254


class Dataset(abc.ABC):
    """A dataset in one source format; see the module docstring for the contract of each method."""

    format: ClassVar[str]
    default_exif: ClassVar[str]
    # Format-specific config keys and their defaults; the factory rejects keys outside these and COMMON_KEYS.
    options: ClassVar[dict[str, object]] = {}

    classes: list[str]
    category_ids: list[int]
    # Images (and ground-truth PNGs) with more pixels are refused; None: no limit (open_dataset sets it).
    max_image_pixels: int | None = DEFAULT_MAX_PIXELS

    def __init__(self, root: str | Path, *, exif: str) -> None:
        self.root = Path(root)
        self.exif = check_exif_policy(exif, "dataset.exif_orientation")

    # ---- what each format implements

    @abc.abstractmethod
    def list_ids(self, spec: str, *, for_training: bool = False) -> list[str]: ...

    @abc.abstractmethod
    def image_path(self, image_id: str) -> Path: ...

    @abc.abstractmethod
    def image_labels(self, image_id: str) -> list[int]: ...

    @abc.abstractmethod
    def has_ground_truth(self, image_id: str, kind: str = "semantic") -> bool: ...

    @abc.abstractmethod
    def semantic_gt(self, image_id: str) -> np.ndarray: ...

    @abc.abstractmethod
    def instance_gt(self, image_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    @abc.abstractmethod
    def annotation_files(self, image_ids: Sequence[str], kind: str = "labels") -> list[str]: ...

    def source_image_id(self, image_id: str) -> int | None:
        return None

    def file_name(self, image_id: str) -> str:
        return self.image_path(image_id).name

    def ground_truth_problem(self, image_id: str) -> str | None:
        """Why an image whose ground-truth files exist has no ground truth (COCO: no usable segmentation), or
        None. Missing ground-truth files (VOC, folder) are reported as missing files instead."""
        return None

    def recorded_size(self, image_id: str) -> tuple[int, int] | None:
        """``(H, W)`` the annotations record for the image, if they do; loaded images must agree with it."""
        return None

    # ---- shared behaviour

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def resolve(self, value: str | Path) -> Path:
        """A path from the config: absolute, or relative to ``root``."""
        path = Path(value)
        return path if path.is_absolute() else self.root / path

    def image_size(self, image_id: str) -> tuple[int, int]:
        """``(H, W)`` of the image as :meth:`load_image` returns it (header only)."""
        path = self.image_path(image_id)
        size = image_size(path, exif=self.exif, max_pixels=self.max_image_pixels)
        self._check_recorded_size(image_id, path, size)
        return size

    def load_image(self, image_id: str) -> np.ndarray:
        path = self.image_path(image_id)
        image = load_image(path, exif=self.exif, max_pixels=self.max_image_pixels)
        self._check_recorded_size(image_id, path, image.shape[:2])
        return image

    def label_png(self, path: Path) -> np.ndarray:
        """A ground-truth PNG's raw values, under the dataset's EXIF policy and pixel limit."""
        return load_label_png(path, exif=self.exif, max_pixels=self.max_image_pixels)

    def _check_recorded_size(self, image_id: str, path: Path, size: tuple[int, int]) -> None:
        recorded = self.recorded_size(image_id)
        if recorded is not None and tuple(size) != tuple(recorded):
            raise InputError(
                path,
                f"image is {size[0]}x{size[1]} (H x W, exif_orientation {self.exif}) but its "
                f"annotations record {recorded[0]}x{recorded[1]}",
            )

    def checked_label_map(self, image_id: str, path: Path, label_map: np.ndarray) -> np.ndarray:
        """``label_map`` read from ``path`` after checking its size against the image and its values."""
        size = self.image_size(image_id)
        if label_map.shape != tuple(size):
            raise InputError(
                path,
                f"ground truth is {label_map.shape[0]}x{label_map.shape[1]} but its image "
                f"{self.image_path(image_id)} is {size[0]}x{size[1]} (H x W)",
            )
        values = np.unique(label_map)
        bad = values[(values > self.num_classes) & (values != 255)]
        if bad.size:
            raise InputError(
                path,
                f"label value {int(bad[0])} is out of range (classes 1..{self.num_classes}, 0 background, 255 ignore)",
            )
        return label_map

    @staticmethod
    def check_gt_kind(kind: str) -> str:
        if kind not in GT_KINDS:
            raise ValueError(f"ground-truth kind must be one of {GT_KINDS}, got {kind!r}")
        return kind

    @staticmethod
    def check_annotation_kind(kind: str) -> str:
        if kind not in ANNOTATION_KINDS:
            raise ValueError(f"annotation kind must be one of {ANNOTATION_KINDS}, got {kind!r}")
        return kind


def _format_class(name: object) -> type[Dataset]:
    # Imported on demand: opening a VOC dataset must not import pycocotools, and voc imports this module.
    if name == "voc":
        from .voc import VOCDataset

        return VOCDataset
    if name == "coco":
        from .coco import CocoDataset

        return CocoDataset
    if name == "folder":
        from .folder import FolderDataset

        return FolderDataset
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
