"""Decoding photos and label PNGs, the same way for every dataset format.

Rules shared by all readers:

* **EXIF orientation** is handled by one helper, :func:`orient`, for photos and ground-truth PNGs alike, under
  a policy named by the dataset (``exif_orientation``): ``"ignore"`` uses the stored pixel grid, ``"apply"``
  turns the image upright as a photo viewer shows it. Sizes (:func:`image_size`) follow the same policy, so a
  size read from the header always equals the size of the decoded array. Defaults (documented in
  :mod:`irnet_core.data.dataset`): ``ignore`` for VOC and COCO, whose annotations were drawn on the stored grid
  (the reference code and pycocotools read it that way, and COCO records the stored width and height);
  ``apply`` for a plain folder, whose photos come from phones and whose masks come from tools such as labelme
  that annotate the upright image.
* **Decompression bombs**: an image with more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS`` raises
  :class:`~irnet_core.errors.InputError` (Pillow itself only warns below twice the limit and would decode it).
  Every other size loads.
* Every failure (missing, empty, truncated, corrupt file) is one :class:`InputError` line naming the file.
"""

from __future__ import annotations

import contextlib
import struct
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InputError

EXIF_POLICIES: tuple[str, ...] = ("ignore", "apply")

_ORIENTATION_TAG = 0x0112
# EXIF orientation value -> the transposition that makes the stored grid upright (values 1 and unknown: none).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIDES_SWAPPED = {5, 6, 7, 8}
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)

# Pillow reports a decompression bomb below twice its limit only as a warning. Turning that warning into an
# error needs warnings.catch_warnings, which edits process-wide state; the lock keeps concurrent opens (the
# dataset check decodes images in a thread pool) from restoring each other's filters out of order.
_BOMB_CHECK = threading.Lock()


def check_exif_policy(policy: str, where: object = "exif_orientation") -> str:
    if policy not in EXIF_POLICIES:
        raise InputError(where, f"must be one of {', '.join(EXIF_POLICIES)}, got {policy!r}")
    return policy


@contextlib.contextmanager
def _open(path: Path, what: str) -> Iterator[Image.Image]:
    """Open ``path`` with Pillow (header only); a missing file or a decompression bomb is an InputError.

    The file handle is ours, so it is closed even when Pillow gives up half-way.
    """
    if not path.is_file():
        raise InputError(path, f"{what} does not exist")
    with open(path, "rb") as stream:
        try:
            with _BOMB_CHECK, warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(stream)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise InputError(path, f"{what} is too large to decode safely ({exc})") from None
        with image:
            yield image


def _orientation(image: Image.Image) -> int:
    # A malformed EXIF block or tag value counts as "no orientation", for pixels and sizes alike.
    try:
        return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except (TypeError, ValueError, SyntaxError, struct.error):
        return 1


def orient(image: Image.Image, policy: str) -> Image.Image:
    """Apply ``policy`` ('ignore' or 'apply') to ``image``: the one place where EXIF orientation is decided."""
    if policy == "ignore":
        return image
    transpose = _UPRIGHT.get(_orientation(image))
    return image.transpose(transpose) if transpose is not None else image


def _oriented_size(image: Image.Image, policy: str) -> tuple[int, int]:
    """``(H, W)`` that :func:`orient` will produce, without decoding the pixels."""
    width, height = image.size
    if policy == "apply" and _orientation(image) in _SIDES_SWAPPED:
        width, height = height, width
    return int(height), int(width)


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


def load_image(path: str | Path, *, exif: str = "ignore") -> np.ndarray:
    """Load an image as uint8 ``(H, W, 3)`` RGB, oriented by the EXIF policy ``exif``.

    Grayscale, CMYK, RGBA/LA (alpha dropped), palette and 16-bit images are converted, never rejected.
    A missing, empty, truncated or corrupt file, or a decompression bomb, raises :class:`InputError` naming
    it: the pixel data are fully decoded here, so truncation cannot surface later.
    """
    path = Path(path)
    check_exif_policy(exif)
    try:
        with _open(path, "image file") as image:
            image.load()  # full decode: a truncated file fails now, not in a training step
            rgb = _to_rgb(orient(image, exif))
    except InputError:
        raise
    except _DECODE_ERRORS as exc:
        raise InputError(path, f"cannot decode image ({type(exc).__name__}: {exc})") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputError(path, f"decoded to an unusable array of shape {rgb.shape}")
    # A fresh, writable array: np.asarray over PIL memory is read-only, which C extensions (the CRF) refuse.
    return np.array(rgb, dtype=np.uint8, order="C", copy=True)


def image_size(path: str | Path, *, exif: str = "ignore") -> tuple[int, int]:
    """``(H, W)`` of an image as :func:`load_image` returns it, read from the header (cheap).

    :class:`InputError` if the file is missing, unreadable or a decompression bomb.
    """
    path = Path(path)
    check_exif_policy(exif)
    try:
        with _open(path, "image file") as image:
            return _oriented_size(image, exif)
    except InputError:
        raise
    except _DECODE_ERRORS as exc:
        raise InputError(path, f"cannot read image header ({type(exc).__name__}: {exc})") from None


def load_label_png(path: str | Path, *, exif: str = "ignore") -> np.ndarray:
    """Read a palette or grayscale label PNG as its raw indices, uint8 ``(H, W)`` (never through RGB).

    Oriented by the same policy as the photos (:func:`orient`), so that a mask stays on its image.
    """
    path = Path(path)
    check_exif_policy(exif)
    try:
        with _open(path, "label PNG") as image:
            if image.mode not in ("P", "L"):
                raise InputError(
                    path, f"cannot read label PNG (expected a palette or grayscale label PNG, got mode {image.mode})"
                )
            image.load()
            labels = np.asarray(orient(image, exif), dtype=np.uint8)
    except InputError:
        raise
    except _DECODE_ERRORS as exc:
        raise InputError(path, f"cannot read label PNG ({type(exc).__name__}: {exc})") from None
    return np.array(labels, dtype=np.uint8, order="C", copy=True)
