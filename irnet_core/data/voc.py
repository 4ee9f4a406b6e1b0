"""Reading a dataset in the PASCAL VOC 2012 layout.

Layout under ``root``::

    JPEGImages/<id>.jpg                 RGB photo (.jpeg / .png accepted as fallbacks)
    Annotations/<id>.xml                object/name tags give the image-level labels
    SegmentationClass/<id>.png          palette PNG: 0 background, c+1 class c, 255 void
    SegmentationObject/<id>.png         palette PNG: 0 background, 1..254 instance ids, 255 void
    ImageSets/Segmentation/<split>.txt  one image id per line

Contracts: ids are strings (never parsed as numbers) restricted to ``[A-Za-z0-9_.-]+``; class indices are
0-based; every problem with a file raises :class:`~irnet_core.errors.InputError` whose one-line message
names that file.

:class:`VOCDataset` offers this layout through the format-independent interface of
:mod:`irnet_core.data.base`. ``read_id_list``, ``load_image`` and ``image_size`` live in
:mod:`.id_lists` and :mod:`.images` (shared by every format) and are re-exported here for existing callers.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..palette import read_label_png  # noqa: F401  (re-exported: callers read raw PNGs through this module)
from ..store import check_image_id
from .base import Dataset
from .id_lists import read_id_list
from .images import image_size, load_image, load_label_png

__all__ = [
    "VOC_CLASSES", "VOCDataset", "image_path", "image_size", "instances_from_label_maps", "load_class_gt",
    "load_image", "load_image_labels", "load_instance_gt", "read_id_list",
]  # fmt: skip

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def image_path(root: str | Path, image_id: str) -> Path:
    """Path of the image ``JPEGImages/<id>.jpg``; ``.jpeg`` / ``.png`` are tried when ``.jpg`` is absent.

    When none exists the ``.jpg`` path is returned, so that the error raised by the reader names it.
    """
    check_image_id(image_id)
    folder = Path(root) / "JPEGImages"
    for suffix in _IMAGE_SUFFIXES:
        candidate = folder / f"{image_id}{suffix}"
        if candidate.is_file():
            return candidate
    return folder / f"{image_id}.jpg"


def _labels_from_xml(path: Path, classes: Sequence[str]) -> list[int]:
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as exc:
        raise InputError(path, f"cannot parse annotation XML ({exc})") from None
    index = {name: i for i, name in enumerate(classes)}
    found: set[int] = set()
    for obj in tree.getroot().iter("object"):
        name_el = obj.find("name")
        name = (name_el.text or "").strip() if name_el is not None else ""
        if not name:
            raise InputError(path, "an <object> has no <name>")
        if name not in index:
            raise InputError(path, f"unknown class name {name!r} (not one of the {len(classes)} classes)")
        found.add(index[name])
    return sorted(found)


def _labels_from_png(path: Path, n_classes: int) -> list[int]:
    values = np.unique(load_label_png(path))
    values = values[(values != 0) & (values != 255)]
    bad = values[values > n_classes]
    if bad.size:
        raise InputError(path, f"label value {int(bad[0])} is out of range (classes 1..{n_classes}, 0, 255)")
    return [int(v) - 1 for v in values]


def load_image_labels(root: str | Path, image_id: str, classes: Sequence[str]) -> list[int]:
    """Image-level labels: sorted unique 0-based class indices of ``image_id``.

    Read from ``Annotations/<id>.xml`` (object/name tags); when the XML is absent, from the values of
    ``SegmentationClass/<id>.png`` other than 0 and 255. Unknown names, out-of-range values and the absence
    of both files raise :class:`InputError` naming the file.
    """
    check_image_id(image_id)
    root = Path(root)
    xml_path = root / "Annotations" / f"{image_id}.xml"
    if xml_path.is_file():
        return _labels_from_xml(xml_path, classes)
    png_path = root / "SegmentationClass" / f"{image_id}.png"
    if png_path.is_file():
        return _labels_from_png(png_path, len(classes))
    raise InputError(xml_path, f"no annotation for image {image_id!r} (neither this XML nor {png_path} exists)")


def load_class_gt(root: str | Path, image_id: str, *, exif: str = "ignore") -> np.ndarray:
    """Semantic ground truth ``SegmentationClass/<id>.png`` as uint8 ``(H, W)`` palette indices."""
    check_image_id(image_id)
    return load_label_png(Path(root) / "SegmentationClass" / f"{image_id}.png", exif=exif)


def instances_from_label_maps(
    class_map: np.ndarray, object_map: np.ndarray, class_where: object, object_where: object
) -> tuple[np.ndarray, np.ndarray]:
    """Decode a class map and an instance-id map (VOC semantics) into ``(masks (M, H, W), labels (M,))``.

    Instances are the values 1..254 of ``object_map`` in ascending order (0 and 255 are not instances). The
    class of an instance is the most frequent ``class_map`` value inside it, ignoring void (255), minus 1
    (ties go to the smaller value). An instance whose majority is background, or that lies entirely on void,
    raises :class:`InputError` naming ``class_where``; differing sizes name ``object_where``.
    """
    if object_map.shape != class_map.shape:
        raise InputError(object_where, f"size {object_map.shape} differs from {class_where} {class_map.shape}")
    object_name = Path(str(object_where)).name
    ids = np.unique(object_map)
    ids = ids[(ids != 0) & (ids != 255)]
    masks = np.zeros((len(ids),) + object_map.shape, dtype=bool)
    labels = np.zeros(len(ids), dtype=np.int64)
    for k, inst_id in enumerate(ids):
        mask = object_map == inst_id
        counts = np.bincount(class_map[mask], minlength=256)
        counts[255] = 0
        if counts.sum() == 0:
            raise InputError(class_where, f"instance {int(inst_id)} of {object_name} covers only void pixels")
        majority = int(np.argmax(counts))
        if majority == 0:
            raise InputError(class_where, f"instance {int(inst_id)} of {object_name} is mostly background")
        masks[k] = mask
        labels[k] = majority - 1
    return masks, labels


def load_instance_gt(root: str | Path, image_id: str, *, exif: str = "ignore") -> tuple[np.ndarray, np.ndarray]:
    """Instance ground truth: ``(masks bool (M, H, W), labels int64 (M,))`` with 0-based class labels.

    Decoded by :func:`instances_from_label_maps` from ``SegmentationObject/<id>.png`` and
    ``SegmentationClass/<id>.png``. On well-formed VOC data, where every instance carries one class value,
    this equals chainercv's ``VOCInstanceSegmentationDataset``. Void pixels are obtainable from
    :func:`load_class_gt`.
    """
    check_image_id(image_id)
    root = Path(root)
    obj_path = root / "SegmentationObject" / f"{image_id}.png"
    cls_path = root / "SegmentationClass" / f"{image_id}.png"
    objects = load_label_png(obj_path, exif=exif)
    classes = load_label_png(cls_path, exif=exif)
    return instances_from_label_maps(classes, objects, cls_path, obj_path)


class VOCDataset(Dataset):
    """The VOC 2012 layout through the :class:`~irnet_core.data.base.Dataset` interface.

    Config keys: the common ones only. ``classes`` defaults to :data:`VOC_CLASSES`; a list spec is an id
    list file, relative to ``root`` or absolute. Opening reads nothing; :meth:`list_ids` reads only the list
    file, so the workflow's DAG is cheap to build. Image-level labels come from the XML (else the class
    PNG) when asked, so ``for_training`` filters nothing here: a training image without labels is reported
    by the dataset check, which reads every label anyway.
    """

    format = "voc"
    default_exif = "ignore"

    def __init__(self, root: str | Path, *, classes: Sequence[str] | None = None, exif: str = "ignore") -> None:
        super().__init__(root, exif=exif)
        self.classes = list(classes) if classes is not None else list(VOC_CLASSES)
        self.category_ids = list(range(1, len(self.classes) + 1))

    def _gt_paths(self, image_id: str) -> tuple[Path, Path]:
        check_image_id(image_id)
        name = f"{image_id}.png"
        return self.root / "SegmentationClass" / name, self.root / "SegmentationObject" / name

    def list_ids(self, spec: str, *, for_training: bool = False) -> list[str]:
        return read_id_list(self.resolve(spec))

    def image_path(self, image_id: str) -> Path:
        return image_path(self.root, image_id)

    def image_labels(self, image_id: str) -> list[int]:
        return load_image_labels(self.root, image_id, self.classes)

    def has_ground_truth(self, image_id: str, kind: str = "semantic") -> bool:
        return all(path.is_file() for path in self._gt_files(image_id, kind))

    def _gt_files(self, image_id: str, kind: str) -> list[Path]:
        class_path, object_path = self._gt_paths(image_id)
        return [class_path] if self.check_gt_kind(kind) == "semantic" else [class_path, object_path]

    def semantic_gt(self, image_id: str) -> np.ndarray:
        class_path, _ = self._gt_paths(image_id)
        return self.checked_label_map(image_id, class_path, self.label_png(class_path))

    def instance_gt(self, image_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        class_path, object_path = self._gt_paths(image_id)
        class_map = self.checked_label_map(image_id, class_path, self.label_png(class_path))
        objects = self.label_png(object_path)
        masks, labels = instances_from_label_maps(class_map, objects, class_path, object_path)
        return masks, labels, class_map == 255

    def annotation_files(self, image_ids: Sequence[str], kind: str = "labels") -> list[str]:
        if self.check_annotation_kind(kind) != "labels":
            return [str(path) for image_id in image_ids for path in self._gt_files(image_id, kind)]
        files = []
        for image_id in image_ids:
            # The file load_image_labels reads; the XML is named when neither exists, as its error does.
            check_image_id(image_id)
            xml_path = self.root / "Annotations" / f"{image_id}.xml"
            png_path = self.root / "SegmentationClass" / f"{image_id}.png"
            files.append(str(png_path if not xml_path.is_file() and png_path.is_file() else xml_path))
        return files
