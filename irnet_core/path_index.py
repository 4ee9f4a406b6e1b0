"""Path index: the neighbour pairs of IRNet and the grid cells between them (method spec §2.7).

For a radius ``r`` the *directions* are the offsets ``(dy, dx)`` of one half plane of the disc
``dy² + dx² < r²`` (so each unordered pair of cells appears once). The *path* of a direction is the set of grid
cells within line distance < 1 of the segment from ``(0, 0)`` to ``(dy, dx)``, both ends included. The affinity of
a pair is one minus the largest boundary value along its path (§2.7), so a thin boundary curve between two cells
cuts their affinity.

A :class:`PathIndex` turns this geometry into flat index tensors for one grid size, for batched gathers:

* sources: the cells of rows ``[0, Hg - rf)`` and cols ``[rf, Wg - rf)`` with ``rf = ceil(r) - 1``, row-major;
  for every source and direction, the destination and all path cells lie inside the grid (no padding needed);
* directions are grouped by path length (ascending; the order inside a group is that of :func:`directions`),
  and this grouped order is *the* direction order of every ``(…, n_dirs, n_src)`` tensor.

Indexes are cheap to rebuild, so they are cached in memory (:func:`get_path_index`) and never stored in
checkpoints.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

__all__ = [
    "PathIndex",
    "build_path_index",
    "directions",
    "get_path_index",
    "path_affinity",
    "path_points",
]


def directions(radius: int) -> list[tuple[int, int]]:
    """Half-plane neighbour offsets ``(dy, dx)`` of the disc ``dy² + dx² < radius²``, in the spec's order.

    Order: ``(0, dx)`` for ``dx = 1 … rf``, then row by row ``dy = 1 … rf``, ``dx = -rf … rf`` (where
    ``rf = ceil(radius) - 1``). ``radius=10`` gives 152 directions, ``radius=5`` gives 34.
    """
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    rf = math.ceil(radius) - 1
    r2 = radius * radius
    dirs = [(0, dx) for dx in range(1, rf + 1)]
    dirs += [(dy, dx) for dy in range(1, rf + 1) for dx in range(-rf, rf + 1) if dy * dy + dx * dx < r2]
    return dirs


def path_points(dy: int, dx: int) -> list[tuple[int, int]]:
    """Grid cells ``(y, x)`` on the path from ``(0, 0)`` to ``(dy, dx)``, both endpoints included.

    A cell is on the path when it lies in the bounding box of the two endpoints and its squared distance to the
    line through them, ``(dy·x − dx·y)² / (dy² + dx²)``, is below 1 (compared in exact integer arithmetic).
    Cells are listed from ``(0, 0)`` towards ``(dy, dx)`` (by projection on the direction, ties by ``(y, x)``);
    callers only take a max over them, so the order carries no meaning beyond being deterministic.
    """
    length2 = dy * dy + dx * dx
    if length2 == 0:
        raise ValueError("direction (0, 0) has no path")
    points = [
        (y, x)
        for y in range(min(0, dy), max(0, dy) + 1)
        for x in range(min(0, dx), max(0, dx) + 1)
        if (dy * x - dx * y) ** 2 < length2
    ]
    points.sort(key=lambda p: (p[0] * dy + p[1] * dx, p))
    return points


@dataclass(frozen=True, eq=False)
class PathIndex:
    """Flat-index tensors of the radius-``radius`` pairs on a ``grid_h × grid_w`` grid (all int64, one device).

    Attributes:
        radius, grid_h, grid_w: the geometry it was built for.
        directions: the ``n_dirs`` offsets ``(dy, dx)`` in the global (grouped by path length) order.
        path_lengths: path length of each group, ascending.
        path_indices: per group, ``(n_dirs_g, path_len_g, n_src)`` flat grid indices of every path cell
            (source + path point); the groups concatenated follow ``directions``.
        src: ``(n_src,)`` flat indices of the sources (row-major).
        dst: ``(n_dirs, n_src)`` flat indices of source + direction.
        offsets: ``(n_dirs, 2)`` the directions as ``(dy, dx)``.
    """

    radius: int
    grid_h: int
    grid_w: int
    directions: tuple[tuple[int, int], ...]
    path_lengths: tuple[int, ...]
    path_indices: tuple[torch.Tensor, ...]
    src: torch.Tensor
    dst: torch.Tensor
    offsets: torch.Tensor

    @property
    def radius_floor(self) -> int:
        """``rf = ceil(radius) - 1``: the largest offset along either axis."""
        return math.ceil(self.radius) - 1

    @property
    def n_dirs(self) -> int:
        return len(self.directions)

    @property
    def n_src(self) -> int:
        return int(self.src.numel())

    @property
    def source_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the source sub-grid, so ``(..., n_src)`` reshapes to ``(..., rows, cols)``."""
        rf = self.radius_floor
        return self.grid_h - rf, self.grid_w - 2 * rf

    @property
    def device(self) -> torch.device:
        return self.src.device

    def to(self, device: torch.device | str) -> PathIndex:
        """This index on ``device``: ``self`` if already there, else a copy cached per (geometry, device)."""
        device = torch.device(device)
        if self.src.device == device:
            return self
        return _path_index_on(self.radius, self.grid_h, self.grid_w, device)


def build_path_index(radius: int, grid_h: int, grid_w: int) -> PathIndex:
    """Build (uncached, on CPU) the :class:`PathIndex` for ``radius`` on a ``grid_h × grid_w`` grid.

    Raises ``ValueError`` if the grid has no source cell (``grid_h <= rf`` or ``grid_w <= 2·rf``).
    """
    rf = math.ceil(radius) - 1
    rows, cols = grid_h - rf, grid_w - 2 * rf
    if rows <= 0 or cols <= 0:
        raise ValueError(f"grid {grid_h}x{grid_w} is too small for radius {radius} (needs > {rf}x{2 * rf})")

    # Group directions by path length; a stable sort keeps the spec's order inside each group.
    dirs = directions(radius)
    paths = {d: path_points(*d) for d in dirs}
    ordered = sorted(dirs, key=lambda d: len(paths[d]))
    lengths = sorted({len(p) for p in paths.values()})

    ys = torch.arange(rows, dtype=torch.int64)
    xs = torch.arange(rf, rf + cols, dtype=torch.int64)
    src_yx = (ys[:, None] * grid_w + xs[None, :]).reshape(-1)  # flat index of every source

    def shifted(dy: int, dx: int) -> torch.Tensor:
        return src_yx + (dy * grid_w + dx)

    path_indices = []
    for length in lengths:
        group = [d for d in ordered if len(paths[d]) == length]
        per_dir = [torch.stack([shifted(py, px) for py, px in paths[d]]) for d in group]
        path_indices.append(torch.stack(per_dir))  # (n_dirs_g, length, n_src)

    return PathIndex(
        radius=radius,
        grid_h=grid_h,
        grid_w=grid_w,
        directions=tuple(ordered),
        path_lengths=tuple(lengths),
        path_indices=tuple(path_indices),
        src=src_yx,
        dst=torch.stack([shifted(dy, dx) for dy, dx in ordered]),
        offsets=torch.tensor(ordered, dtype=torch.int64).reshape(-1, 2),
    )


@functools.lru_cache(maxsize=32)
def get_path_index(radius: int, grid_h: int, grid_w: int) -> PathIndex:
    """The CPU :class:`PathIndex` for this geometry, built once and kept in memory (LRU of 32 geometries)."""
    return build_path_index(radius, grid_h, grid_w)


@functools.lru_cache(maxsize=32)
def _path_index_on(radius: int, grid_h: int, grid_w: int, device: torch.device) -> PathIndex:
    cpu = get_path_index(radius, grid_h, grid_w)
    if cpu.device == device:
        return cpu
    return PathIndex(
        radius=cpu.radius,
        grid_h=cpu.grid_h,
        grid_w=cpu.grid_w,
        directions=cpu.directions,
        path_lengths=cpu.path_lengths,
        path_indices=tuple(t.to(device) for t in cpu.path_indices),
        src=cpu.src.to(device),
        dst=cpu.dst.to(device),
        offsets=cpu.offsets.to(device),
    )


def path_affinity(boundary: torch.Tensor, index: PathIndex) -> torch.Tensor:
    """Affinity ``1 − max_{k ∈ path(i, j)} B(k)`` of every (source, direction) pair.

    Args:
        boundary: ``(N, Hg, Wg)`` boundary probabilities in [0, 1] on the index's grid.
        index: the path index for this grid (moved to ``boundary.device`` if needed).

    Returns:
        ``(N, n_dirs, n_src)`` affinities in the dtype and on the device of ``boundary``; differentiable.
    """
    if boundary.dim() != 3 or tuple(boundary.shape[1:]) != (index.grid_h, index.grid_w):
        raise ValueError(f"boundary must have shape (N, {index.grid_h}, {index.grid_w}), got {tuple(boundary.shape)}")
    index = index.to(boundary.device)
    flat = boundary.reshape(boundary.shape[0], -1)
    maxima = []
    for idx in index.path_indices:
        gathered = flat[:, idx.reshape(-1)].reshape(flat.shape[0], *idx.shape)  # (N, nd_g, len_g, n_src)
        maxima.append(gathered.amax(dim=2))
    return 1.0 - torch.cat(maxima, dim=1)
