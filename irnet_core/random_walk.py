"""Random-walk propagation of score maps over the boundary-aware affinity graph (method spec §2.11, §2.12).

The graph joins every cell ``j`` of the ``h × w`` grid to itself (affinity 1) and to every cell ``i`` with
``0 < |i − j|² < radius²`` inside the grid, with affinity ``A[i, j] = 1 − max_{k ∈ path(i, j)} B(k)`` (the path of
:mod:`irnet_core.path_index`). The transition matrix is column-stochastic,
``T[i, j] = A[i, j]^β / Σ_k A[k, j]^β``, and the result is ``Y = x · T^(2^exp_times)`` with seeds
``x = scores ⊙ (1 − B)``.

:func:`propagate` computes this over the sparse graph (``2·n_dirs + 1`` neighbours per cell, 69 for radius 5)
with one sparse-matrix product per step, ``2^exp_times`` steps: O(69·n) memory and ~4·10⁸ flops per map at
94×125, on the device of its inputs. :func:`propagate_dense` is the spec's dense formulation (the
:func:`dense_transition` matrix squared ``exp_times`` times: O(n²) memory, O(n³) time); it is kept only as the
reference for tests and ``bench/random_walk.py``. Both give the same result up to float rounding (float64 runs
agree to ~1e-14, border pairs included).

Why a CSR matrix product: on CPU it measured as fast as or faster than the alternatives (69 shifted
multiply-adds per step, an ``(n, 69)`` gather table, unfold/as_strided stencils), much faster for many maps,
and on CUDA it is one cuSPARSE call per step instead of 69 kernel launches. Each step is small (~0.3 ms on CPU
at VOC size), so an oversubscribed CPU (more torch threads than free cores) slows it down badly; give each job
as many threads as cores it holds (Snakemake does, through ``OMP_NUM_THREADS``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .path_index import directions, get_path_index, path_affinity, path_points
from .settings import WalkSettings

__all__ = ["dense_transition", "propagate", "propagate_dense", "upsample_scores"]


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    # float32 throughout (no TF32, no half: labels must agree with the dense reference); float64 if asked for.
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _check_inputs(scores: torch.Tensor, boundary: torch.Tensor, exp_times: int, radius: int) -> None:
    if scores.dim() != 3:
        raise ValueError(f"scores must have shape (R, h, w), got {tuple(scores.shape)}")
    if boundary.dim() != 2 or tuple(boundary.shape) != tuple(scores.shape[1:]):
        raise ValueError(f"boundary must have shape {tuple(scores.shape[1:])}, got {tuple(boundary.shape)}")
    if exp_times < 0:
        raise ValueError(f"exp_times must be >= 0, got {exp_times}")
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")


def _seeds(
    scores: torch.Tensor, boundary: torch.Tensor, exp_times: int, radius: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The walk's seeds ``scores ⊙ (1 − B)`` and the boundary, both checked and in the compute dtype."""
    _check_inputs(scores, boundary, exp_times, radius)
    dtype = _compute_dtype(scores, boundary)
    boundary = boundary.to(dtype)
    return scores.to(dtype) * (1.0 - boundary), boundary


def _neighbour_offsets(radius: int) -> list[tuple[int, int]]:
    """All offsets ``o`` with ``|o|² < radius²`` (self included), sorted lexicographically by ``(dy, dx)``.

    For in-grid neighbours, lexicographic offset order is flat-index order, so CSR columns come out sorted.
    """
    half = directions(radius)
    return sorted([(0, 0), *half, *((-dy, -dx) for dy, dx in half)])


def _pair_weights(boundary: torch.Tensor, beta: float, radius: int) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """Offsets and ``W (n_offsets, h, w)`` with ``W[o][p] = A[p, p + o]^β`` (0 where ``p + o`` leaves the grid).

    Each unordered pair is evaluated once, for its half-plane direction ``d`` at the cell ``p`` with ``p + d`` the
    other end; the weight at ``p + d`` for offset ``−d`` is the same number shifted, so both orientations agree
    exactly (the matrix is symmetric, as the dense one).
    """
    h, w = boundary.shape
    rf = math.ceil(radius) - 1
    # Padding only keeps the shifted views in range; pairs that leave the grid are zeroed below.
    padded = F.pad(boundary[None, None], (rf, rf, rf, rf), value=1.0)[0, 0]
    half: dict[tuple[int, int], torch.Tensor] = {}
    for dy, dx in directions(radius):
        path_max = None
        for py, px in path_points(dy, dx):
            view = padded[rf + py : rf + py + h, rf + px : rf + px + w]
            path_max = view if path_max is None else torch.maximum(path_max, view)
        weight = torch.zeros_like(boundary)
        # p = (y, x) and p + d are both in the grid iff y < h − dy and 0 <= x + dx < w (dy >= 0).
        x0, x1 = max(0, -dx), w - max(0, dx)
        if h - dy > 0 and x1 > x0:
            weight[: h - dy, x0:x1] = (1.0 - path_max[: h - dy, x0:x1]).pow(beta)
        half[(dy, dx)] = weight

    offsets = _neighbour_offsets(radius)
    maps = []
    for dy, dx in offsets:
        if (dy, dx) == (0, 0):
            maps.append(torch.ones_like(boundary))  # self-loop, A[i, i] = 1
        elif (dy, dx) in half:
            maps.append(half[(dy, dx)])
        else:  # W[−d][p] = W[d][p − d]
            src = half[(-dy, -dx)]
            shifted = torch.zeros_like(src)
            ey, ex = -dy, -dx  # the half-plane direction d = (ey, ex), ey >= 0
            x0, x1 = max(0, -ex), w - max(0, ex)
            if h - ey > 0 and x1 > x0:
                shifted[ey:, x0 + ex : x1 + ex] = src[: h - ey, x0:x1]
            maps.append(shifted)
    return offsets, torch.stack(maps)


def _transition_csr(boundary: torch.Tensor, beta: float, radius: int) -> torch.Tensor:
    """Sparse ``(n, n)`` CSR matrix ``M = Tᵀ`` (row ``j`` holds ``T[i, j]`` at column ``i``), so ``y ← M @ y``."""
    h, w = boundary.shape
    n = h * w
    offsets, weights = _pair_weights(boundary, beta, radius)
    weights = weights / weights.sum(dim=0, keepdim=True)  # column normalisation; the self-loop keeps it > 0

    # Everything indexed (h, w, n_offsets): a boolean selection then lists the entries cell by cell (= CSR row).
    device = boundary.device
    off = torch.tensor(offsets, dtype=torch.int64, device=device)  # (n_offsets, 2)
    ys = torch.arange(h, device=device).view(h, 1, 1) + off[:, 0]  # (h, 1, n_offsets)
    xs = torch.arange(w, device=device).view(1, w, 1) + off[:, 1]  # (1, w, n_offsets)
    mask = ((ys >= 0) & (ys < h)) & ((xs >= 0) & (xs < w))  # (h, w, n_offsets)
    col = ys * w + xs  # ascending along the last axis for the in-grid entries
    values = weights.permute(1, 2, 0)
    crow = torch.zeros(n + 1, dtype=torch.int64, device=device)
    crow[1:] = mask.reshape(n, -1).sum(dim=1).cumsum(0)
    with warnings.catch_warnings():
        # torch flags sparse CSR as "beta" once per process; the ops used here (construction, @ dense) are stable.
        warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support is in beta state")
        # Some torch versions (2.11) warn about the *global* invariant-check default even when the call enables
        # the checks itself, as here: checking (sorted, in-range columns) costs ~2 ms and turns an indexing bug
        # into an error instead of a memory fault.
        warnings.filterwarnings("ignore", message=r"Sparse invariant checks are implicitly disabled")
        return torch.sparse_csr_tensor(crow, col[mask], values[mask], (n, n), check_invariants=True)


def propagate(
    scores: torch.Tensor,
    boundary: torch.Tensor,
    *,
    beta: float,
    exp_times: int,
    radius: int,
) -> torch.Tensor:
    """Random-walk propagation ``Y = (scores ⊙ (1 − B)) · T^(2^exp_times)`` over the sparse neighbour graph.

    Args:
        scores: ``(R, h, w)`` score maps (e.g. CAMs) on the stride-4 grid.
        boundary: ``(h, w)`` boundary probabilities in [0, 1].
        beta: exponent of the affinities (β).
        exp_times: the walk takes ``2^exp_times`` steps (8 → 256, as the dense code's 8 squarings).
        radius: neighbourhood radius; pairs with ``dy² + dx² < radius²``.

    Returns:
        ``(R, h, w)`` propagated scores, float64 if either input is float64 else float32, on the inputs' device.
        Equal to :func:`propagate_dense` up to float rounding; never builds an ``n × n`` dense matrix.
    """
    seeds, boundary = _seeds(scores, boundary, exp_times, radius)
    r, h, w = seeds.shape
    if r == 0 or h * w == 0:
        return seeds
    matrix = _transition_csr(boundary, beta, radius)
    y = seeds.reshape(r, h * w).t().contiguous()  # (n, R): row-major right-hand side for the CSR product
    for _ in range(1 << exp_times):
        y = matrix @ y  # y_j ← Σ_i y_i T[i, j]
    return y.t().reshape(r, h, w)


def dense_transition(boundary: torch.Tensor, *, beta: float, radius: int) -> torch.Tensor:
    """The dense column-stochastic ``(n, n)`` matrix ``T[i, j] = A[i, j]^β / Σ_k A[k, j]^β`` (``n = h·w``, row-major
    cells), built as the spec's pseudocode. Reference only (tests, benchmark): O(n²) memory.

    The affinities come from a :class:`~irnet_core.path_index.PathIndex` on the boundary padded with 1 (left,
    right and bottom by ``radius``, top 0) as the official code does, so every in-grid pair is a (source,
    direction) of the index; pairs with an end in the padding are dropped (the official code crops them away).
    float64 if ``boundary`` is float64, else float32.
    """
    if boundary.dim() != 2:
        raise ValueError(f"boundary must have shape (h, w), got {tuple(boundary.shape)}")
    dtype = _compute_dtype(boundary)
    boundary = boundary.to(dtype)
    h, w = boundary.shape
    n = h * w
    padded = F.pad(boundary[None, None], (radius, radius, 0, radius), value=1.0)[0]  # (1, h + r, w + 2r)
    index = get_path_index(radius, h + radius, w + 2 * radius).to(boundary.device)
    aff = path_affinity(padded, index)[0]  # (n_dirs, n_src)

    wp = w + 2 * radius

    def to_image(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, x = flat // wp, flat % wp - radius
        return y * w + x, (y < h) & (x >= 0) & (x < w)

    i, i_in = to_image(index.src.view(1, -1).expand_as(index.dst))
    j, j_in = to_image(index.dst)
    keep = i_in & j_in
    t = torch.eye(n, dtype=dtype, device=boundary.device)  # self-loops A[i, i] = 1
    t[i[keep], j[keep]] = aff[keep]
    t[j[keep], i[keep]] = aff[keep]
    t.pow_(beta)  # in place: this matrix dominates the memory
    t.div_(t.sum(dim=0, keepdim=True))
    return t


def propagate_dense(scores: torch.Tensor, boundary: torch.Tensor, **walk: float) -> torch.Tensor:
    """Dense reference of :func:`propagate` (same contract), following the spec's pseudocode: the matrix of
    :func:`dense_transition` squared ``exp_times`` times, then ``Y = x · T``. ``walk``: ``beta``, ``exp_times``
    and ``radius``, as for :func:`propagate`.

    Memory O(n²), time O(n³) with ``n = h·w``: for tests and benchmarks only.
    """
    beta, exp_times, radius = walk["beta"], int(walk["exp_times"]), int(walk["radius"])
    seeds, boundary = _seeds(scores, boundary, exp_times, radius)
    r, h, w = seeds.shape
    if r == 0 or h * w == 0:
        return seeds
    t = dense_transition(boundary, beta=beta, radius=radius)
    for _ in range(exp_times):
        t = t @ t
    return (seeds.reshape(r, h * w) @ t).reshape(r, h, w)


def upsample_scores(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """×4 bilinear upsampling (align_corners=False) of ``(R, h, w)`` scores, cropped to ``size = (H, W)``, divided
    by the global maximum over all maps and pixels (left as is when that maximum is not positive).

    Requires ``4h >= H`` and ``4w >= W`` (true for ``h = ceil(H/4)``).
    """
    if y.dim() != 3:
        raise ValueError(f"y must have shape (R, h, w), got {tuple(y.shape)}")
    height, width = size
    r, h, w = y.shape
    if 4 * h < height or 4 * w < width:
        raise ValueError(f"grid {h}x{w} at stride 4 does not cover size {height}x{width}")
    if r == 0:
        return y.new_zeros((0, height, width))
    up = F.interpolate(y[None], size=(4 * h, 4 * w), mode="bilinear", align_corners=False)[0]
    up = up[:, :height, :width]
    peak = up.max()
    return up / peak if peak > 0 else up


@torch.no_grad()
def semantic_scores(
    cam: torch.Tensor,
    keys: Sequence[int] | torch.Tensor,
    boundary: torch.Tensor,
    size: tuple[int, int],
    walk: WalkSettings,
) -> torch.Tensor:
    """Propagated class scores ``(K, H, W)`` of one image (spec §2.12), before any background threshold.

    Propagates the ``(K, h, w)`` CAMs of the present classes ``keys`` (sorted 0-based indices, each < 254) with
    :func:`propagate` over the ``(h, w)`` boundary map and upsamples with :func:`upsample_scores` to the image's
    ``size = (H, W)``. Kept apart from :func:`labels_from_scores` so that a threshold sweep needs one walk.
    """
    keys = [int(k) for k in (keys.tolist() if isinstance(keys, torch.Tensor) else keys)]
    if cam.dim() != 3 or cam.shape[0] != len(keys):
        raise ValueError(f"cam must have shape ({len(keys)}, h, w) to match keys, got {tuple(cam.shape)}")
    if any(k < 0 or k >= 254 for k in keys):
        raise ValueError(f"class indices must lie in [0, 254), got {keys}")
    height, width = size
    if not keys:
        return torch.zeros((0, height, width), dtype=torch.float32, device=cam.device)
    y = propagate(cam, boundary, beta=walk.beta, exp_times=walk.exp_times, radius=walk.radius)
    return upsample_scores(y, size)


def veto_by_cam(scores: torch.Tensor, cam: torch.Tensor, floor: float) -> torch.Tensor:
    """``(K, H, W)`` propagated scores set to 0 where the class's own full-size CAM ``(K, H, W)`` is below ``floor``.

    Beyond the paper (docs/method-notes.md, "The CAM veto"): relation mining takes a pixel whose CAM is below
    relations.conf_bg as confident background, and the walk can still carry a class there across a weak
    boundary: on classes with spiky or thin shapes, whose boundary the map misses at stride 4, the class then
    floods the background around it. With the floor at conf_bg, the walk refines where the CAMs are unsure and
    never overrules them where they are sure; another class may still take such a pixel.
    """
    if scores.shape != cam.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and CAMs {tuple(cam.shape)} differ in shape")
    return scores * (cam.to(scores.device) >= floor)


def labels_from_scores(scores: torch.Tensor, keys: Sequence[int], bg_threshold: float) -> torch.Tensor:
    """Label map uint8 ``(H, W)`` from ``(K, H, W)`` scores: argmax over a constant background score
    ``bg_threshold`` and the scores (first maximum wins, so ties go to background and to the lower key),
    mapping channel 0 to 0 and channel ``k + 1`` to ``keys[k] + 1``."""
    keys = [int(k) for k in keys]
    if not keys:
        return torch.zeros(tuple(scores.shape[1:]), dtype=torch.uint8, device=scores.device)
    background = torch.full_like(scores[:1], bg_threshold)
    winner = torch.cat([background, scores]).argmax(dim=0)
    lookup = torch.tensor([0, *(k + 1 for k in keys)], dtype=torch.uint8, device=scores.device)
    return lookup[winner]
