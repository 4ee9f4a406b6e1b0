"""Quality checks of IRNet's outputs against ground truth: do boundaries sit on borders, do displacements meet?

Used by the tests and by anyone judging a trained IRNet: both numbers need only ground truth and the maps.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .instances import find_centroids
from .transforms import downsample_label_nearest


def grid_labels(label: np.ndarray, grid_shape: tuple[int, int]) -> np.ndarray:
    """A full-resolution label map sampled onto the stride-4 grid (PIL nearest, as for training labels)."""
    grid = downsample_label_nearest(label, 4)
    out = np.full(grid_shape, 255, dtype=label.dtype)
    h, w = min(grid.shape[0], grid_shape[0]), min(grid.shape[1], grid_shape[1])
    out[:h, :w] = grid[:h, :w]
    return out


def walk_instances(
    displacement: np.ndarray, object_gt: np.ndarray, iterations: int = 100
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For every ground-truth instance (ids 1..254, at least 4 grid cells): (start cells, end points), each (2, n).

    End points come from walking every grid cell along the displacement field (irnet_core.instances).
    """
    return list(_walks_by_instance(displacement, object_gt, iterations).values())


def _walks_by_instance(
    displacement: np.ndarray, object_gt: np.ndarray, iterations: int
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    ids = grid_labels(object_gt, displacement.shape[1:])
    ends = find_centroids(displacement.astype(np.float32), iterations=iterations).astype(np.float64)
    walks = {}
    for instance_id in np.unique(ids):
        if instance_id in (0, 255):
            continue
        ys, xs = np.nonzero(ids == instance_id)
        if len(ys) >= 4:
            walks[int(instance_id)] = (np.stack([ys, xs]).astype(np.float64), ends[:, ys, xs])
    return walks


def same_class_merges(
    displacement: np.ndarray,
    object_gt: np.ndarray,
    instance_classes: np.ndarray,
    iterations: int = 100,
    meet_distance: float = 2.5,
) -> dict[str, int]:
    """How often two ground-truth instances of one class meet in one point after following the field, and
    so come out as one instance: pairs that touch (within 2 grid cells of each other) and pairs apart, and how
    many of each have mean end points within ``meet_distance`` cells (about instance extraction's
    weak_threshold). ``instance_classes[k]`` is the class of instance id k + 1 of ``object_gt``."""
    walks = _walks_by_instance(displacement, object_gt, iterations)
    cells = grid_labels(object_gt, displacement.shape[1:])
    counts = {"touching": 0, "touching_merged": 0, "apart": 0, "apart_merged": 0}
    ids = sorted(walks)
    for n, a in enumerate(ids):
        near_a = ndimage.binary_dilation(cells == a, iterations=2)
        for b in ids[n + 1 :]:
            if instance_classes[a - 1] != instance_classes[b - 1]:
                continue
            kind = "touching" if (near_a & (cells == b)).any() else "apart"
            gap = np.linalg.norm(walks[a][1].mean(axis=1) - walks[b][1].mean(axis=1))
            counts[kind] += 1
            counts[f"{kind}_merged"] += int(gap < meet_distance)
    return counts


def _rms_spread(points: np.ndarray) -> float:
    return float(np.sqrt(((points - points.mean(axis=1, keepdims=True)) ** 2).sum(axis=0).mean()))


def class_borders(class_gt: np.ndarray, grid_shape: tuple[int, int]) -> np.ndarray:
    """Grid cells on a ground-truth class border: the void band (255) or a label change between 4-neighbours."""
    labels = grid_labels(class_gt, grid_shape)
    border = labels == 255
    for axis in (0, 1):
        change = np.diff(labels.astype(np.int16), axis=axis) != 0
        lead = [slice(None)] * 2
        lead[axis] = slice(None, -1)
        trail = [slice(None)] * 2
        trail[axis] = slice(1, None)
        border[tuple(lead)] |= change
        border[tuple(trail)] |= change
    return border


def boundary_precision_recall(
    boundary: np.ndarray, class_gt: np.ndarray, threshold: float = 0.5, tolerance: int = 1
) -> tuple[int, int, int, int]:
    """Counts for the boundary map's precision and recall on ground-truth class borders (stride-4 grid):
    (predicted cells near a border, predicted cells, border cells near a prediction, border cells), where
    "near" is within ``tolerance`` cells and a predicted cell is one scoring at least ``threshold``."""
    border = class_borders(class_gt, boundary.shape)
    predicted = boundary >= threshold
    structure = np.ones((2 * tolerance + 1, 2 * tolerance + 1), bool)
    near_border = ndimage.binary_dilation(border, structure) if border.any() else border
    near_predicted = ndimage.binary_dilation(predicted, structure) if predicted.any() else predicted
    return (
        int((predicted & near_border).sum()),
        int(predicted.sum()),
        int((border & near_predicted).sum()),
        int(border.sum()),
    )


def relation_label_counts(relations: np.ndarray, class_gt: np.ndarray) -> dict[str, int]:
    """How right and how complete mined relation labels (0 bg, c + 1, 255 unsure) are against ground truth
    (void pixels left out): confident foreground pixels and how many have the true class, confident
    background pixels and how many are true background, and all pixels."""
    valid = class_gt != 255
    rel, gt = relations[valid], class_gt[valid]
    foreground = (rel != 0) & (rel != 255)
    background = rel == 0
    return {
        "pixels": int(valid.sum()),
        "fg": int(foreground.sum()),
        "fg_correct": int((foreground & (rel == gt)).sum()),
        "bg": int(background.sum()),
        "bg_correct": int((background & (gt == 0)).sum()),
        "gt_fg": int((gt != 0).sum()),
        "gt_fg_confident": int(((gt != 0) & foreground & (rel == gt)).sum()),
    }


def endpoint_errors(displacement: np.ndarray, object_gt: np.ndarray, iterations: int = 100) -> list[float]:
    """Per ground-truth instance: the mean distance (grid cells) from the end points of its cells, after
    following the displacement field, to the instance's true centre (the mean of its cells)."""
    return [
        float(np.linalg.norm(end - start.mean(axis=1, keepdims=True), axis=0).mean())
        for start, end in walk_instances(displacement, object_gt, iterations)
    ]
