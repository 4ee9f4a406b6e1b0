"""Quality checks of IRNet's outputs against ground truth: do boundaries sit on borders, do displacements meet?

Used by the tests and by anyone judging a trained IRNet: both numbers need only ground truth and the maps.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .data.transforms import downsample_label_nearest
from .instances import find_centroids


def grid_labels(label: np.ndarray, grid_shape: tuple[int, int]) -> np.ndarray:
    """A full-resolution label map sampled onto the stride-4 grid (PIL nearest, as for training labels)."""
    grid = downsample_label_nearest(label, 4)
    out = np.full(grid_shape, 255, dtype=label.dtype)
    h, w = min(grid.shape[0], grid_shape[0]), min(grid.shape[1], grid_shape[1])
    out[:h, :w] = grid[:h, :w]
    return out


def boundary_contrast(boundary: np.ndarray, class_gt: np.ndarray) -> tuple[float, float]:
    """Mean boundary score on ground-truth borders and deep inside objects (stride-4 grid cells).

    Border cells: the void band (255) of the ground truth or a change of label between 4-neighbours.
    Interior cells: foreground cells at least two cells away from any border cell.
    """
    labels = grid_labels(class_gt, boundary.shape)
    border = labels == 255
    border[:-1] |= labels[:-1] != labels[1:]
    border[1:] |= labels[:-1] != labels[1:]
    border[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    border[:, 1:] |= labels[:, :-1] != labels[:, 1:]
    interior = (labels > 0) & (labels < 255) & ~ndimage.binary_dilation(border, iterations=2)
    if not border.any() or not interior.any():
        return float("nan"), float("nan")
    return float(boundary[border].mean()), float(boundary[interior].mean())


def centroid_spread_ratio(displacement: np.ndarray, object_gt: np.ndarray, iterations: int = 100) -> float:
    """How tightly the pixels of each object meet after following the field, relative to the object's size.

    For every ground-truth instance (ids 1..254) the grid cells are walked along the displacement field; the
    ratio is the RMS distance of their end points to the end points' mean, divided by the RMS distance of the
    cells themselves to their centroid, averaged over instances. 1 = no movement, 0 = a single point.
    """
    ids = grid_labels(object_gt, displacement.shape[1:])
    ends = find_centroids(displacement.astype(np.float32), iterations=iterations).astype(np.float64)
    ratios = []
    for instance_id in np.unique(ids):
        if instance_id in (0, 255):
            continue
        ys, xs = np.nonzero(ids == instance_id)
        if len(ys) < 4:
            continue
        start = np.stack([ys, xs]).astype(np.float64)
        end = ends[:, ys, xs]
        own = np.sqrt(((start - start.mean(axis=1, keepdims=True)) ** 2).sum(axis=0).mean())
        met = np.sqrt(((end - end.mean(axis=1, keepdims=True)) ** 2).sum(axis=0).mean())
        if own > 0:
            ratios.append(met / own)
    return float(np.mean(ratios)) if ratios else float("nan")
