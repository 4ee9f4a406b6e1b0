"""The interface every dataset format implements (:class:`Dataset`), apart from the factory that opens one.

Each format (:mod:`.voc`, :mod:`.coco`, :mod:`.folder`) subclasses :class:`Dataset` and imports only this
module of the layer's entry points; :mod:`.dataset` imports the formats and opens the configured one
(:func:`~irnet_core.data.dataset.open_dataset`). Keeping the two apart is what keeps the imports one-way.

The interface::

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
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import InputError
from .images import DEFAULT_MAX_PIXELS, check_exif_policy, image_size, load_image, load_label_png

GT_KINDS: tuple[str, ...] = ("semantic", "instance")
ANNOTATION_KINDS: tuple[str, ...] = ("labels", *GT_KINDS)
# Label value c+1 encodes class c and 255 is ignore, so a uint8 label map holds at most 254 classes.
MAX_CLASSES = 254


class Dataset(abc.ABC):
    """A dataset in one source format; see the module docstring for the contract of each method."""

    format: ClassVar[str]
    default_exif: ClassVar[str]
    # Format-specific config keys and their defaults; open_dataset rejects keys outside these and COMMON_KEYS.
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


def drop_unlabelled(
    image_ids: Sequence[str], is_labelled: Callable[[str], bool], spec: str, why: str, logger: logging.Logger
) -> list[str]:
    """The ids of a training list that have an image-level label, in order; ``logger`` (the format's own) warns
    how many were dropped, ``why`` saying where their labels were looked for."""
    kept = [image_id for image_id in image_ids if is_labelled(image_id)]
    if len(kept) < len(image_ids):
        logger.warning(
            "training list %s: dropped %d of %d images without any label %s",
            spec,
            len(image_ids) - len(kept),
            len(image_ids),
            why,
        )
    return kept
