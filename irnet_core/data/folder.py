"""A plain image folder plus a labels CSV, through the :class:`~irnet_core.data.base.Dataset` interface.

Layout under ``root`` (file and folder names are config keys, see :mod:`irnet_core.data.dataset`)::

    labels.csv              header ``image,labels`` (other columns are ignored); one row per image:
                            image = path relative to root, '/'-separated (subfolders allowed),
                            labels = class names separated by ';' (empty: an image without any class)
    <sub/folders>/<name>    the images, any format Pillow reads
    <class_gt_dir>/<sub/folders>/<stem>.png      optional: class indices (0, c+1, 255 ignore)
    <instance_gt_dir>/<sub/folders>/<stem>.png   optional: instance ids 1..254 (0 none, 255 void)

Ground truth follows VOC semantics: an instance's class is the majority class value under it; the ignore mask
is the class PNG's 255.

**Ids** are derived from the relative path so that a user can read them: the last suffix is dropped, folder
levels are joined by ``__``, whitespace becomes ``_`` and any other character outside ``[A-Za-z0-9_.-]``
becomes ``u`` plus its code point in hex (``u00e9`` for ``é``); a leading '.' becomes ``_``. So
``a/b c.jpg`` -> ``a__b_c`` and ``2026_000001.jpg`` -> ``2026_000001`` (the VOC id of the same file). This
readable mapping can make two paths meet (``a b.jpg`` and ``a_b.jpg``, ``x.jpg`` and ``x.png``, or two
ids differing only in letter case, which clash on macOS and Windows file systems); such a collision is an
error naming both CSV rows, so the ids of every accepted dataset are unique.

**Classes**: ``dataset.classes`` if given (the CSV may use only those names); otherwise the sorted set of
names in the CSV, so that the order does not depend on the row order. Ground-truth PNGs store class
indices, so with ``class_gt_dir`` the class list must be given explicitly.

Opening reads the CSV and checks that every image exists (one ``stat`` per row); nothing is decoded.
"""

from __future__ import annotations

import csv
import io
import logging
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar

import numpy as np

from ..errors import InputError
from ..store import check_image_id
from .base import Dataset, drop_unlabelled
from .id_lists import read_id_lines
from .voc import instances_from_label_maps

logger = logging.getLogger(__name__)

_KEPT_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_.-")
_FOLDER_SEPARATOR = "__"
ALL_ROWS = "all"


def _escape(part: str) -> str:
    return "".join(
        char if char in _KEPT_CHARACTERS else "_" if char.isspace() else f"u{ord(char):04x}" for char in part
    )


def folder_image_id(relative_path: str) -> str:
    """The id of the image at ``relative_path`` (normalised, '/'-separated); see the module docstring."""
    parts = list(PurePosixPath(relative_path).parts)
    name = parts[-1]
    dot = name.rfind(".")
    parts[-1] = name[:dot] if dot > 0 else name
    image_id = _FOLDER_SEPARATOR.join(_escape(part) for part in parts)
    return "_" + image_id[1:] if image_id.startswith(".") else image_id


@dataclass(frozen=True)
class _Row:
    relative_path: str
    labels: list[int]
    where: str  # "labels.csv:LINE"


def _decoded_csv(path: Path) -> str:
    """The CSV's text (UTF-8, a byte-order mark allowed); a byte that is not UTF-8 is an error naming its line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "labels CSV does not exist") from None
    except OSError as exc:
        raise InputError(path, f"cannot read labels CSV ({exc.strerror or type(exc).__name__})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{path}:{line}", f"byte 0x{data[exc.start]:02x} is not UTF-8 (save the CSV as UTF-8)"
        ) from None


def _normalised_relative(value: str, where: str) -> str:
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value or not path.parts:
        raise InputError(where, f"image path {value!r} must be relative to dataset.root, '/'-separated, without '..'")
    return str(path)


class FolderDataset(Dataset):
    """An image folder with a labels CSV; see the module docstring for the layout, ids and classes."""

    format = "folder"
    default_exif = "apply"
    options: ClassVar[dict[str, object]] = {"labels_csv": "labels.csv", "class_gt_dir": None, "instance_gt_dir": None}

    def __init__(
        self,
        root: str | Path,
        *,
        classes: Sequence[str] | None = None,
        exif: str = "apply",
        labels_csv: str | Path = "labels.csv",
        class_gt_dir: str | Path | None = None,
        instance_gt_dir: str | Path | None = None,
    ) -> None:
        super().__init__(root, exif=exif)
        self.labels_csv = self.resolve(labels_csv)
        self.class_gt_dir = self.resolve(class_gt_dir) if class_gt_dir is not None else None
        self.instance_gt_dir = self.resolve(instance_gt_dir) if instance_gt_dir is not None else None
        if instance_gt_dir is not None and class_gt_dir is None:
            raise InputError("dataset.instance_gt_dir", "needs dataset.class_gt_dir too (the classes come from it)")
        if class_gt_dir is not None and classes is None:
            raise InputError("dataset.classes", "required when dataset.class_gt_dir is set (the PNG values index it)")
        rows = self._read_csv()
        if classes is None:
            classes = sorted({name for _, _, names in rows for name in names})
            if not classes:
                raise InputError(self.labels_csv, "no class name in any row, and dataset.classes is not given")
        self.classes = list(classes)
        self.category_ids = list(range(1, len(self.classes) + 1))
        self._rows = self._index_rows(rows)

    # ---- reading the CSV

    def _read_csv(self) -> list[tuple[str, str, list[str]]]:
        """``(where, image, label names)`` per non-blank row; column and cell problems are errors."""
        path = self.labels_csv
        rows = []
        reader = csv.reader(io.StringIO(_decoded_csv(path), newline=""))
        try:
            header = [cell.strip() for cell in next(reader, [])]
            for column in ("image", "labels"):
                if column not in header:
                    raise InputError(f"{path}:1", f"missing column {column!r} (the header must name image,labels)")
                if header.count(column) > 1:
                    raise InputError(f"{path}:1", f"column {column!r} appears twice in the header")
            image_col, labels_col = header.index("image"), header.index("labels")
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                where = f"{path}:{reader.line_num}"
                if len(row) != len(header):
                    raise InputError(
                        where,
                        f"row has {len(row)} fields but the header has {len(header)} (quote names that contain commas)",
                    )
                image = row[image_col].strip()
                if not image:
                    raise InputError(where, "the 'image' column is empty")
                names = [name.strip() for name in row[labels_col].split(";") if name.strip()]
                rows.append((where, image, names))
        except csv.Error as exc:
            raise InputError(f"{path}:{reader.line_num}", f"cannot read labels CSV ({exc})") from None
        return rows

    def _index_rows(self, rows: list[tuple[str, str, list[str]]]) -> dict[str, _Row]:
        class_index = {name: index for index, name in enumerate(self.classes)}
        indexed: dict[str, _Row] = {}
        folded: dict[str, str] = {}  # casefolded id -> id
        for where, image, names in rows:
            relative = _normalised_relative(image, where)
            unknown = [name for name in names if name not in class_index]
            if unknown:
                raise InputError(
                    where,
                    f"unknown class {unknown[0]!r} for image {relative!r} (not one of the {len(self.classes)} classes)",
                )
            image_id = check_image_id(folder_image_id(relative), where)
            other = indexed.get(folded.get(image_id.casefold(), ""))
            if other is not None:
                if other.relative_path == relative:
                    raise InputError(where, f"image {relative!r} is listed twice (first at {other.where})")
                raise InputError(
                    where,
                    f"image {relative!r} gets id {image_id!r}, which clashes with "
                    f"{other.relative_path!r} at {other.where}; rename one of them",
                )
            if not (self.root / relative).is_file():
                raise InputError(where, f"image file {self.root / relative} does not exist")
            indexed[image_id] = _Row(relative, sorted({class_index[name] for name in names}), where)
            folded[image_id.casefold()] = image_id
        return indexed

    def _row(self, image_id: str, where: object = "image id") -> _Row:
        row = self._rows.get(image_id)
        if row is None:
            raise InputError(where, f"unknown image id {image_id!r} (no row of {self.labels_csv} has it)")
        return row

    # ---- interface

    def list_ids(self, spec: str, *, for_training: bool = False) -> list[str]:
        if spec == ALL_ROWS:
            ids = list(self._rows)
        else:
            path = self.resolve(spec)
            ids = []
            for image_id, line in read_id_lines(path):
                self._row(image_id, f"{path}:{line}")
                ids.append(image_id)
        if for_training:
            ids = drop_unlabelled(
                ids, lambda image_id: bool(self._rows[image_id].labels), spec, f"in {self.labels_csv}", logger
            )
        return ids

    def image_path(self, image_id: str) -> Path:
        return self.root / self._row(image_id).relative_path

    def file_name(self, image_id: str) -> str:
        return self._row(image_id).relative_path

    def image_labels(self, image_id: str) -> list[int]:
        return list(self._row(image_id).labels)

    def _gt_files(self, image_id: str, kind: str) -> list[Path]:
        self.check_gt_kind(kind)
        png = PurePosixPath(self._row(image_id).relative_path).with_suffix(".png")
        if self.class_gt_dir is None:
            raise InputError("dataset.class_gt_dir", "not set: this folder dataset has no ground truth")
        if kind == "semantic":
            return [self.class_gt_dir / png]
        if self.instance_gt_dir is None:
            raise InputError("dataset.instance_gt_dir", "not set: this folder dataset has no instance ground truth")
        return [self.class_gt_dir / png, self.instance_gt_dir / png]

    def has_ground_truth(self, image_id: str, kind: str = "semantic") -> bool:
        self.check_gt_kind(kind)
        if self.class_gt_dir is None or (kind == "instance" and self.instance_gt_dir is None):
            return False
        return all(path.is_file() for path in self._gt_files(image_id, kind))

    def semantic_gt(self, image_id: str) -> np.ndarray:
        (class_path,) = self._gt_files(image_id, "semantic")
        return self.checked_label_map(image_id, class_path, self.label_png(class_path))

    def instance_gt(self, image_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        class_path, object_path = self._gt_files(image_id, "instance")
        class_map = self.checked_label_map(image_id, class_path, self.label_png(class_path))
        objects = self.label_png(object_path)
        masks, labels = instances_from_label_maps(class_map, objects, class_path, object_path)
        return masks, labels, class_map == 255

    def annotation_files(self, image_ids: Sequence[str], kind: str = "labels") -> list[str]:
        if self.check_annotation_kind(kind) == "labels":
            for image_id in image_ids:
                self._row(image_id)
            return [str(self.labels_csv)]
        return [str(path) for image_id in image_ids for path in self._gt_files(image_id, kind)]
