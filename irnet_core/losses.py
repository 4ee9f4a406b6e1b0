"""Training losses: IRNet's (method spec §2.9: pair labels, affinity losses and displacement losses) and the
final semantic model's pixel cross-entropy (:func:`semantic_loss`, method doc §4).

Conventions: label grids hold 0 for background, ``c + 1`` for class ``c`` and 255 for "ignore"; the boundary head
gives logits ``(N, 1, Hg, Wg)``; the displacement head gives ``(N, 2, Hg, Wg)`` with channel 0 = dy and channel
1 = dx in grid cells. A pixel ``i`` at ``x_i`` is meant to point at its instance centre ``x_i + D(i)``, so two
pixels of one instance, ``j = i + δ``, satisfy ``x_i + D(i) = x_j + D(j)``, i.e. ``D(i) − D(j) = δ``.
"""

from __future__ import annotations

import torch

from .path_index import PathIndex, path_affinity

__all__ = ["EPS", "IGNORE", "irnet_loss", "pair_labels", "semantic_loss"]

EPS = 1e-5
"""The ε of the spec: inside the logs and added to every count."""

IGNORE = 255
"""Label value of cells whose relation is unknown, and of pixels the semantic loss leaves out."""


def pair_labels(label_grid: torch.Tensor, index: PathIndex) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pair labels ``(pos_bg, pos_fg, neg)`` of every (source, direction) pair of ``index``.

    A pair is valid when neither end is ``IGNORE`` (any number of classes works: the official code tests
    ``< 21`` instead). Valid pairs are ``pos_bg`` (both background), ``pos_fg`` (both the same class > 0, taken as
    the same instance) or ``neg`` (different labels).

    Args:
        label_grid: ``(N, Hg, Wg)`` integer labels on the index's grid.
        index: the path index (moved to the label's device if needed).

    Returns:
        Three float32 tensors ``(N, n_dirs, n_src)`` of 0/1 on the label's device; they are disjoint.
    """
    if label_grid.dim() != 3 or tuple(label_grid.shape[1:]) != (index.grid_h, index.grid_w):
        raise ValueError(
            f"label_grid must have shape (N, {index.grid_h}, {index.grid_w}), got {tuple(label_grid.shape)}"
        )
    if label_grid.is_floating_point() or label_grid.is_complex():
        raise TypeError(f"label_grid must be an integer tensor, got {label_grid.dtype}")
    index = index.to(label_grid.device)
    # int64 so that 255 compares right whatever the input integer type is.
    flat = label_grid.reshape(label_grid.shape[0], -1).long()
    src = flat[:, index.src].unsqueeze(1)  # (N, 1, n_src)
    dst = flat[:, index.dst]  # (N, n_dirs, n_src)
    valid = (src != IGNORE) & (dst != IGNORE)
    same = valid & (src == dst)
    pos_bg = same & (src == 0)
    pos_fg = same & (src > 0)
    neg = valid & (src != dst)
    return pos_bg.float(), pos_fg.float(), neg.float()


def _pair_displacement(displacement: torch.Tensor, index: PathIndex) -> torch.Tensor:
    """``Δ_ij = D(i) − D(j)`` for every source ``i`` and direction: ``(N, 2, n_dirs, n_src)``."""
    flat = displacement.reshape(displacement.shape[0], 2, -1)
    return flat[:, :, index.src].unsqueeze(2) - flat[:, :, index.dst]


def irnet_loss(
    edge_logits: torch.Tensor,
    displacement: torch.Tensor,
    pos_bg: torch.Tensor,
    pos_fg: torch.Tensor,
    neg: torch.Tensor,
    index: PathIndex,
) -> dict[str, torch.Tensor]:
    """The IRNet losses of one batch, exactly as spec §2.9 (sums over the batch, normalised by counts).

    With ``a = path_affinity(sigmoid(edge_logits))``, ``Δ = D(i) − D(j)`` and the direction offset ``δ``:

    * ``pos_bg = Σ pos_bg·(−log(a + ε)) / (|pos_bg| + ε)``, likewise ``pos_fg``;
    * ``neg = Σ neg·(−log(1 + ε − a)) / (|neg| + ε)``;
    * ``disp_fg = Σ pos_fg·‖Δ − δ‖₁ / (2|pos_fg| + ε)``; ``disp_bg = Σ pos_bg·‖Δ‖₁ / (2|pos_bg| + ε)``;
    * ``total = ((pos_bg + pos_fg)/2 + neg)/2 + (disp_fg + disp_bg)/2``.

    Args:
        edge_logits: ``(N, 1, Hg, Wg)`` boundary logits.
        displacement: ``(N, 2, Hg, Wg)`` raw displacements (dy, dx) in grid cells (no mean shift).
        pos_bg, pos_fg, neg: ``(N, n_dirs, n_src)`` pair labels from :func:`pair_labels`.
        index: the path index of the grid.

    Returns:
        Scalar tensors keyed ``pos_bg, pos_fg, neg, disp_fg, disp_bg, total``; all differentiable.
    """
    n, _, hg, wg = edge_logits.shape
    if edge_logits.shape != (n, 1, hg, wg):
        raise ValueError(f"edge_logits must have shape (N, 1, Hg, Wg), got {tuple(edge_logits.shape)}")
    if displacement.shape != (n, 2, hg, wg):
        raise ValueError(f"displacement must have shape ({n}, 2, {hg}, {wg}), got {tuple(displacement.shape)}")
    index = index.to(edge_logits.device)
    expected = (n, index.n_dirs, index.n_src)
    for name, labels in (("pos_bg", pos_bg), ("pos_fg", pos_fg), ("neg", neg)):
        if tuple(labels.shape) != expected:
            raise ValueError(f"{name} must have shape {expected}, got {tuple(labels.shape)}")

    aff = path_affinity(torch.sigmoid(edge_logits[:, 0]), index)
    pos_loss = -torch.log(aff + EPS)
    neg_loss = -torch.log(1.0 + EPS - aff)
    n_bg, n_fg, n_neg = pos_bg.sum(), pos_fg.sum(), neg.sum()

    loss_pos_bg = (pos_bg * pos_loss).sum() / (n_bg + EPS)
    loss_pos_fg = (pos_fg * pos_loss).sum() / (n_fg + EPS)
    loss_neg = (neg * neg_loss).sum() / (n_neg + EPS)

    delta = _pair_displacement(displacement, index)  # (N, 2, n_dirs, n_src)
    offsets = index.offsets.to(delta.dtype).t().reshape(1, 2, -1, 1)  # δ as (1, 2, n_dirs, 1)
    fg_l1 = (delta - offsets).abs().sum(dim=1)  # (N, n_dirs, n_src)
    bg_l1 = delta.abs().sum(dim=1)
    loss_disp_fg = (pos_fg * fg_l1).sum() / (2 * n_fg + EPS)
    loss_disp_bg = (pos_bg * bg_l1).sum() / (2 * n_bg + EPS)

    total = ((loss_pos_bg + loss_pos_fg) / 2 + loss_neg) / 2 + (loss_disp_fg + loss_disp_bg) / 2
    return {
        "pos_bg": loss_pos_bg,
        "pos_fg": loss_pos_fg,
        "neg": loss_neg,
        "disp_fg": loss_disp_fg,
        "disp_bg": loss_disp_bg,
        "total": total,
    }


def semantic_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Pixel cross-entropy with 255 ignored (a batch of only ignored pixels gives 0, not NaN)."""
    if not (labels != IGNORE).any():
        return logits.sum() * 0.0
    return torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE)
