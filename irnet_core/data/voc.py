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
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from ..palette import read_label_png
from ..store import check_image_id

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_id_list(path: str | Path) -> list[str]:
    """Read a split file: one id per line, blank lines skipped, order kept.

    Each id is validated with :func:`check_image_id` (``where`` = ``path:lineno``); a duplicate id or a
    missing/unreadable file raises :class:`InputError`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(path, "split file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read split file ({type(exc).__name__}: {exc})") from None
    ids: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        image_id = line.strip()
        if not image_id:
            continue
        check_image_id(image_id, f"{path}:{lineno}")
        if image_id in first_line:
            raise InputError(f"{path}:{lineno}", f"duplicate image id {image_id!r} (first on line {first_line[image_id]})")
        first_line[image_id] = lineno
        ids.append(image_id)
    return ids


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


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Convert any PIL mode to uint8 RGB; alpha is dropped, high bit depths are scaled, nothing is rejected."""
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8)
    if mode.startswith("I;16") or mode in ("I", "F"):
        # PIL's own I/F -> RGB conversion clips at 255 instead of rescaling, which would turn a 16-bit
        # photo nearly white; rescale to 8 bits here. 'I' is assumed 16-bit when it exceeds 8-bit range.
        values = np.asarray(image).astype(np.float64)
        if mode.startswith("I;16") or (values.size and values.max() > 255):
            values = values / 257.0
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("P", "PA"):
        # Going through RGBA keeps palette transparency from triggering PIL's conversion warning.
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def load_image(path: str | Path) -> np.ndarray:
    """Load an image as uint8 ``(H, W, 3)`` RGB.

    Grayscale, CMYK, RGBA/LA (alpha dropped), palette and 16-bit images are converted, never rejected.
    EXIF orientation is ignored (as by the reference code), so sizes agree with the annotations.
    A missing, empty, truncated or corrupt file raises :class:`InputError` naming it: the pixel data are
    fully decoded here, so truncation cannot surface later.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "image file does not exist")
    try:
        with Image.open(path) as image:
            image.load()  # full decode: a truncated file fails now, not in a training step
            rgb = _to_rgb(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(path, f"cannot decode image ({type(exc).__name__}: {exc})") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputError(path, f"decoded to an unusable array of shape {rgb.shape}")
    # A fresh, writable array: np.asarray over PIL memory is read-only, which C extensions (the CRF) refuse.
    return np.array(rgb, dtype=np.uint8, order="C", copy=True)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(H, W)`` of an image, read from its header only (cheap); :class:`InputError` if missing/unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "image file does not exist")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(path, f"cannot read image header ({type(exc).__name__}: {exc})") from None
    return int(height), int(width)


def _read_png_labels(path: Path) -> np.ndarray:
    """Read a palette/grayscale label PNG as raw indices, mapping every failure to :class:`InputError`."""
    if not path.is_file():
        raise InputError(path, "label PNG does not exist")
    try:
        return read_label_png(path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        message = str(exc)
        # read_label_png's own ValueError already starts with the path; do not repeat it.
        if message.startswith(f"{path}: "):
            message = message[len(f"{path}: ") :]
        raise InputError(path, f"cannot read label PNG ({message})") from None


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
    values = np.unique(_read_png_labels(path))
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


def load_class_gt(root: str | Path, image_id: str) -> np.ndarray:
    """Semantic ground truth ``SegmentationClass/<id>.png`` as uint8 ``(H, W)`` palette indices."""
    check_image_id(image_id)
    return _read_png_labels(Path(root) / "SegmentationClass" / f"{image_id}.png")


def load_instance_gt(root: str | Path, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Instance ground truth: ``(masks bool (M, H, W), labels int64 (M,))`` with 0-based class labels.

    Instances are the values 1..254 of ``SegmentationObject/<id>.png`` in ascending order (0 and 255 are not
    instances). The class of an instance is the most frequent ``SegmentationClass`` value inside it, ignoring
    void (255), minus 1 (ties go to the smaller value). On well-formed VOC data, where every instance carries
one class value, this equals chainercv's ``VOCInstanceSegmentationDataset``. An instance whose majority is
    background, or that lies entirely on void, raises :class:`InputError`. Void pixels are obtainable from
    :func:`load_class_gt`.
    """
    check_image_id(image_id)
    root = Path(root)
    obj_path = root / "SegmentationObject" / f"{image_id}.png"
    cls_path = root / "SegmentationClass" / f"{image_id}.png"
    inst = _read_png_labels(obj_path)
    cls = _read_png_labels(cls_path)
    if inst.shape != cls.shape:
        raise InputError(obj_path, f"size {inst.shape} differs from {cls_path} {cls.shape}")
    ids = np.unique(inst)
    ids = ids[(ids != 0) & (ids != 255)]
    masks = np.zeros((len(ids),) + inst.shape, dtype=bool)
    labels = np.zeros(len(ids), dtype=np.int64)
    for k, inst_id in enumerate(ids):
        mask = inst == inst_id
        counts = np.bincount(cls[mask], minlength=256)
        counts[255] = 0
        if counts.sum() == 0:
            raise InputError(cls_path, f"instance {int(inst_id)} of {obj_path.name} covers only void pixels")
        majority = int(np.argmax(counts))
        if majority == 0:
            raise InputError(cls_path, f"instance {int(inst_id)} of {obj_path.name} is mostly background")
        masks[k] = mask
        labels[k] = majority - 1
    return masks, labels
