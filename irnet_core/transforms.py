"""Preprocessing primitives of the reference code (method doc §2.1 and §2.9), in numpy and PIL.

Contracts:

* Images are numpy uint8 ``(H, W, 3)`` until :func:`normalize`, which returns float32 ``(H, W, 3)``;
  the crops accept either. Label maps are uint8 ``(H, W)``.
* Resizing goes through PIL exactly like the reference: bicubic for images, nearest for label maps;
  the target size of a scale ``s`` is ``(round(H*s), round(W*s))``.
* Every random operation takes an explicit ``numpy.random.Generator``; nothing touches global state,
  so a pipeline seeded once is reproducible. Functions that transform an image and an optional label
  apply the *same* random draw to both and return ``(image, label_or_None)``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

Size = tuple[int, int]


def _as_hw(size: int | Size) -> Size:
    """Accept ``S`` (square) or ``(H, W)``."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def _check_rgb_uint8(img: np.ndarray, what: str) -> None:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{what}: expected uint8 (H, W, 3), got {img.dtype} {img.shape}")


def _check_label(label: np.ndarray, what: str) -> None:
    if label.dtype != np.uint8 or label.ndim != 2:
        raise ValueError(f"{what}: expected uint8 (H, W) label map, got {label.dtype} {label.shape}")


def normalize(img: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` -> float32 ``(H, W, 3)``: ``(img/255 - mean) / std`` with ImageNet statistics."""
    _check_rgb_uint8(img, "normalize")
    out = img.astype(np.float32) / np.float32(255.0)
    out -= np.asarray(IMAGENET_MEAN, dtype=np.float32)
    out /= np.asarray(IMAGENET_STD, dtype=np.float32)
    return out


def to_chw(img: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` -> contiguous ``(C, H, W)`` (same dtype)."""
    if img.ndim != 3:
        raise ValueError(f"to_chw: expected (H, W, C), got shape {img.shape}")
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def scaled_size(size: Size, scale: float) -> Size:
    """Target size of rescaling ``(H, W)`` by ``scale``: ``(round(H*s), round(W*s))``, at least 1 each.

    Python's ``round`` (ties to even) matches ``np.round`` used by the reference code.
    """
    h, w = size
    return max(1, round(h * scale)), max(1, round(w * scale))


def long_side_scale(size: Size, max_long_side: int | None) -> float:
    """The factor that brings an image of ``size`` down to a long side of ``max_long_side`` (1.0 if it fits or
    there is no cap): images of any size reach the networks at a size their memory allows."""
    long_side = max(size)
    return 1.0 if max_long_side is None or long_side <= max_long_side else max_long_side / long_side


def resize_image(img: np.ndarray, size: Size) -> np.ndarray:
    """Resize an RGB uint8 image to ``(H, W)`` with PIL bicubic (PIL clamps the overshoot to 0..255)."""
    _check_rgb_uint8(img, "resize_image")
    h, w = size
    if (h, w) == img.shape[:2]:
        return img.copy()
    return np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BICUBIC))


def resize_label(label: np.ndarray, size: Size) -> np.ndarray:
    """Resize a uint8 label map to ``(H, W)`` with PIL nearest (labels are never interpolated)."""
    _check_label(label, "resize_label")
    h, w = size
    if (h, w) == label.shape:
        return label.copy()
    return np.asarray(Image.fromarray(label).resize((w, h), Image.Resampling.NEAREST))


def downsample_label_nearest(label: np.ndarray, factor: int = 4) -> np.ndarray:
    """Reproduce ``PIL nearest`` resize of a label map to ``round(size / factor)`` per axis, in numpy.

    PIL maps output index ``i`` to source index ``floor((i + 0.5) * in / out)``; for an exact multiple of
    ``factor = 4`` that is pixel ``4i + 2`` (method doc §2.9 step 3). Works for any 2-D array dtype.
    """
    if label.ndim != 2:
        raise ValueError(f"downsample_label_nearest: expected a 2-D label map, got shape {label.shape}")
    if factor < 1:
        raise ValueError(f"downsample_label_nearest: factor must be >= 1, got {factor}")
    h, w = label.shape
    oh, ow = scaled_size((h, w), 1.0 / factor)
    rows = np.minimum(((np.arange(oh) + 0.5) * h / oh).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(ow) + 0.5) * w / ow).astype(np.int64), w - 1)
    return np.ascontiguousarray(label[rows[:, None], cols[None, :]])


def random_resize_long(img: np.ndarray, lo: int, hi: int, rng: np.random.Generator) -> np.ndarray:
    """Draw an integer ``L`` uniformly in ``[lo, hi]`` (both inclusive) and rescale so the long side is ``L``."""
    target_long = int(rng.integers(lo, hi, endpoint=True))
    h, w = img.shape[:2]
    return resize_image(img, scaled_size((h, w), target_long / max(h, w)))


def random_scale(
    img: np.ndarray, label: np.ndarray | None, lo: float, hi: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """Draw ``s ~ U[lo, hi)`` and rescale image (bicubic) and label (nearest) by the same ``s``."""
    scale = float(rng.uniform(lo, hi))
    size = scaled_size(img.shape[:2], scale)
    return resize_image(img, size), (None if label is None else resize_label(label, size))


def random_hflip(
    img: np.ndarray, label: np.ndarray | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """Mirror image and label left-right together with probability 0.5 (always returns copies)."""
    if rng.random() < 0.5:
        img = img[:, ::-1]
        label = None if label is None else label[:, ::-1]
    return np.ascontiguousarray(img), (None if label is None else np.ascontiguousarray(label))


def _crop_axis(length: int, crop: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """Return ``(container_start, image_start, extent)`` for one axis, as in the reference crop box.

    A longer image gets a random window; a shorter (or equal) one is placed at a random offset.
    """
    space = length - crop
    if space > 0:
        return 0, int(rng.integers(0, space + 1)), crop
    return int(rng.integers(0, -space + 1)), 0, length


def random_crop(
    img: np.ndarray,
    label: np.ndarray | None,
    size: int | Size,
    rng: np.random.Generator,
    img_fill: float = 0.0,
    label_fill: int = 255,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Crop image (and label) to a ``size`` container filled with ``img_fill`` / ``label_fill``.

    Per axis: if the image is larger than the container a random window of it is taken, otherwise the whole
    image lands at a random offset inside the container. The same box is used for image and label. The
    draw order is rows first, then columns.
    """
    ch, cw = _as_hw(size)
    h, w = img.shape[:2]
    if label is not None and label.shape[:2] != (h, w):
        raise ValueError(f"random_crop: label {label.shape} does not match image {img.shape}")
    cy, iy, eh = _crop_axis(h, ch, rng)
    cx, ix, ew = _crop_axis(w, cw, rng)
    out = np.full((ch, cw) + img.shape[2:], img_fill, dtype=img.dtype)
    out[cy : cy + eh, cx : cx + ew] = img[iy : iy + eh, ix : ix + ew]
    if label is None:
        return out, None
    out_label = np.full((ch, cw) + label.shape[2:], label_fill, dtype=label.dtype)
    out_label[cy : cy + eh, cx : cx + ew] = label[iy : iy + eh, ix : ix + ew]
    return out, out_label


def top_left_crop(img: np.ndarray, size: int | Size, fill: float = 0) -> np.ndarray:
    """Place ``img`` at (0, 0) of a ``size`` container filled with ``fill``; overflow is cut off."""
    ch, cw = _as_hw(size)
    out = np.full((ch, cw) + img.shape[2:], fill, dtype=img.dtype)
    eh, ew = min(ch, img.shape[0]), min(cw, img.shape[1])
    out[:eh, :ew] = img[:eh, :ew]
    return out
