"""Stage G: instance pseudo-labels from CAMs, boundaries and displacements (method doc §2.13), plus the
CAM-components baseline and a compact storage form of instance sets.

Grids: the image is (H, W); CAM, boundary and displacement live on the stride-4 grid (h, w) with
``h = (H - 1) // 4 + 1`` and ``w = (W - 1) // 4 + 1``. Displacement channel 0 is dy, channel 1 is dx, in grid
cells. Classes are 0-based foreground indices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from .settings import InstanceSettings, WalkSettings

# 4-connectivity (no diagonals), as in the official code's connectivity=1 labelling.
_FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)

PropagateFn = Callable[..., torch.Tensor]
UpsampleFn = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]


@dataclass(eq=False)
class Instances:
    """A set of M instance detections of one image.

    ``masks`` bool (M, H, W); ``classes`` int64 (M,) 0-based foreground class; ``scores`` float32 (M,).
    The constructor coerces the dtypes and checks that the three agree in M.
    """

    masks: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        self.masks = np.asarray(self.masks, dtype=bool)
        self.classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if self.masks.ndim != 3:
            raise ValueError(f"Instances: masks must be (M, H, W), got shape {self.masks.shape}")
        m = self.masks.shape[0]
        if self.classes.shape != (m,) or self.scores.shape != (m,):
            raise ValueError(f"Instances: {m} masks but {self.classes.size} classes and {self.scores.size} scores")

    @classmethod
    def empty(cls, size: tuple[int, int]) -> Instances:
        """No detections for an image of ``size`` (H, W)."""
        height, width = size
        return cls(np.zeros((0, height, width), bool), np.zeros(0, np.int64), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return int(self.masks.shape[0])


def grid_size(size: tuple[int, int]) -> tuple[int, int]:
    """Stride-4 grid (h, w) of an image of ``size`` (H, W)."""
    return (int(size[0]) - 1) // 4 + 1, (int(size[1]) - 1) // 4 + 1


# --------------------------------------------------------------------------------------------------------------
# Centroids and clusters


def _check_displacement(displacement: np.ndarray, where: str) -> np.ndarray:
    displacement = np.asarray(displacement, dtype=np.float64)
    if displacement.ndim != 3 or displacement.shape[0] != 2 or displacement.shape[1] < 1 or displacement.shape[2] < 1:
        raise ValueError(f"{where}: displacement must be (2, h, w), got shape {displacement.shape}")
    if not np.all(np.isfinite(displacement)):
        raise ValueError(f"{where}: displacement contains NaN or infinite values")
    return displacement


def find_centroids(displacement: np.ndarray, iterations: int) -> np.ndarray:
    """Walk every grid pixel along the displacement field and return where it ends, int64 (2, h, w).

    Each pixel starts at its own coordinate ``p = (y, x)``; every step adds the displacement bilinearly
    interpolated at the sub-pixel position ``p`` (floor/ceil neighbours weighted by the fractional part) and then
    clips ``p`` to ``[0, h-1] x [0, w-1]``; both coordinates move simultaneously. After ``iterations`` steps the
    positions are rounded (half to even, as numpy does). Computed in float64.
    """
    displacement = _check_displacement(displacement, "find_centroids")
    if iterations < 0:
        raise ValueError(f"find_centroids: iterations must be >= 0, got {iterations}")
    _, height, width = displacement.shape
    field = displacement.reshape(2, -1)
    pos_y, pos_x = (axis.astype(np.float64).reshape(-1) for axis in np.mgrid[0:height, 0:width])

    for _ in range(iterations):
        y0 = np.floor(pos_y).astype(np.int64)
        x0 = np.floor(pos_x).astype(np.int64)
        # ceil, not floor + 1: at integer positions and on the last row/column this stays inside the grid.
        y1 = np.ceil(pos_y).astype(np.int64)
        x1 = np.ceil(pos_x).astype(np.int64)
        fy = pos_y - y0
        fx = pos_x - x0
        step = (
            field[:, y0 * width + x0] * ((1 - fy) * (1 - fx))
            + field[:, y0 * width + x1] * ((1 - fy) * fx)
            + field[:, y1 * width + x0] * (fy * (1 - fx))
            + field[:, y1 * width + x1] * (fy * fx)
        )
        pos_y = np.clip(pos_y + step[0], 0, height - 1)
        pos_x = np.clip(pos_x + step[1], 0, width - 1)

    return np.stack([np.round(pos_y), np.round(pos_x)]).astype(np.int64).reshape(2, height, width)


def cluster_centroids(centroids: np.ndarray, displacement: np.ndarray, weak_threshold: float) -> np.ndarray:
    """Group grid pixels by the weak-displacement region their walk ends in; int64 (h, w) ids ``0..N-1``.

    Weak regions are the 4-connected components of ``||D|| < weak_threshold`` (near-zero displacement marks
    an instance centre). A pixel's cluster is the component containing its converged centroid; pixels whose
    centroid lies outside every weak region share one extra cluster. Ids are made consecutive in the order of
    the component labels, so that extra cluster, when present, is id 0.
    """
    displacement = _check_displacement(displacement, "cluster_centroids")
    centroids = np.asarray(centroids)
    _, height, width = displacement.shape
    if centroids.shape != (2, height, width) or not np.issubdtype(centroids.dtype, np.integer):
        raise ValueError(
            f"cluster_centroids: centroids must be integer (2, {height}, {width}), got {centroids.dtype} {centroids.shape}"
        )
    if centroids[0].min() < 0 or centroids[0].max() >= height or centroids[1].min() < 0 or centroids[1].max() >= width:
        raise ValueError("cluster_centroids: centroids lie outside the grid")

    weak = np.hypot(displacement[0], displacement[1]) < weak_threshold
    components, _ = ndimage.label(weak, structure=_FOUR_CONNECTED)
    landed = components[centroids[0], centroids[1]]
    _, consecutive = np.unique(landed, return_inverse=True)
    return consecutive.reshape(height, width).astype(np.int64)


# --------------------------------------------------------------------------------------------------------------
# Extraction


def _winner_map(scores: np.ndarray, bg_threshold: float) -> np.ndarray:
    """argmax over ``[bg_threshold; scores]`` as int64 (H, W): 0 = background, r + 1 = row r.

    Ties go to the earlier channel, so a score equal to the threshold is background. Computed without
    materialising the concatenated stack, which for many instance rows would double the peak memory.
    """
    if scores.shape[0] == 0:
        return np.zeros(scores.shape[1:], dtype=np.int64)
    best = np.argmax(scores, axis=0)
    return np.where(scores.max(axis=0) > np.float32(bg_threshold), best + 1, 0).astype(np.int64)


def _fragments(
    winner: np.ndarray, scores: np.ndarray, row_classes: np.ndarray, min_area: float, reduce=ndimage.mean
) -> Instances:
    """Split each row's winning region of ``winner`` (0 = background, r + 1 = row r) into 4-connected fragments.

    A fragment's score is the mean of its row's score map over its pixels (``reduce``; the CAM-components
    baseline keeps the maximum), or 0 when its area is below
    ``min_area`` pixels (kept, never dropped, but no training target of the final models). The official code
    scores by the maximum, which the row's normalisation puts at 1.0 for most instances: ties that leave the
    ranking, and so AP, to chance; the mean ranks a mask by how strongly the walk supports all of it
    (docs/method-notes.md, "Instance scores"). Order: by row, then by the raster order of the fragments' first
    pixels.
    """
    masks: list[np.ndarray] = []
    classes: list[int] = []
    frag_scores: list[float] = []
    for value in np.unique(winner):
        if value == 0:
            continue
        row = int(value) - 1
        components, count = ndimage.label(winner == value, structure=_FOUR_CONNECTED)
        index = np.arange(1, count + 1)
        areas = np.bincount(components.reshape(-1), minlength=count + 1)[1:]
        means = np.atleast_1d(reduce(scores[row], labels=components, index=index))
        for label, area, mean in zip(index, areas, means):
            masks.append(components == label)
            classes.append(int(row_classes[row]))
            frag_scores.append(0.0 if area < min_area else float(mean))
    if not masks:
        return Instances.empty(winner.shape)
    return Instances(np.stack(masks), np.asarray(classes, np.int64), np.asarray(frag_scores, np.float32))


def _as_keys(keys: Sequence[int] | np.ndarray | torch.Tensor, n_channels: int, where: str) -> np.ndarray:
    if isinstance(keys, torch.Tensor):
        keys = keys.detach().cpu().numpy()
    key_array = np.asarray(keys, dtype=np.int64).reshape(-1)
    if key_array.size != n_channels:
        raise ValueError(f"{where}: {key_array.size} keys for {n_channels} CAM channels")
    if key_array.size and key_array.min() < 0:
        raise ValueError(f"{where}: class keys must be >= 0, got {key_array.tolist()}")
    return key_array


def _to_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


@dataclass(frozen=True)
class InstanceScores:
    """Propagated instance scores of one image, before the background threshold: ``scores`` float32
    (R, H, W), one row per (class, centroid cluster) in class-major order, divided by their global maximum;
    ``row_classes`` int64 (R,) the 0-based class of each row."""

    scores: np.ndarray
    row_classes: np.ndarray

    @classmethod
    def empty(cls, size: tuple[int, int]) -> InstanceScores:
        return cls(np.zeros((0, *size), np.float32), np.zeros(0, np.int64))


def instance_scores(
    cam: np.ndarray | torch.Tensor,
    keys: Sequence[int] | np.ndarray | torch.Tensor,
    boundary: np.ndarray | torch.Tensor,
    displacement: np.ndarray | torch.Tensor,
    size: tuple[int, int],
    walk: WalkSettings,
    *,
    centroid_iterations: int,
    weak_threshold: float,
    device: torch.device | str = "cpu",
    propagate_fn: PropagateFn | None = None,
    upsample_fn: UpsampleFn | None = None,
) -> InstanceScores:
    """The instance rows of one image (method doc §2.13), everything of :func:`extract_instances` up to the
    background threshold: centroid walk and clustering into N clusters; instance CAMs
    ``X[k*N + n] = cam[k] * (cluster == n)``; random walk of all K*N rows; x4 upsampling, crop and division by
    the global maximum. Kept apart from :func:`instances_from_scores` so that a threshold sweep needs one walk.
    """
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ValueError(f"extract_instances: image size must be positive, got {size}")
    grid_h, grid_w = grid_size((height, width))
    cam_t = torch.as_tensor(cam).detach().to(device="cpu", dtype=torch.float32)
    if cam_t.ndim != 3 or tuple(cam_t.shape[1:]) != (grid_h, grid_w):
        raise ValueError(
            f"extract_instances: cam must be (K, {grid_h}, {grid_w}) for image {height}x{width}, got {tuple(cam_t.shape)}"
        )
    key_array = _as_keys(keys, cam_t.shape[0], "extract_instances")
    boundary_t = torch.as_tensor(boundary).detach().to(device="cpu", dtype=torch.float32)
    if tuple(boundary_t.shape) != (grid_h, grid_w):
        raise ValueError(f"extract_instances: boundary must be ({grid_h}, {grid_w}), got {tuple(boundary_t.shape)}")
    disp = _to_numpy(displacement)
    if disp.shape != (2, grid_h, grid_w):
        raise ValueError(f"extract_instances: displacement must be (2, {grid_h}, {grid_w}), got {disp.shape}")
    if key_array.size == 0:
        return InstanceScores.empty((height, width))

    if propagate_fn is None or upsample_fn is None:
        from . import random_walk  # lazy: keeps this module importable without the random-walk code

        propagate_fn = propagate_fn or random_walk.propagate
        upsample_fn = upsample_fn or random_walk.upsample_scores

    centroids = find_centroids(disp, centroid_iterations)
    clusters = torch.from_numpy(cluster_centroids(centroids, disp, weak_threshold))
    n_clusters = int(clusters.max()) + 1
    cluster_masks = (clusters[None] == torch.arange(n_clusters)[:, None, None]).to(torch.float32)  # (N, h, w)
    instance_cams = (cam_t[:, None] * cluster_masks[None]).reshape(-1, grid_h, grid_w)  # row = k * N + n

    with torch.no_grad():
        walked = propagate_fn(
            instance_cams.to(device), boundary_t.to(device), beta=walk.beta, exp_times=walk.exp_times,
            radius=walk.radius,
        )  # fmt: skip
        scores_t = upsample_fn(walked, (height, width))
    # An all-zero walk divided by its global max gives NaN; NaN would win every argmax, so treat it as no signal.
    scores = torch.nan_to_num(scores_t.detach().to("cpu", torch.float32), nan=0.0).numpy()
    if scores.shape != (instance_cams.shape[0], height, width):
        raise ValueError(
            f"extract_instances: upsampled scores have shape {scores.shape}, expected {(instance_cams.shape[0], height, width)}"
        )
    return InstanceScores(scores, np.repeat(key_array, n_clusters))


def instances_from_scores(rows: InstanceScores, bg_threshold: float, min_fragment: float) -> Instances:
    """Argmax of the rows against a constant background channel ``bg_threshold``; every row's winning region
    is split into 4-connected fragments at full resolution, each one detection of the row's class with score
    = the row's mean over it, except fragments smaller than ``min_fragment * H * W`` pixels (score 0)."""
    height, width = rows.scores.shape[1:]
    if rows.scores.shape[0] == 0:
        return Instances.empty((height, width))
    winner = _winner_map(rows.scores, bg_threshold)
    return _fragments(winner, rows.scores, rows.row_classes, min_fragment * height * width)


def instance_class_map(rows: InstanceScores, bg_threshold: float) -> np.ndarray:
    """The semantic label map uint8 (H, W) that the instance rows give (0 background, class + 1)."""
    lookup = np.concatenate([[0], rows.row_classes + 1]).astype(np.uint8)
    return lookup[_winner_map(rows.scores, bg_threshold)]


def extract_instances(
    cam: np.ndarray | torch.Tensor,
    keys: Sequence[int] | np.ndarray | torch.Tensor,
    boundary: np.ndarray | torch.Tensor,
    displacement: np.ndarray | torch.Tensor,
    size: tuple[int, int],
    walk: WalkSettings,
    instances: InstanceSettings,
    **options: Any,
) -> Instances:
    """Instance pseudo-labels of one image (method doc §2.13): :func:`instance_scores`, then
    :func:`instances_from_scores`.

    Inputs on the stride-4 grid: ``cam`` (K, h, w) max-normalised CAMs of the classes ``keys`` (0-based),
    ``boundary`` (h, w) in [0, 1], ``displacement`` (2, h, w). ``size`` is the image (H, W). K = 0 gives zero
    detections. ``walk`` and ``instances`` (the `random_walk` and `instances` config sections); ``options``: the
    other keyword arguments of :func:`instance_scores` (``device``; ``propagate_fn`` and ``upsample_fn``, which
    default to :func:`irnet_core.random_walk.propagate` and :func:`irnet_core.random_walk.upsample_scores` and
    are parameters so tests can substitute them).
    """
    rows = instance_scores(cam, keys, boundary, displacement, size, walk, centroid_iterations=instances.centroid_iterations,
                           weak_threshold=instances.weak_threshold, **options)  # fmt: skip
    return instances_from_scores(rows, instances.bg_threshold, instances.min_fragment)


def cam_component_instances(
    high_res: np.ndarray | torch.Tensor, keys: Sequence[int] | np.ndarray | torch.Tensor, bg_threshold: float
) -> Instances:
    """Baseline without IRNet: every 4-connected component of each class's CAM region is one instance.

    ``high_res`` (K, H, W) max-normalised full-resolution CAMs of the classes ``keys``. The class map is the
    argmax over ``[bg_threshold; high_res]`` (ties go to background, then to the lower channel). Each
    4-connected component of a class's region is a detection with score = the maximum of that class's CAM
    inside the component. Unlike :func:`extract_instances` no component is down-weighted for being small.
    K = 0 gives zero detections.
    """
    cams = _to_numpy(high_res).astype(np.float32)
    if cams.ndim != 3:
        raise ValueError(f"cam_component_instances: high_res must be (K, H, W), got shape {cams.shape}")
    key_array = _as_keys(keys, cams.shape[0], "cam_component_instances")
    if key_array.size == 0:
        return Instances.empty(cams.shape[1:])
    winner = _winner_map(cams, bg_threshold)
    return _fragments(winner, cams, key_array, min_area=0.0, reduce=ndimage.maximum)


# --------------------------------------------------------------------------------------------------------------
# Storage form


def instances_to_map(inst: Instances) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode disjoint masks as one id map: ``(id_map int32 (H, W), classes int64 (M,), scores float32 (M,))``.

    ``id_map`` is 0 where no instance is and ``i + 1`` on instance ``i``. Raises ValueError if masks overlap,
    because an id map cannot represent that (masks from an argmax never do).
    """
    masks = inst.masks
    if masks.shape[0] and int(masks.sum(axis=0, dtype=np.int64).max()) > 1:
        raise ValueError("instances_to_map: instance masks overlap; an id map needs disjoint masks")
    id_map = np.zeros(masks.shape[1:], dtype=np.int32)
    for index, mask in enumerate(masks):
        id_map[mask] = index + 1
    return id_map, inst.classes.copy(), inst.scores.copy()


def map_to_instances(id_map: np.ndarray, classes: np.ndarray, scores: np.ndarray) -> Instances:
    """Inverse of :func:`instances_to_map` (empty masks stay empty, so the round trip is lossless)."""
    id_map = np.asarray(id_map)
    classes = np.asarray(classes).reshape(-1)
    scores = np.asarray(scores).reshape(-1)
    if id_map.ndim != 2 or not np.issubdtype(id_map.dtype, np.integer):
        raise ValueError(f"map_to_instances: id map must be integer (H, W), got {id_map.dtype} {id_map.shape}")
    count = classes.size
    if id_map.size and (int(id_map.min()) < 0 or int(id_map.max()) > count):
        raise ValueError(f"map_to_instances: id map values must lie in 0..{count} for {count} instances")
    masks = id_map[None] == np.arange(1, count + 1, dtype=np.int64)[:, None, None]
    return Instances(masks, classes, scores)
