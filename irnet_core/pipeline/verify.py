"""Inputs checked before training: every image of every list decoded, every ground truth read and matched.

The workflow runs :func:`verify_inputs` once per shard (rule ``verify_inputs``), for the shard's images of
every list (train, infer, calibration, val; the eval list is a part of infer), before any training starts.
Per image:

* the file is fully decoded under the dataset's EXIF policy and pixel limit, and its size matched against what
  the annotations record (COCO): :meth:`~irnet_core.data.base.Dataset.load_image`, the same call every
  stage reads images with;
* its image-level labels are read (unknown class names, broken XML);
* for images of the eval, calibration and val lists, the semantic and instance ground truth are decoded and
  matched against the image (size, class values, instance classes): ``semantic_gt`` / ``instance_gt``, the
  readers of the evaluation.

**Cached by content.** A verdict is keyed by a SHA-256 of what decides it: the file's bytes (and the ground
truth's), the decoding settings (EXIF policy, recorded size, classes) and a version of the checks. The shard's
cache (``cache_path``, outside the rule's outputs, so that Snakemake's deleting of outputs before a rerun
keeps it) maps each path's ``(size, mtime_ns)`` to its digest and holds the verdict keys that passed. A rerun
(Snakemake reruns a shard when one of its files changes) hashes only files whose size or time changed and
decodes only files whose digest is new; the pixel limit is checked against the recorded size, so changing it
decodes nothing. Bad files are never cached.

**Every bad file is reported**, not only the first: each one is logged on its own line (file and problem),
then a summary; the :class:`~irnet_core.errors.InputError` that stops the job names the first file and the
count of the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write_text
from ..data.base import Dataset
from ..errors import InputError
from ..provenance import file_digest
from .common import write_json

log = logging.getLogger(__name__)

# Bump when a check changes, so that cached verdicts of the older checks are not trusted.
CHECKS_VERSION = 1
CACHE_FORMAT = "irnet-verify-cache"
# The log names the images a job decoded, up to this many (a first run decodes the whole shard).
LISTED_DECODED = 100


@dataclass
class DigestCache:
    """SHA-256 of files, remembered by ``(size, mtime_ns)``, and the verdict keys that passed."""

    files: dict[str, list] = field(default_factory=dict)  # path -> [size, mtime_ns, digest]
    passed: dict[str, list[int]] = field(default_factory=dict)  # verdict key -> image size (H, W)
    hashed: int = 0  # files read to hash them in this job
    # What this job looked up: saving keeps only that, so verdicts of replaced files do not pile up.
    used_files: set[str] = field(default_factory=set)
    used_keys: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, path: str | Path | None, others: Iterable[str | Path] = ()) -> DigestCache:
        """This job's cache (``path``), with what the ``others`` (other checkers' caches, read only) know: a
        verdict is keyed by content, so whoever decoded a file, its verdict holds for every checker."""
        cache = cls()
        for source in [*others, *([path] if path is not None else [])]:
            files, passed = cls._read(source)
            cache.files.update(files)
            cache.passed.update(passed)
        return cache

    @staticmethod
    def _read(path: str | Path) -> tuple[dict, dict]:
        if not Path(path).is_file():
            return {}, {}
        try:
            data = json.loads(Path(path).read_text())
            if data.get("format") == CACHE_FORMAT and data.get("version") == CHECKS_VERSION:
                return dict(data["files"]), dict(data["passed"])
            log.info("%s: cache of other checks; not used", path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: unreadable cache (%s); not used", path, exc)
        return {}, {}

    def save(self, path: str | Path) -> None:
        files = {p: v for p, v in self.files.items() if p in self.used_files}
        passed = {k: v for k, v in self.passed.items() if k in self.used_keys}
        data = {"format": CACHE_FORMAT, "version": CHECKS_VERSION, "files": files, "passed": passed}
        atomic_write_text(path, json.dumps(data, separators=(",", ":")))

    def digest(self, path: str | Path) -> str:
        """The file's SHA-256; read again only when its size or modification time changed."""
        path = str(path)
        self.used_files.add(path)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise InputError(path, "file does not exist") from None
        known = self.files.get(path)
        if known is not None and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
            return known[2]
        digest = file_digest(path)
        self.hashed += 1
        self.files[path] = [stat.st_size, stat.st_mtime_ns, digest]
        return digest


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps([CHECKS_VERSION, *parts], default=str).encode("utf-8")).hexdigest()


@dataclass
class Verified:
    """What one shard job found: per image its size and digest; the files it decoded; every problem."""

    sizes: dict[str, list[int]] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    decoded: list[str] = field(default_factory=list)  # image ids whose files were decoded (not from the cache)
    problems: list[InputError] = field(default_factory=list)


def _ground_truth_key(dataset: Dataset, image_id: str, cache: DigestCache, image_digest: str) -> str:
    files = dict.fromkeys(
        dataset.annotation_files([image_id], "semantic") + dataset.annotation_files([image_id], "instance")
    )
    # COCO's ground truth of all images lives in one file: its digest and the image's own id pick the part.
    return _key(
        "ground truth", image_digest, [cache.digest(path) for path in files], dataset.source_image_id(image_id),
        dataset.exif, list(dataset.classes),
    )  # fmt: skip


def check_images(
    dataset: Dataset,
    image_ids: Sequence[str],
    ground_truth_ids: Collection[str] = (),
    cache: DigestCache | None = None,
    on_image: Callable[[str], None] | None = None,
) -> Verified:
    """Check ``image_ids`` (and the ground truth of those in ``ground_truth_ids``), collecting every problem."""
    cache = cache if cache is not None else DigestCache()
    found = Verified()
    for image_id in image_ids:
        try:
            dataset.image_labels(image_id)
            path = dataset.image_path(image_id)
            digest = cache.digest(path)
            recorded = dataset.recorded_size(image_id)
            image_key = _key("image", digest, dataset.exif, recorded)
            cache.used_keys.add(image_key)
            size = cache.passed.get(image_key)
            if size is None:
                size = list(dataset.load_image(image_id).shape[:2])
                found.decoded.append(image_id)
            limit = dataset.max_image_pixels
            if limit is not None and size[0] * size[1] > limit:  # the limit may have changed since it was cached
                dataset.load_image(image_id)  # raises the reader's own one-line error
            cache.passed[image_key] = size
            if image_id in ground_truth_ids:
                gt_key = _ground_truth_key(dataset, image_id, cache, digest)
                cache.used_keys.add(gt_key)
                if gt_key not in cache.passed:
                    dataset.semantic_gt(image_id)
                    dataset.instance_gt(image_id)
                    cache.passed[gt_key] = size
            found.sizes[image_id], found.digests[image_id] = size, digest
        except InputError as exc:
            found.problems.append(exc)
        if on_image is not None:
            on_image(image_id)
    return found


def raise_problems(problems: Sequence[InputError], n_checked: int, logger: logging.Logger = log) -> None:
    """Log every problem on its own line and a summary; raise the first, counting the others."""
    if not problems:
        return
    for problem in problems:
        logger.error("bad input: %s", problem)
    logger.error("%d of %d images have a bad file (each listed above)", len(problems), n_checked)
    first = problems[0]
    more = f" ({len(problems) - 1} more bad file(s): see the job's log)" if len(problems) > 1 else ""
    raise InputError(first.where, f"{first.problem}{more}")


def run_check(
    dataset: Dataset,
    image_ids: Sequence[str],
    ground_truth_ids: Iterable[str] = (),
    cache_dir: str | Path | None = None,
    name: str = "check",
) -> Verified:
    """Check ``image_ids`` (and the ground truth of ``ground_truth_ids`` among them) with the caches of
    ``cache_dir``: this checker's own ``<name>.json`` (read and written) and every other checker's there (read
    only). Logs what was decoded and every problem; raises the first problem (:func:`raise_problems`)."""
    own = Path(cache_dir) / f"{name}.json" if cache_dir is not None else None
    others = sorted(p for p in Path(cache_dir).glob("*.json") if p != own) if cache_dir is not None else []
    cache = DigestCache.load(own, others)
    ground_truth = set(ground_truth_ids)
    found = check_images(dataset, image_ids, ground_truth, cache)
    if own is not None:
        cache.save(own)  # also after a failure: the good files need not be decoded again
    log.info(
        "verified %d images (%d with ground truth): %d decoded, %d from the cache by content digest, %d file(s) hashed",
        len(image_ids), len(ground_truth & set(image_ids)), len(found.decoded),
        len(image_ids) - len(found.decoded) - len(found.problems), cache.hashed,
    )  # fmt: skip
    if found.decoded:
        shown = found.decoded[:LISTED_DECODED]
        more = f" ... ({len(found.decoded) - len(shown)} more)" if len(found.decoded) > len(shown) else ""
        log.info("decoded: %s%s", " ".join(shown), more)
    raise_problems(found.problems, len(image_ids))
    return found


def verify_inputs(
    *,
    dataset: Dataset,
    image_ids: Sequence[str],
    ground_truth_ids: Iterable[str],
    out_path: str,
    cache_dir: str | None,
    name: str,
) -> dict:
    """Verify one shard's images and ground truth; write their sizes and digests to ``out_path`` (JSON).

    The output depends only on the inputs (never on what the cache held), so that reruns compare by content.
    """
    found = run_check(dataset, image_ids, ground_truth_ids, cache_dir, name)
    data = {"image_ids": list(image_ids), "sizes": found.sizes, "image_digests": found.digests}
    write_json(out_path, data)
    return data


def prepare_labels(
    *,
    dataset: Dataset,
    image_ids: Sequence[str],
    out_path: str,
    also_check: Sequence[str] = (),
    ground_truth_ids: Sequence[str] = (),
    cache_dir: str | None = None,
) -> dict:
    """Write the training images' image-level labels, sizes and content digests, after the input check.

    The check (:func:`run_check`) covers the training images and ``also_check`` (the workflow passes every other
    list: no training starts before every input was decoded), and the ground truth of ``ground_truth_ids``;
    with ``cache_dir`` it takes the verdicts the shard jobs (rule ``verify_inputs``) already reached by content
    and decodes only what they have not. A training image without any label is an error (it would teach the
    classifier "no class present"). The SHA-256 of each image file lets the trainings tell a checkpoint of these
    exact images from one of others, and holds out images by content whatever their ids (the same images in
    another dataset format train the same networks).
    """
    labels = {}
    for image_id in image_ids:
        labels[image_id] = dataset.image_labels(image_id)
        if not labels[image_id]:
            where = dataset.annotation_files([image_id], "labels")[0]
            raise InputError(where, f"training image {image_id!r} has no image-level label")
    checked = run_check(
        dataset, list(dict.fromkeys([*image_ids, *also_check])), ground_truth_ids, cache_dir, "prepare_dataset"
    )
    data = {
        "classes": list(dataset.classes),
        "image_ids": list(image_ids),
        "labels": labels,
        "sizes": {i: list(checked.sizes[i]) for i in image_ids},
        "image_digests": {i: checked.digests[i] for i in image_ids},
        "paths": {i: str(dataset.image_path(i)) for i in image_ids},
    }
    write_json(out_path, data)
    return data
