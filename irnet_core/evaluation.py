"""Scoring label maps against ground truth: CAM label maps over a sweep of background thresholds.

Pure functions over arrays (no files, no stores): the stage entry points in :mod:`irnet_core.pipeline` read
what they score and hand it in here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .errors import InputError
from .metrics import ConfusionMatrix, semantic_report


def cam_label_map(high_res: np.ndarray, keys: Sequence[int], threshold: float) -> np.ndarray:
    """Label map from CAMs: argmax over [threshold (background); CAMs], mapped to 0 / key+1 (method doc §2.5)."""
    if len(keys) == 0:
        return np.zeros(high_res.shape[1:], dtype=np.uint8)
    scores = np.concatenate(
        [np.full((1, *high_res.shape[1:]), threshold, dtype=np.float32), high_res.astype(np.float32)]
    )
    lookup = np.array([0, *[k + 1 for k in keys]], dtype=np.uint8)
    return lookup[scores.argmax(axis=0)]


CamSource = Callable[[], tuple[np.ndarray, Sequence[int]]]


def sweep_cam_thresholds(
    samples: Iterable[tuple[str, np.ndarray, CamSource]], thresholds: Sequence[float], n_classes: int
) -> dict[float, ConfusionMatrix]:
    """Confusion matrices of CAM label maps at several background thresholds.

    ``samples`` yields ``(name, ground truth (H, W), load)`` where ``load() -> (high_res (K, H, W), keys)``; the
    CAMs of one image are loaded once and scored at every threshold, one image at a time.
    """
    matrices = {float(t): ConfusionMatrix(n_classes + 1) for t in thresholds}
    for name, gt, load in samples:
        high_res, keys = load()
        if high_res.shape[1:] != gt.shape:
            raise InputError(name, f"ground truth is {gt.shape} but the CAMs are {high_res.shape[1:]}")
        for threshold, matrix in matrices.items():
            matrix.update(gt, cam_label_map(high_res, keys, threshold))
    return matrices


def sweep_summary(matrices: dict[float, ConfusionMatrix], classes: Sequence[str]) -> dict:
    """mIoU per threshold, and the best threshold with its mIoU."""
    sweep = {f"{t:g}": semantic_report(m, ["background", *classes])["miou"] for t, m in matrices.items()}
    best = max(matrices, key=lambda t: matrices[t].miou())
    return {"sweep": sweep, "best_threshold": best, "best_miou": matrices[best].miou()}
