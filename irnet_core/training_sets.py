"""Training samples of every network that trains: the CAM classifier and IRNet, which learn from image-level
labels (method doc §2.3, §2.9), and the final models, which learn from the pseudo-labels (method doc §4).

All are indexed by ``(epoch, index)`` keys, which :class:`irnet_core.training.EpochSampler` yields: a sample's
augmentation is drawn from ``sample_rng(seed, epoch, index)``, so it does not depend on batching, on loader
workers (persistent or not) or on where a resumed training starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from . import transforms as T
from .coco_instances import decode_instances
from .errors import InputError
from .palette import read_label_png
from .training import sample_rng


def split_holdout(image_ids: Sequence[str], fraction: float) -> tuple[list[int], list[int]]:
    """Positions of training and held-out images; membership is a hash of the id, stable under list edits."""
    train, held = [], []
    for pos, image_id in enumerate(image_ids):
        digest = hashlib.blake2b(f"holdout:{image_id}".encode(), digest_size=8).digest()
        (held if int.from_bytes(digest, "big") / 2**64 < fraction else train).append(pos)
    return train, held


def multi_hot(labels: Sequence[Sequence[int]], n_classes: int) -> np.ndarray:
    """float32 (N, n_classes) targets of the multi-label classifier from per-image class-index lists."""
    targets = np.zeros((len(labels), n_classes), dtype=np.float32)
    for row, keys in enumerate(labels):
        targets[row, list(keys)] = 1.0
    return targets


ImageLoader = Callable[[str], np.ndarray]  # image id -> uint8 (H, W, 3), e.g. a dataset's load_image


class EpochSamples(torch.utils.data.Dataset):
    """What every training set shares: images by position, read through ``load``, and each sample's
    randomness drawn from its ``(epoch, index)`` key."""

    def __init__(self, load: ImageLoader, image_ids: Sequence[str], *, seed: int):
        self.load, self.image_ids, self.seed = load, list(image_ids), seed

    def __len__(self) -> int:
        return len(self.image_ids)

    def _image(self, key: tuple[int, int]) -> tuple[str, np.ndarray, np.random.Generator]:
        """The id and the loaded image at the key's index, and the sample's random generator."""
        epoch, index = key
        image_id = self.image_ids[index]
        return image_id, self.load(image_id), sample_rng(self.seed, epoch, index)


def scale_flip_crop(
    image: np.ndarray, labels: np.ndarray, scale_range, crop_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random rescale, normalise, mirror and crop of an image and its label map alike. The order of the steps
    is the order of the draws from ``rng``: changing it changes every sample of a seed."""
    image, labels = T.random_scale(image, labels, float(scale_range[0]), float(scale_range[1]), rng)
    image = T.normalize(image)
    image, labels = T.random_hflip(image, labels, rng)
    return T.random_crop(image, labels, crop_size, rng)


class ClassificationCrops(EpochSamples):
    """CAM classifier samples: random long-side resize, flip and crop of an image, and its multi-hot target."""

    def __init__(
        self,
        load: ImageLoader,
        image_ids: Sequence[str],
        targets: np.ndarray,
        *,
        crop_size: int,
        resize_long,
        seed: int,
    ):
        super().__init__(load, image_ids, seed=seed)
        self.targets, self.crop_size, self.resize_long = targets, crop_size, resize_long

    def __getitem__(self, key: tuple[int, int]):
        _, index = key
        _, image, rng = self._image(key)
        image = T.random_resize_long(image, int(self.resize_long[0]), int(self.resize_long[1]), rng)
        image = T.normalize(image)
        image, _ = T.random_hflip(image, None, rng)
        image, _ = T.random_crop(image, None, self.crop_size, rng)
        return torch.from_numpy(np.ascontiguousarray(T.to_chw(image))), torch.from_numpy(self.targets[index])


class RelationCrops(EpochSamples):
    """IRNet samples: random rescale, flip and crop of an image and its relation labels, labels then on the
    stride-4 grid. ``relations[id]`` is a store reader holding that image's ``labels``."""

    def __init__(
        self, load: ImageLoader, image_ids: Sequence[str], relations: Mapping, *, crop_size: int, scale_range, seed: int
    ):
        super().__init__(load, image_ids, seed=seed)
        self.relations, self.crop_size, self.scale_range = relations, crop_size, scale_range

    def __getitem__(self, key: tuple[int, int]):
        image_id, image, rng = self._image(key)
        labels = self.relations[image_id].read(image_id, ["labels"])[0]["labels"]
        if labels.shape != image.shape[:2]:
            raise ValueError(f"{image_id}: image is {image.shape[:2]} but its relation labels are {labels.shape}")
        image, labels = scale_flip_crop(image, labels, self.scale_range, self.crop_size, rng)
        grid = T.downsample_label_nearest(labels, 4)
        return torch.from_numpy(np.ascontiguousarray(T.to_chw(image))), torch.from_numpy(grid.astype(np.int64))


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """(M, 4) float32 ``x0, y0, x1, y1`` boxes of (M, H, W) masks, with x1 > x0 and y1 > y0 (pixel edges)."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, mask in enumerate(masks):
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        boxes[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return boxes


class InstanceSamples(EpochSamples):
    """Mask R-CNN samples: a float image in [0, 1] (C, H, W), randomly mirrored, and its target dict
    (``boxes``, ``labels`` 1..C, ``masks``). Instances at or below ``min_score`` and empty masks are left out;
    an image without instances is a valid sample (background only). ``records`` are
    :func:`~irnet_core.coco_instances.read_coco_instances` of the instance pseudo-labels."""

    def __init__(self, load: ImageLoader, records: Mapping[str, Mapping], image_ids: Sequence[str],
                 *, min_score: float, seed: int):  # fmt: skip
        super().__init__(load, image_ids, seed=seed)
        self.records, self.min_score = records, min_score

    def __getitem__(self, key: tuple[int, int]):
        image_id, image, rng = self._image(key)
        found = decode_instances(self.records[image_id])
        if found.masks.shape[1:] != image.shape[:2]:
            raise ValueError(f"{image_id}: image is {image.shape[:2]} but its instances are {found.masks.shape[1:]}")
        keep = (found.scores > self.min_score) & found.masks.any(axis=(1, 2))
        masks = found.masks[keep]
        if rng.random() < 0.5:
            image, masks = image[:, ::-1], masks[:, :, ::-1]
        target = {
            "boxes": torch.from_numpy(mask_boxes(masks)).reshape(-1, 4),
            "labels": torch.from_numpy(found.classes[keep] + 1),
            "masks": torch.from_numpy(np.ascontiguousarray(masks, dtype=np.uint8)),
        }
        return torch.from_numpy(np.ascontiguousarray(T.to_chw(image), dtype=np.float32) / 255.0), target


def collate_lists(batch):
    """Detection batches: a tuple of images and a tuple of targets (images differ in size)."""
    return tuple(zip(*batch))


class SemanticCrops(EpochSamples):
    """DeepLab samples: random rescale, mirror and crop of an image and its pseudo-label PNG; pixels outside the
    image and unsure pseudo-labels are 255 (ignored by the loss)."""

    def __init__(self, load: ImageLoader, label_dir: str | Path, image_ids: Sequence[str], *,
                 crop_size: int, scale_range, seed: int):  # fmt: skip
        super().__init__(load, image_ids, seed=seed)
        self.label_dir, self.crop_size, self.scale_range = Path(label_dir), crop_size, scale_range

    def __getitem__(self, key: tuple[int, int]):
        image_id, image, rng = self._image(key)
        path = self.label_dir / f"{image_id}.png"
        if not path.exists():
            raise InputError(str(path), f"image {image_id!r} has no semantic pseudo-label")
        labels = read_label_png(path)
        if labels.shape != image.shape[:2]:
            raise InputError(str(path), f"pseudo-label is {labels.shape} but the image is {image.shape[:2]}")
        image, labels = scale_flip_crop(image, labels, self.scale_range, self.crop_size, rng)
        return torch.from_numpy(T.to_chw(image)), torch.from_numpy(labels.astype(np.int64))
