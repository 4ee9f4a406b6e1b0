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
* **Pixel limit** (``max_pixels``, the config's ``dataset.max_image_pixels``): an image with more pixels raises
  :class:`~irnet_core.errors.InputError` before anything is decoded. The default is Pillow's own
  ``Image.MAX_IMAGE_PIXELS`` (89,478,485 px), which guards against decompression bombs; ``None`` means no
  limit. This module is the one place where the limit is applied: Pillow's own check is suspended while a
  header is opened here (under a lock) and replaced by this one, so a raised limit really admits larger images
  (Pillow would otherwise refuse anything over twice its limit) and a lowered one really refuses.
* Every failure (missing, empty, truncated, corrupt file) is one :class:`InputError` sentence naming the file
  once (Pillow's own wording, which repeats the path, is not passed on).
"""

from __future__ import annotations

import contextlib
import struct
import threading
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

# Pillow's limit when this module was imported: the default of dataset.max_image_pixels.
DEFAULT_MAX_PIXELS: int | None = Image.MAX_IMAGE_PIXELS
# Pillow's check reads a module-wide setting; suspending it for one open must not race another thread's open.
_LIMIT_SWAP = threading.Lock()


def check_max_pixels(value: object, where: object = "dataset.max_image_pixels") -> int | None:
    """``None`` (no limit) or a positive integer."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise InputError(where, f"must be a positive integer or null (no limit), got {value!r}")


def _pillow_problem(exc: BaseException, path: Path) -> str:
    """What went wrong, in words that do not repeat the path (Pillow's messages often quote it)."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image format Pillow reads, or its header is corrupt"
    text = str(exc).replace(repr(str(path)), "").replace(str(path), "").strip(" :")
    return f"{text} ({type(exc).__name__})" if text else type(exc).__name__


def check_exif_policy(policy: str, where: object = "exif_orientation") -> str:
    if policy not in EXIF_POLICIES:
        raise InputError(where, f"must be one of {', '.join(EXIF_POLICIES)}, got {policy!r}")
    return policy


@contextlib.contextmanager
def _open(path: Path, what: str, max_pixels: int | None) -> Iterator[Image.Image]:
    """Open ``path`` with Pillow (header only); a missing file or one over ``max_pixels`` is an InputError.

    The file handle is ours, so it is closed even when Pillow gives up half-way.
    """
    if not path.is_file():
        raise InputError(path, f"{what} does not exist")
    with open(path, "rb") as stream:
        with _LIMIT_SWAP:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(stream)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        with image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise InputError(
                    path,
                    f"{what} has {width}x{height} = {width * height:,} pixels, over dataset.max_image_pixels "
                    f"({max_pixels:,}); raise that limit to read it (memory per pixel: docs/scaling.md)",
                )
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


def load_image(path: str | Path, *, exif: str = "ignore", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load an image as uint8 ``(H, W, 3)`` RGB, oriented by the EXIF policy ``exif``.

    Grayscale, CMYK, RGBA/LA (alpha dropped), palette and 16-bit images are converted, never rejected.
    A missing, empty, truncated or corrupt file, or one over ``max_pixels``, raises :class:`InputError` naming
    it: the pixel data are fully decoded here, so truncation cannot surface later.
    """
    path = Path(path)
    check_exif_policy(exif)
    try:
        with _open(path, "image file", max_pixels) as image:
            image.load()  # full decode: a truncated file fails now, not in a training step
            rgb = _to_rgb(orient(image, exif))
    except InputError:
        raise
    except _DECODE_ERRORS as exc:
        raise InputError(path, f"cannot decode image: {_pillow_problem(exc, path)}") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputError(path, f"decoded to an unusable array of shape {rgb.shape}")
    # A fresh, writable array: np.asarray over PIL memory is read-only, which C extensions (the CRF) refuse.
    return np.array(rgb, dtype=np.uint8, order="C", copy=True)


def image_size(
    path: str | Path, *, exif: str = "ignore", max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[int, int]:
    """``(H, W)`` of an image as :func:`load_image` returns it, read from the header (cheap).

    :class:`InputError` if the file is missing, unreadable or over ``max_pixels``.
    """
    path = Path(path)
    check_exif_policy(exif)
    try:
        with _open(path, "image file", max_pixels) as image:
            return _oriented_size(image, exif)
    except InputError:
        raise
    except _DECODE_ERRORS as exc:
        raise InputError(path, f"cannot read image header: {_pillow_problem(exc, path)}") from None


def load_label_png(
    path: str | Path, *, exif: str = "ignore", max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Read a palette or grayscale label PNG as its raw indices, uint8 ``(H, W)`` (never through RGB).

    Oriented by the same policy as the photos (:func:`orient`), so that a mask stays on its image.
    """
    path = Path(path)
    check_exif_policy(exif)
    try:
        with _open(path, "label PNG", max_pixels) as image:
            if image.mode not in ("P", "L"):
                raise InputError(
                    path, f"cannot read label PNG (expected a palette or grayscale label PNG, got mode {image.mode})"
                )
            image.load()
            labels = np.asarray(orient(image, exif), dtype=np.uint8)
    except InputError:
        raise
    except _DECODE_ERRORS as exc:
        raise InputError(path, f"cannot read label PNG: {_pillow_problem(exc, path)}") from None
    return np.array(labels, dtype=np.uint8, order="C", copy=True)
