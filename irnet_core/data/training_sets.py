"""Training datasets of the two networks that learn from image-level labels (method doc §2.3, §2.9).

Both are indexed by ``(epoch, index)`` keys, which :class:`irnet_core.training.EpochSampler` yields: a sample's
augmentation is drawn from ``sample_rng(seed, epoch, index)``, so it does not depend on batching, on loader
workers (persistent or not) or on where a resumed training starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from ..training import sample_rng
from . import transforms as T


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


class ClassificationCrops(torch.utils.data.Dataset):
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
        self.load, self.image_ids, self.targets = load, list(image_ids), targets
        self.crop_size, self.resize_long, self.seed = crop_size, resize_long, seed

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        rng = sample_rng(self.seed, epoch, index)
        image = self.load(self.image_ids[index])
        image = T.random_resize_long(image, int(self.resize_long[0]), int(self.resize_long[1]), rng)
        image = T.normalize(image)
        image, _ = T.random_hflip(image, None, rng)
        image, _ = T.random_crop(image, None, self.crop_size, rng)
        return torch.from_numpy(np.ascontiguousarray(T.to_chw(image))), torch.from_numpy(self.targets[index])


class RelationCrops(torch.utils.data.Dataset):
    """IRNet samples: random rescale, flip and crop of an image and its relation labels, labels then on the
    stride-4 grid. ``relations[id]`` is a store reader holding that image's ``labels``."""

    def __init__(
        self, load: ImageLoader, image_ids: Sequence[str], relations: Mapping, *, crop_size: int, scale_range, seed: int
    ):
        self.load, self.image_ids, self.relations = load, list(image_ids), relations
        self.crop_size, self.scale_range, self.seed = crop_size, scale_range, seed

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        rng = sample_rng(self.seed, epoch, index)
        image_id = self.image_ids[index]
        image = self.load(image_id)
        labels = self.relations[image_id].read(image_id, ["labels"])[0]["labels"]
        if labels.shape != image.shape[:2]:
            raise ValueError(f"{image_id}: image is {image.shape[:2]} but its relation labels are {labels.shape}")
        image, labels = T.random_scale(image, labels, float(self.scale_range[0]), float(self.scale_range[1]), rng)
        image = T.normalize(image)
        image, labels = T.random_hflip(image, labels, rng)
        image, labels = T.random_crop(image, labels, self.crop_size, rng)
        grid = T.downsample_label_nearest(labels, 4)
        return torch.from_numpy(np.ascontiguousarray(T.to_chw(image))), torch.from_numpy(grid.astype(np.int64))
