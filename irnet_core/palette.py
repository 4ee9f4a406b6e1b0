"""The PASCAL VOC colour palette, shared by the demo generator, the exports and the figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def voc_palette(n: int = 256) -> np.ndarray:
    """Return the standard VOC palette as a uint8 array (n, 3): label bits spread over the colour channels."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for label in range(n):
        value, r, g, b = label, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[label] = (r, g, b)
    return palette


def write_palette_png(path: str | Path, label_map: np.ndarray) -> None:
    """Write a uint8 label map as a palette ('P' mode) PNG with the VOC colours, as VOC's own PNGs are."""
    if label_map.dtype != np.uint8 or label_map.ndim != 2:
        raise ValueError(f"label map must be uint8 (H, W), got {label_map.dtype} {label_map.shape}")
    image = Image.fromarray(label_map, mode="P")
    image.putpalette(voc_palette().reshape(-1).tolist())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a palette PNG as its raw indices (never through RGB), uint8 (H, W)."""
    with Image.open(path) as image:
        if image.mode not in ("P", "L"):
            raise ValueError(f"{path}: expected a palette or grayscale label PNG, got mode {image.mode}")
        return np.asarray(image, dtype=np.uint8).copy()
