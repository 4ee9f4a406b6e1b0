"""MS-COCO in the 2014 layout through the :class:`~irnet_core.data.base.Dataset` interface.

Layout under ``root`` (both paths are config templates, see :mod:`irnet_core.data.dataset`)::

    annotations/instances_{split}.json   COCO instances file: images, annotations, categories
    {split}/<file_name>                  the images, e.g. val2014/COCO_val2014_000000000042.jpg

Decisions:

* **Ids** are the stems of the images' ``file_name`` (``COCO_val2014_000000000042``): stable, readable, safe
  and unique across the 2014 splits. COCO's integer id is kept as :meth:`CocoDataset.source_image_id`.
  Two images with the same stem (also in another split, also in another letter case) are an error.
* **Classes**: every category sorted by id, unless ``classes`` is given; then each name must be a category
  name and the class order is the given one. Annotations of categories left out are ignored everywhere
  (labels, masks, ignore regions), as if they had not been drawn.
* **Crowd annotations** (``iscrowd: 1``) count for the image-level labels: the class is visible in the image,
  and the label files of the follow-up works (ReCAM, AMN on COCO 2014) use every category present, so numbers
  stay comparable. In the ground truth they are what COCO makes of them: an ignore region (``255`` in
  :meth:`~CocoDataset.semantic_gt`, ``ignore`` in :meth:`~CocoDataset.instance_gt`), never an instance.
* **Semantic GT** paints the non-crowd instances in annotation-id order (a later annotation covers an earlier
  one where they overlap), then the crowd regions as 255. Instances whose mask is empty are skipped (they
  could never be matched); polygons with fewer than three points have no area and are skipped too
  (pycocotools would read a four-number polygon as a box).
* **Ground truth only where it exists.** Files made by detection tools hold boxes without segmentations, or
  empty ones. Each annotation's segmentation is classified when the file is indexed: *usable*, *missing* (no
  ``segmentation``: a box only), *empty* (``[]`` or ``{}``) or *degenerate* (only polygons of fewer than three
  points, or an RLE of zero area). An image has ground truth if its file holds at least one usable segmentation
  and the image has no annotation or at least one usable one; otherwise (every annotation a box, empty or
  degenerate; or a file without any segmentation) it has none, like a VOC or folder image without PNGs, and
  putting it in an eval, calibration or val list is an error naming the image and the list
  (:func:`~irnet_core.data.dataset.check_ground_truth`). Annotations without a usable segmentation **still give
  image-level labels** (the annotator saw the object: a box-only file trains like any other), and the opening
  warns with their count and first ids when they are empty or degenerate (or boxes beside real masks). In the
  ground truth of an image that has some, their boxes (``bbox``) are ignore regions (255 / ``ignore``), so an
  object drawn without a mask is neither scored as background nor as an instance.
* **Training lists** (``for_training=True``) drop images without any label (no annotation of a listed class)
  and log how many; those images stay valid in the other lists, where they are all background.
* **Sizes**: images must load with the height and width the file records, else one
  :class:`~irnet_core.errors.InputError` line; masks are decoded at the recorded size.

**Index cache.** A list spec must turn into ids while the workflow's DAG is built, but the 2014 train file is
~330 MB of JSON (tens of seconds to parse). The first open of a split therefore writes a compact index (ids,
file names, sizes and category ids per image, the categories) into ``index_cache`` as JSON, keyed by the
annotation file's resolved path, size and modification time; a later open reads only that (well under a second
for 80k images) and a changed annotation file rebuilds it. The polygons and RLE are parsed only when ground
truth is asked for (evaluation), once per split and process.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from ..store import MAX_ID_LENGTH, RESERVED_IDS, SAFE_ID, check_image_id
from .base import MAX_CLASSES, Dataset, drop_unlabelled
from .id_lists import read_id_lines

logger = logging.getLogger(__name__)

INDEX_FORMAT = "irnet-coco-index"
INDEX_VERSION = 2
# How many annotation ids a warning about unusable segmentations names.
FIRST_IDS = 5
UNUSABLE_KINDS = ("missing", "empty", "degenerate")
DEFAULT_SPLITS = ("train2014", "val2014")


@dataclass
class SplitIndex:
    """What the DAG needs to know about one split, per image in file order."""

    split: str
    annotation_path: Path
    source: dict  # the annotation file's path, size and mtime when it was indexed
    categories: list[tuple[int, str]]  # (id, name), sorted by id
    coco_ids: list[int]
    file_names: list[str]
    heights: list[int]
    widths: list[int]
    category_ids: list[list[int]]  # sorted unique category ids present (crowd included)
    image_ids: list[str]  # file stems, checked with check_image_id
    segmented: list[bool]  # whether the image has an annotation with a usable segmentation
    unusable: dict  # kind (missing, empty, degenerate) -> [count, first annotation ids]

    def __post_init__(self) -> None:
        self.position = dict(zip(self.image_ids, range(len(self.image_ids))))
        self.any_segmentation = any(self.segmented)


def file_stem(file_name: str) -> str:
    """The id of an image: its file name without folders and without the last suffix."""
    base = file_name.rsplit("/", 1)[-1]
    dot = base.rfind(".")
    return base[:dot] if dot > 0 else base


# ------------------------------------------------------------------------------------------- parsing


def segmentation_kind(segmentation: object) -> str:
    """``usable``, ``missing`` (none: a box only), ``empty`` or ``degenerate`` (nothing to draw); a malformed
    value counts as usable here, so that decoding it names the annotation."""
    if segmentation is None:
        return "missing"
    if isinstance(segmentation, list):
        if not segmentation:
            return "empty"
        if all(isinstance(polygon, list) for polygon in segmentation):
            return "usable" if any(len(polygon) >= 6 for polygon in segmentation) else "degenerate"
        return "usable"
    if isinstance(segmentation, dict):
        if not segmentation:
            return "empty"
        counts, size = segmentation.get("counts"), segmentation.get("size")
        if isinstance(counts, list) and all(_int_id(c) for c in counts):
            return "usable" if sum(counts[1::2]) > 0 else "degenerate"
        if isinstance(counts, str) and isinstance(size, list) and len(size) == 2 and all(map(_positive_int, size)):
            from pycocotools import mask as mask_utils  # lazy: a compiled extension

            try:
                area = int(mask_utils.area({"size": size, "counts": counts.encode("ascii")}))
            except (TypeError, ValueError, UnicodeEncodeError):
                return "usable"
            return "usable" if area > 0 else "degenerate"
    return "usable"


def _read_json(path: Path) -> dict:
    try:
        with open(path, "rb") as stream:
            data = json.load(stream)
    except FileNotFoundError:
        raise InputError(path, "annotation file does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read annotation file ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise InputError(path, "not a COCO annotation file (the top level is not an object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            problem = "lacks" if key not in data else "has a non-list"
            raise InputError(path, f"not a COCO instances file: {problem} key {key!r}")
    return data


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _int_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_categories(path: Path, entries: list) -> list[tuple[int, str]]:
    categories: dict[int, str] = {}
    names: dict[str, int] = {}
    for position, entry in enumerate(entries):
        where = f"{path} categories[{position}]"
        if not isinstance(entry, dict) or not _int_id(entry.get("id")) or not isinstance(entry.get("name"), str):
            raise InputError(where, "a category needs an integer 'id' and a string 'name'")
        cat_id, name = entry["id"], entry["name"]
        if cat_id in categories:
            raise InputError(where, f"category id {cat_id} is used twice")
        if name in names:
            raise InputError(where, f"category name {name!r} is used by ids {names[name]} and {cat_id}")
        categories[cat_id], names[name] = name, cat_id
    if not categories:
        raise InputError(path, "'categories' is empty")
    return sorted(categories.items())


def _parse_image(path: Path, position: int, entry: object) -> tuple[int, str, str, int, int]:
    """Validate one ``images`` entry; returns (coco id, id, file name, height, width)."""
    where = f"{path} images[{position}]"
    if not isinstance(entry, dict) or not _int_id(entry.get("id")):
        raise InputError(where, "an image needs an integer 'id'")
    where = f"{path} image {entry['id']}"
    file_name = entry.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        raise InputError(where, "an image needs a 'file_name'")
    relative = PurePosixPath(file_name)
    if relative.is_absolute() or ".." in relative.parts:
        raise InputError(where, f"file_name {file_name!r} must stay inside the image folder")
    if not _positive_int(entry.get("height")) or not _positive_int(entry.get("width")):
        raise InputError(where, "an image needs positive integer 'height' and 'width'")
    image_id = check_image_id(file_stem(file_name), where)
    return entry["id"], image_id, file_name, entry["height"], entry["width"]


def build_split_index(split: str, path: Path) -> SplitIndex:
    """Parse and validate a whole instances file into its :class:`SplitIndex` (slow for big files)."""
    data = _read_json(path)
    categories = _parse_categories(path, data["categories"])
    known_categories = {cat_id for cat_id, _ in categories}
    images = [_parse_image(path, position, entry) for position, entry in enumerate(data["images"])]
    position_of: dict[int, int] = {}
    stem_of: dict[str, int] = {}  # casefolded id -> coco id
    for position, (coco_id, image_id, *_) in enumerate(images):
        if coco_id in position_of:
            raise InputError(f"{path} image {coco_id}", "image id is used twice")
        folded = image_id.casefold()
        if folded in stem_of:
            raise InputError(
                f"{path} image {coco_id}",
                f"file name stem {image_id!r} is also the stem of image "
                f"{stem_of[folded]} (ids must differ, also in letter case)",
            )
        position_of[coco_id], stem_of[folded] = position, coco_id
    present: list[set[int]] = [set() for _ in images]
    segmented = [False] * len(images)
    unusable: dict[str, list] = {kind: [0, []] for kind in UNUSABLE_KINDS}
    for position, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise InputError(f"{path} annotations[{position}]", "an annotation must be an object")
        where = f"{path} annotation {ann.get('id', f'at position {position}')}"
        image_position = position_of.get(ann.get("image_id")) if _int_id(ann.get("image_id")) else None
        if image_position is None:
            raise InputError(where, f"image_id {ann.get('image_id')!r} is not in 'images'")
        if not _int_id(ann.get("category_id")) or ann["category_id"] not in known_categories:
            raise InputError(where, f"category_id {ann.get('category_id')!r} is not in 'categories'")
        if ann.get("iscrowd", 0) not in (0, 1):
            raise InputError(where, f"iscrowd must be 0 or 1, got {ann.get('iscrowd')!r}")
        present[image_position].add(ann["category_id"])
        kind = segmentation_kind(ann.get("segmentation"))
        if kind == "usable":
            segmented[image_position] = True
        else:
            unusable[kind][0] += 1
            if len(unusable[kind][1]) < FIRST_IDS:
                unusable[kind][1].append(ann.get("id", f"at position {position}"))
    columns = [list(column) for column in zip(*images)] if images else [[] for _ in range(5)]
    coco_ids, image_ids, file_names, heights, widths = columns
    return SplitIndex(
        split,
        path,
        _source_key(path),
        categories,
        coco_ids,
        file_names,
        heights,
        widths,
        [sorted(ids) for ids in present],
        image_ids,
        segmented,
        unusable,
    )


# --------------------------------------------------------------------------------------------- cache


# The ids in a cache passed check_image_id when it was written; if those rules change, the cache is stale.
_ID_RULES = f"{SAFE_ID.pattern}|{sorted(RESERVED_IDS)}|{MAX_ID_LENGTH}"


def _source_key(path: Path) -> dict:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise InputError(path, "annotation file does not exist") from None
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "id_rules": _ID_RULES}


def cache_file(cache_dir: Path, annotation_path: Path) -> Path:
    """Where the index of ``annotation_path`` is cached: readable name plus a digest of its resolved path."""
    digest = hashlib.sha1(str(annotation_path.resolve()).encode("utf-8")).hexdigest()[:12]
    return cache_dir / f"{annotation_path.stem}-{digest}.index.json"


def _index_to_json(index: SplitIndex, key: dict) -> dict:
    return {
        "format": INDEX_FORMAT,
        "version": INDEX_VERSION,
        "source": key,
        "categories": [[cat_id, name] for cat_id, name in index.categories],
        "images": {
            "coco_id": index.coco_ids,
            "file_name": index.file_names,
            "height": index.heights,
            "width": index.widths,
            "category_ids": index.category_ids,
            "image_id": index.image_ids,
            "segmented": index.segmented,
        },
        "unusable": index.unusable,
    }


def _index_from_json(data: dict, split: str, path: Path, key: dict) -> SplitIndex | None:
    """The cached index if it belongs to exactly this annotation file, else None."""
    if data.get("format") != INDEX_FORMAT or data.get("version") != INDEX_VERSION or data.get("source") != key:
        return None
    images = data["images"]
    names = ("coco_id", "file_name", "height", "width", "category_ids", "image_id", "segmented")
    columns = [images[name] for name in names]
    if len({len(column) for column in columns}) != 1:
        return None
    categories = [(int(cat_id), str(name)) for cat_id, name in data["categories"]]
    return SplitIndex(split, path, key, categories, *columns, data["unusable"])


def write_json_atomically(path: Path, data: dict) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as stream:
        json.dump(data, stream, separators=(",", ":"))


def load_split_index(split: str, path: Path, cache_dir: Path | None) -> SplitIndex:
    """The split's index: from ``cache_dir`` when it matches the annotation file, else built (and cached)."""
    key = _source_key(path)
    cached = cache_file(cache_dir, path) if cache_dir is not None else None
    if cached is not None and cached.is_file():
        try:
            with open(cached, "rb") as stream:
                index = _index_from_json(json.load(stream), split, path, key)
            if index is not None:
                return index
            logger.info("%s: index cache is stale; rebuilding it from %s", cached, path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("%s: unreadable index cache (%s); rebuilding it", cached, exc)
    logger.info("%s: indexing %.0f MB of annotations", path, key["size"] / 1e6)
    # The key is taken again while building: a file replaced in between must not be cached under the old key.
    index = build_split_index(split, path)
    if cached is not None:
        write_json_atomically(cached, _index_to_json(index, index.source))
    return index


# ------------------------------------------------------------------------------------------ segmentation


def decode_segmentation(segmentation: object, height: int, width: int, where: object) -> np.ndarray:
    """Decode a COCO ``segmentation`` (polygons, uncompressed or compressed RLE) to a bool ``(H, W)`` mask."""
    from pycocotools import mask as mask_utils  # lazy: a compiled extension needed only for ground truth

    if segmentation_kind(segmentation) in ("missing", "empty"):
        return np.zeros((height, width), dtype=bool)
    try:
        if isinstance(segmentation, list):
            if any(not isinstance(polygon, list) or len(polygon) % 2 for polygon in segmentation):
                raise InputError(where, "polygons must be lists of x, y pairs")
            # Fewer than three points enclose nothing, and pycocotools would read four numbers as a box.
            polygons = [polygon for polygon in segmentation if len(polygon) >= 6]
            if not polygons:
                return np.zeros((height, width), dtype=bool)
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        elif isinstance(segmentation, dict):
            size, counts = segmentation.get("size"), segmentation.get("counts")
            if not isinstance(size, list) or size != [height, width]:
                raise InputError(where, f"RLE size {size!r} differs from the image's recorded [{height}, {width}]")
            if isinstance(counts, list):
                if sum(counts) != height * width:
                    raise InputError(where, f"uncompressed RLE counts sum to {sum(counts)}, not {height * width}")
                rle = mask_utils.frPyObjects(segmentation, height, width)
            elif isinstance(counts, str):
                rle = {"size": [height, width], "counts": counts.encode("ascii")}
            else:
                raise InputError(where, "RLE 'counts' must be a list or a string")
        else:
            raise InputError(where, "segmentation must be a list of polygons or an RLE object")
        return mask_utils.decode(rle).astype(bool)
    except InputError:
        raise
    except (TypeError, ValueError, IndexError, OverflowError, KeyError, UnicodeEncodeError) as exc:
        raise InputError(where, f"cannot decode segmentation ({type(exc).__name__}: {exc})") from None


@dataclass
class _Annotation:
    ann_id: int
    category_id: int
    iscrowd: bool
    segmentation: object
    bbox: object = None


def box_mask(bbox: object, height: int, width: int) -> np.ndarray:
    """The pixels a COCO ``bbox`` ``[x, y, w, h]`` touches (empty for a missing or malformed box)."""
    mask = np.zeros((height, width), dtype=bool)
    if isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox):
        x, y, w, h = bbox
        if w > 0 and h > 0:
            top, left = max(0, int(np.floor(y))), max(0, int(np.floor(x)))
            mask[top : max(top, int(np.ceil(y + h))), left : max(left, int(np.ceil(x + w)))] = True
    return mask


def _annotations_by_image(index: SplitIndex) -> dict[int, list[_Annotation]]:
    """Every annotation of a split grouped by COCO image id, in ascending annotation id."""
    path = index.annotation_path
    if _source_key(path) != index.source:  # the index validated the file; a changed file is unchecked
        raise InputError(path, "changed after it was indexed; run again to index the new file")
    grouped: dict[int, list[_Annotation]] = {}
    for position, ann in enumerate(_read_json(path)["annotations"]):
        ann_id = ann.get("id", position)
        grouped.setdefault(ann["image_id"], []).append(
            _Annotation(
                ann_id, ann["category_id"], bool(ann.get("iscrowd", 0)), ann.get("segmentation"), ann.get("bbox")
            )
        )
    for anns in grouped.values():
        anns.sort(key=lambda a: a.ann_id)
    return grouped


# ----------------------------------------------------------------------------------------------- dataset


def _is_file_spec(spec: str) -> bool:
    return spec.endswith(".txt") or "/" in spec


class CocoDataset(Dataset):
    """MS-COCO 2014 layout; see the module docstring for ids, classes, crowd handling and the index cache."""

    format = "coco"
    default_exif = "ignore"
    options: ClassVar[dict[str, object]] = {
        "splits": list(DEFAULT_SPLITS),
        "annotation_file": "annotations/instances_{split}.json",
        "image_dir": "{split}",
        "index_cache": None,
    }

    def __init__(
        self,
        root: str | Path,
        *,
        classes: Sequence[str] | None = None,
        exif: str = "ignore",
        splits: Sequence[str] = DEFAULT_SPLITS,
        annotation_file: str = "annotations/instances_{split}.json",
        image_dir: str = "{split}",
        index_cache: str | Path | None = None,
    ) -> None:
        super().__init__(root, exif=exif)
        if isinstance(splits, str) or not splits or not all(isinstance(s, str) and s for s in splits):
            raise InputError("dataset.splits", f"must be a non-empty list of split names, got {splits!r}")
        if len(set(splits)) != len(splits):
            raise InputError("dataset.splits", f"lists a split twice: {list(splits)!r}")
        self.splits = list(splits)
        self._annotation_template = self._check_template(annotation_file, "dataset.annotation_file")
        self._image_template = self._check_template(image_dir, "dataset.image_dir")
        self.index_cache = Path(index_cache) if index_cache is not None else None
        self._indexes: dict[str, SplitIndex] = {}
        self._annotations: dict[str, dict[int, list[_Annotation]]] = {}
        self._categories = self._index(self.splits[0]).categories
        self._set_classes(classes)

    # ---- configuration

    @staticmethod
    def _check_template(template: object, where: str) -> str:
        if not isinstance(template, str) or not template:
            raise InputError(where, f"must be a path template, got {template!r}")
        try:
            template.format(split="train2014")
        except (KeyError, IndexError, ValueError) as exc:
            problem = f"the only placeholder allowed is {{split}} ({type(exc).__name__}: {exc})"
            raise InputError(where, problem) from None
        return template

    def annotation_path(self, split: str) -> Path:
        return self.resolve(self._annotation_template.format(split=split))

    def _set_classes(self, classes: Sequence[str] | None) -> None:
        where = self.annotation_path(self.splits[0])
        if classes is None:
            if len(self._categories) > MAX_CLASSES:
                raise InputError(
                    where,
                    f"{len(self._categories)} categories; at most {MAX_CLASSES} fit the label "
                    "maps (choose some with dataset.classes)",
                )
            self.classes = [name for _, name in self._categories]
            self.category_ids = [cat_id for cat_id, _ in self._categories]
        else:
            id_of = {name: cat_id for cat_id, name in self._categories}
            unknown = [name for name in classes if name not in id_of]
            if unknown:
                raise InputError("dataset.classes", f"{unknown[0]!r} is not a category name of {where}")
            self.classes = list(classes)
            self.category_ids = [id_of[name] for name in classes]
            left_out = len(self._categories) - len(classes)
            if left_out:
                logger.info(
                    "%d categories of %s are not in dataset.classes; their annotations are ignored", left_out, where
                )
        self._class_of = {cat_id: index for index, cat_id in enumerate(self.category_ids)}

    # ---- index

    def _index(self, split: str) -> SplitIndex:
        if split in self._indexes:
            return self._indexes[split]
        path = self.annotation_path(split)
        index = load_split_index(split, path, self.index_cache)
        if self._indexes and index.categories != self._categories:
            raise InputError(path, f"categories differ from those of {self.annotation_path(self.splits[0])}")
        folded = {image_id.casefold(): image_id for image_id in index.image_ids}
        for other in self._indexes.values():
            shared = folded.keys() & {image_id.casefold() for image_id in other.image_ids}
            if shared:
                image_id = folded[min(shared)]
                raise InputError(
                    f"{path} image {index.coco_ids[index.position[image_id]]}",
                    f"id {image_id!r} is also an image of {other.annotation_path}",
                )
        self._indexes[split] = index
        self._warn_unusable(index)
        return index

    @staticmethod
    def _warn_unusable(index: SplitIndex) -> None:
        """The annotations without a usable segmentation, counted (see the module docstring)."""
        path = index.annotation_path
        (n_missing, missing_ids), (n_empty, empty_ids), (n_degenerate, degenerate_ids) = (
            index.unusable[kind] for kind in UNUSABLE_KINDS
        )
        if not index.any_segmentation:
            if index.coco_ids:
                logger.warning(
                    "%s: no annotation holds a usable segmentation (boxes only?): its images give image-level "
                    "labels and have no ground truth",
                    path,
                )
            return
        if n_empty + n_degenerate:
            ids = (empty_ids + degenerate_ids)[:FIRST_IDS]
            logger.warning(
                "%s: %d annotation(s) hold an empty (%d) or degenerate (%d: polygons of fewer than 3 points, "
                "zero-area RLE) segmentation, e.g. ids %s; they still give image-level labels, and their boxes are "
                "ignore regions of the ground truth",
                path, n_empty + n_degenerate, n_empty, n_degenerate, ", ".join(map(str, ids)),
            )  # fmt: skip
        if n_missing:
            logger.warning(
                "%s: %d annotation(s) have no segmentation (a box only), e.g. ids %s; they give image-level labels, "
                "their boxes are ignore regions of the ground truth, and images with nothing else have none",
                path, n_missing, ", ".join(map(str, missing_ids)),
            )  # fmt: skip

    def _find(self, image_id: str) -> tuple[SplitIndex, int] | None:
        for index in self._indexes.values():
            position = index.position.get(image_id)
            if position is not None:
                return index, position
        return None

    def _locate(self, image_id: str, where: object = "image id") -> tuple[SplitIndex, int]:
        found = self._find(image_id)
        if found is None and len(self._indexes) < len(self.splits):
            for split in self.splits:  # ids of text lists may live in any split: index the rest on demand
                self._index(split)
            found = self._find(image_id)
        if found is None:
            files = ", ".join(str(self.annotation_path(s)) for s in self.splits)
            raise InputError(where, f"unknown image id {image_id!r} (not in {files})")
        return found

    # ---- interface

    def list_ids(self, spec: str, *, for_training: bool = False) -> list[str]:
        if _is_file_spec(spec):
            path = self.resolve(spec)
            for split in self.splits:  # an id may be in any split; indexing all also finds ids in two splits
                self._index(split)
            ids = []
            for image_id, line in read_id_lines(path):
                self._locate(image_id, f"{path}:{line}")  # an id of no split is an error naming its line
                ids.append(image_id)
        elif spec in self.splits:
            ids = list(self._index(spec).image_ids)
        else:
            raise InputError(
                f"list spec {spec!r}",
                f"not a split of dataset.splits ({', '.join(self.splits)}) nor "
                "an id list file (a path ending in .txt or containing '/')",
            )
        if for_training:
            listed = self._class_of.keys()
            ids = drop_unlabelled(
                ids,
                lambda image_id: not listed.isdisjoint(self._category_ids_of(image_id)),
                spec,
                "(no annotation of a listed class)",
                logger,
            )
        return ids

    def image_path(self, image_id: str) -> Path:
        index, position = self._locate(image_id)
        return self.resolve(self._image_template.format(split=index.split)) / index.file_names[position]

    def file_name(self, image_id: str) -> str:
        index, position = self._locate(image_id)
        return index.file_names[position]

    def source_image_id(self, image_id: str) -> int:
        index, position = self._locate(image_id)
        return index.coco_ids[position]

    def recorded_size(self, image_id: str) -> tuple[int, int]:
        index, position = self._locate(image_id)
        return index.heights[position], index.widths[position]

    def _category_ids_of(self, image_id: str) -> list[int]:
        index, position = self._locate(image_id)
        return index.category_ids[position]

    def image_labels(self, image_id: str) -> list[int]:
        return sorted({self._class_of[c] for c in self._category_ids_of(image_id) if c in self._class_of})

    def has_ground_truth(self, image_id: str, kind: str = "semantic") -> bool:
        self.check_gt_kind(kind)
        return self.ground_truth_problem(image_id) is None

    def ground_truth_problem(self, image_id: str) -> str | None:
        # COCO annotates every object of its categories: an image without annotations is all background, if the
        # file holds segmentations at all (see the module docstring).
        index, position = self._locate(image_id)
        if not index.any_segmentation:
            return f"{index.annotation_path} holds no usable segmentation at all (boxes or labels only)"
        if index.category_ids[position] and not index.segmented[position]:
            return (
                f"none of its annotations in {index.annotation_path} (image {index.coco_ids[position]}) holds a "
                "usable segmentation (boxes only, empty or degenerate)"
            )
        return None

    def annotation_files(self, image_ids: Sequence[str], kind: str = "labels") -> list[str]:
        self.check_annotation_kind(kind)
        splits = {self._locate(image_id)[0].split for image_id in image_ids}
        return [str(self.annotation_path(split)) for split in self.splits if split in splits]

    # ---- ground truth

    def _decoded_annotations(self, image_id: str) -> list[tuple[_Annotation, int, np.ndarray]]:
        """``(annotation, class index, mask)`` of the listed classes, in annotation-id order."""
        index, position = self._locate(image_id)
        height, width = self.image_size(image_id)  # the image must agree with the recorded size
        if index.split not in self._annotations:
            self._annotations[index.split] = _annotations_by_image(index)
        decoded = []
        for ann in self._annotations[index.split].get(index.coco_ids[position], []):
            class_index = self._class_of.get(ann.category_id)
            if class_index is None:
                continue
            where = f"{index.annotation_path} annotation {ann.ann_id}"
            decoded.append((ann, class_index, decode_segmentation(ann.segmentation, height, width, where)))
        return decoded

    def semantic_gt(self, image_id: str) -> np.ndarray:
        height, width = self.recorded_size(image_id)
        label = np.zeros((height, width), dtype=np.uint8)
        crowd = np.zeros((height, width), dtype=bool)
        for ann, class_index, mask in self._decoded_annotations(image_id):
            if ann.iscrowd:
                crowd |= mask
            elif mask.any():
                label[mask] = class_index + 1
            else:  # an object without a usable mask: its box is not scored
                crowd |= box_mask(ann.bbox, height, width)
        label[crowd] = 255
        return label

    def instance_gt(self, image_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        height, width = self.recorded_size(image_id)
        ignore = np.zeros((height, width), dtype=bool)
        masks, labels = [], []
        for ann, class_index, mask in self._decoded_annotations(image_id):
            if ann.iscrowd:
                ignore |= mask
            elif mask.any():
                masks.append(mask)
                labels.append(class_index)
            else:
                ignore |= box_mask(ann.bbox, height, width)
        stacked = np.stack(masks) if masks else np.zeros((0, height, width), dtype=bool)
        return stacked, np.asarray(labels, dtype=np.int64), ignore
