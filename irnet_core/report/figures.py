"""Report figures: one strip of panels per image and stage, and the training curves.

Every function takes plain numpy arrays and returns a matplotlib :class:`~matplotlib.figure.Figure`;
:func:`save_png` writes it. Figures are built with matplotlib's object API on the Agg canvas (no pyplot), so
nothing depends on a display or on global pyplot state, and many figures can be drawn in one process.

Conventions (as in the stores): images are uint8 (H, W, 3); boundary and displacement maps live on the
stride-4 grid (h, w) whose cell (i, j) covers image pixels 4i..4i+3 and 4j..4j+3; displacement channel 0 is
dy and channel 1 is dx, in grid cells; label maps use 0 = background, c + 1 = class c, 255 = unsure / void.
Label colours are the PASCAL VOC palette, the colours of the exported pseudo-label PNGs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, hsv_to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator
from scipy import ndimage

from ..palette import voc_palette

PANEL_INCHES = 2.8  # width of one image panel; legible at 100 % zoom in the report's result view
DPI = 120  # a 4-panel strip is about 1350 px wide: one screen width in the report
UNSURE_RGB = (0.78, 0.78, 0.78)  # relation label 255: neither confident foreground nor background
VOID_RGB = (224 / 255, 224 / 255, 192 / 255)  # ground-truth 255: VOC's own "void" colour
MAX_INSTANCE_LABELS = 12  # score labels beyond this many would hide the masks they describe
FIGURE_MIN_SCORE = 0.3  # final-model detections drawn in the report (all of them are scored)

# Legend text of the train_log.csv columns; the column name stays in brackets so the CSV is easy to find.
CURVE_LABELS = {
    "loss": "training loss",
    "val_loss": "held-out loss",
    "val_map": "held-out mAP",
    "val_label_accuracy": "held-out label accuracy",
    "val_exact_match": "held-out exact match",
    "loss_pos_bg": "boundary, bg-bg pairs",
    "loss_pos_fg": "boundary, fg-fg pairs",
    "loss_neg": "boundary, cross-class pairs",
    "loss_disp_fg": "displacement, fg",
    "loss_disp_bg": "displacement, bg",
}


# ---- colours ----------------------------------------------------------------------------------------------


def label_colours(n_classes: int) -> np.ndarray:
    """Float RGB (n_classes + 1, 3): background black, then the VOC palette colour of each class."""
    return voc_palette(n_classes + 1).astype(np.float64) / 255.0


def label_rgb(labels: np.ndarray, n_classes: int, special_rgb: Sequence[float] = VOID_RGB) -> np.ndarray:
    """Colour a label map (0 background, c + 1 class c, 255 special) as float RGB (H, W, 3)."""
    labels = np.asarray(labels)
    colours = np.zeros((256, 3))
    colours[: n_classes + 1] = label_colours(n_classes)
    colours[255] = special_rgb
    return colours[labels.astype(np.uint8)]


def displacement_rgb(displacement: np.ndarray, max_length: float | None = None) -> np.ndarray:
    """Colour-wheel rendering of a displacement field (2, h, w) as float RGB (h, w, 3).

    Hue is the direction (computed in image coordinates, y down, as :func:`colour_wheel` shows it) and
    saturation the length relative to ``max_length`` (default: the field's own maximum, at least one cell),
    so zero displacement is white and long vectors are vivid.
    """
    dy, dx = np.asarray(displacement, dtype=np.float64)
    length = np.hypot(dy, dx)
    scale = max_length if max_length is not None else max(float(length.max(initial=0.0)), 1.0)
    hue = (np.arctan2(dy, dx) / (2 * math.pi)) % 1.0
    saturation = np.clip(length / scale, 0.0, 1.0)
    return hsv_to_rgb(np.stack([hue, saturation, np.ones_like(hue)], axis=-1))


def colour_wheel(size: int = 65) -> np.ndarray:
    """The key of :func:`displacement_rgb`: RGBA (size, size, 4), transparent outside the unit disc."""
    centre = (size - 1) / 2
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    field = np.stack([rows - centre, cols - centre]) / centre
    rgb = displacement_rgb(field, max_length=1.0)
    alpha = (np.hypot(*field) <= 1.0).astype(np.float64)
    return np.concatenate([rgb, alpha[..., None]], axis=-1)


# ---- layout helpers ---------------------------------------------------------------------------------------


def _strip(n_panels: int, image_shape: tuple[int, ...], title: str, legend: bool = False) -> tuple[Figure, list[Axes]]:
    """A one-row figure of ``n_panels`` image panels sized to the image's aspect ratio."""
    height, width = image_shape[:2]
    panel_height = float(np.clip(PANEL_INCHES * height / max(width, 1), 1.4, 4.2))
    fig_height = panel_height + 0.75 + (0.45 if legend else 0.0)
    fig = Figure(figsize=(n_panels * PANEL_INCHES, fig_height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(1, n_panels, squeeze=False)[0])
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=12, fontweight="bold")
    return fig, axes


def _fit_height(fig: Figure) -> Figure:
    """Remove the empty band that equal-aspect image panels leave above and below themselves; returns ``fig``.

    Panels are as wide as the figure allows; their height follows from the image's aspect ratio, so the
    height reserved in advance is only a guess. After one layout pass the unused height is known exactly.
    """
    fig.canvas.draw()
    height = fig.get_figheight()
    unused = [
        (ax.get_position(original=True).height - ax.get_position().height) * height
        for ax in fig.axes
        if ax.get_aspect() == 1.0  # image panels; colour bars and message panels have "auto" aspect
    ]
    slack = min(unused, default=0.0)
    if slack > 0.05:
        fig.set_figheight(height - slack + 0.02)
    return fig


def _image_panel(ax: Axes, rgb: np.ndarray, title: str) -> None:
    ax.imshow(rgb, interpolation="nearest")
    ax.set_title(title, fontsize=10)


def _grid_panel(ax: Axes, grid_image: np.ndarray, size: tuple[int, int], **imshow_args) -> None:
    """Show a stride-4 grid map in image coordinates, so it lines up with the image panels."""
    grid_h, grid_w = grid_image.shape[:2]
    ax.imshow(
        grid_image, extent=(-0.5, 4 * grid_w - 0.5, 4 * grid_h - 0.5, -0.5), interpolation="nearest", **imshow_args
    )
    ax.set_xlim(-0.5, size[1] - 0.5)
    ax.set_ylim(size[0] - 0.5, -0.5)


def _message_panel(ax: Axes, title: str, message: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=9, wrap=True, transform=ax.transAxes)
    ax.set_facecolor("#f2f2f2")
    ax.set_axis_on()
    ax.set_xticks([])
    ax.set_yticks([])


def _class_legend(
    fig: Figure, class_ids: Sequence[int], class_names: Sequence[str], extra: Sequence[tuple[str, Sequence[float]]] = ()
) -> None:
    """Legend below the strip: ``extra`` (name, colour) entries, then the listed 0-based classes."""
    colours = label_colours(len(class_names))
    handles = [Patch(facecolor=colour, edgecolor="0.3", label=name) for name, colour in extra]
    handles += [Patch(facecolor=colours[c + 1], edgecolor="0.3", label=class_names[c]) for c in sorted(set(class_ids))]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8), frameon=False, fontsize=9)


def _present_classes(*label_maps: np.ndarray, n_classes: int) -> list[int]:
    values: set[int] = set()
    for labels in label_maps:
        values |= {int(v) - 1 for v in np.unique(labels) if 0 < v <= n_classes}
    return sorted(values)


def _share(fraction: float) -> str:
    """A share as a percentage that does not round small non-zero shares to "0%"."""
    return "<1%" if 0 < fraction < 0.005 else f"{fraction:.0%}"


def _gray(image: np.ndarray) -> np.ndarray:
    """Float grey version of an RGB image, as RGB (H, W, 3), for overlays that must not compete in colour."""
    grey = np.asarray(image, dtype=np.float64)[..., :3].mean(axis=-1, keepdims=True) / 255.0
    return np.repeat(grey, 3, axis=-1)


# ---- per-stage strips -------------------------------------------------------------------------------------


def cam_figure(
    image: np.ndarray, cams: np.ndarray, keys: Sequence[int], class_names: Sequence[str], title: str
) -> Figure:
    """The image, then each present class's CAM (max-normalised, jet) blended over the grey image."""
    cams = np.asarray(cams, dtype=np.float32)
    fig, axes = _strip(1 + max(1, len(keys)), image.shape, title)
    _image_panel(axes[0], image, "image")
    if not len(keys):
        _message_panel(axes[1], "CAM", "no class present")
        return _fit_height(fig)
    jet = colormaps["jet"]
    grey = _gray(image)
    for ax, cam, key in zip(axes[1:], cams, keys, strict=True):
        heat = jet(np.clip(cam, 0.0, 1.0))[..., :3]
        _image_panel(ax, 0.45 * grey + 0.55 * heat, f"CAM: {class_names[int(key)]}")
    fig.colorbar(ScalarMappable(Normalize(0, 1), jet), ax=axes[-1], fraction=0.05, pad=0.02, label="CAM score")
    return _fit_height(fig)


def relations_figure(image: np.ndarray, labels: np.ndarray | None, class_names: Sequence[str], title: str) -> Figure:
    """The image and its mined relation labels: confident foreground per class, background, unsure.

    ``labels`` is None for an image that is not a training image (relations are mined only for those).
    """
    fig, axes = _strip(3, image.shape, title, legend=True)
    _image_panel(axes[0], image, "image")
    if labels is None:
        _message_panel(axes[1], "relation labels", "not a training image:\nno relations mined")
        _message_panel(axes[2], "labels over image", "not a training image")
        return _fit_height(fig)
    labels = np.asarray(labels)
    n = len(class_names)
    total = max(labels.size, 1)
    fg_mask = (labels > 0) & (labels < 255)
    fg, bg, unsure = (np.count_nonzero(m) / total for m in (fg_mask, labels == 0, labels == 255))
    _image_panel(
        axes[1], label_rgb(labels, n, UNSURE_RGB), f"fg {_share(fg)} · bg {_share(bg)} · unsure {_share(unsure)}"
    )
    # Over the image: confident background dimmed, unsure tinted grey, confident foreground untouched and
    # outlined, so one sees whether the confident regions sit on the objects.
    photo = image / 255.0
    overlay = np.where((labels == 0)[..., None], 0.3 * photo, photo)
    overlay = np.where((labels == 255)[..., None], 0.5 * photo + 0.5 * np.asarray(UNSURE_RGB), overlay)
    _image_panel(axes[2], overlay, "over image: bg dimmed, fg outlined")
    if fg_mask.any() and not fg_mask.all():
        axes[2].contour(fg_mask.astype(np.float32), levels=[0.5], colors=["white"], linewidths=1.2)
    specials = [("background", (0, 0, 0))] * bool(bg) + [("unsure", UNSURE_RGB)] * bool(unsure)
    _class_legend(fig, _present_classes(labels, n_classes=n), class_names, specials)
    return _fit_height(fig)


def irnet_figure(
    image: np.ndarray, boundary: np.ndarray, displacement: np.ndarray, centroids: np.ndarray, title: str
) -> Figure:
    """The image, IRNet's class-boundary map, its displacement field as a colour wheel, and as arrows.

    ``centroids`` (N, 3) rows ``(y, x, pixels)`` on the grid: where ``pixels`` foreground grid pixels end their
    walk along the displacement field; drawn as crosses whose size grows with ``pixels``.
    """
    size = image.shape[:2]
    boundary = np.asarray(boundary, dtype=np.float32)
    displacement = np.asarray(displacement, dtype=np.float32)
    fig, axes = _strip(4, image.shape, title)
    _image_panel(axes[0], image, "image")

    _grid_panel(axes[1], boundary, size, cmap="gray_r", vmin=0.0, vmax=1.0)
    axes[1].set_title("class boundaries B", fontsize=10)
    fig.colorbar(ScalarMappable(Normalize(0, 1), "gray_r"), ax=axes[1], fraction=0.05, pad=0.02)

    length = np.hypot(displacement[0], displacement[1])
    _grid_panel(axes[2], displacement_rgb(displacement), size)
    axes[2].set_title(f"displacement D (max {length.max(initial=0):.1f} cells)", fontsize=10)
    key = axes[2].inset_axes((0.74, 0.74, 0.25, 0.25))
    key.imshow(colour_wheel(), interpolation="bilinear")
    key.set_axis_off()

    ax = axes[3]
    _image_panel(ax, 0.35 + 0.5 * _gray(image), "")
    grid_h, grid_w = length.shape
    step = max(1, round(max(grid_h, grid_w) / 22))
    ys, xs = np.mgrid[step // 2 : grid_h : step, step // 2 : grid_w : step]
    dy, dx = displacement[0][ys, xs], displacement[1][ys, xs]
    moving = np.hypot(dy, dx) > 0.5  # background vectors are ~0; drawing them only adds dots
    # True length, in image pixels: every arrow points at the centroid its pixel is displaced to.
    ax.quiver(
        4 * xs[moving] + 1.5,
        4 * ys[moving] + 1.5,
        4 * dx[moving],
        4 * dy[moving],
        angles="xy",
        scale_units="xy",
        scale=1.0,
        color="#1f4fd6",
        width=0.007,
        headwidth=4,
        headlength=4,
    )
    centroids = np.asarray(centroids, dtype=np.float64).reshape(-1, 3)
    if len(centroids):
        marker_size = 30 + 120 * np.sqrt(centroids[:, 2] / centroids[:, 2].max())
        ax.scatter(
            4 * centroids[:, 1] + 1.5,
            4 * centroids[:, 0] + 1.5,
            s=marker_size,
            marker="X",
            c="#e8112d",
            edgecolors="white",
            linewidths=0.8,
            zorder=3,
        )
    ax.set_xlim(-0.5, size[1] - 0.5)
    ax.set_ylim(size[0] - 0.5, -0.5)
    ax.set_title(f"D as arrows · {len(centroids)} centroid(s)", fontsize=10)
    return _fit_height(fig)


def match_instances(masks: np.ndarray, gt_masks: np.ndarray, min_iou: float = 0.5) -> list[int | None]:
    """For each predicted mask, the ground-truth instance it matches (IoU >= ``min_iou``), or None.

    Greedy by IoU, each ground-truth instance matched at most once: the matching of AP at that IoU, minus the
    score order. Used to give a matched pair one colour in the figure.
    """
    matches: list[int | None] = [None] * len(masks)
    if not len(masks) or not len(gt_masks):
        return matches
    masks = np.asarray(masks, dtype=bool).reshape(len(masks), -1)
    gt_masks = np.asarray(gt_masks, dtype=bool).reshape(len(gt_masks), -1)
    inter = masks.astype(np.float32) @ gt_masks.T.astype(np.float32)
    union = masks.sum(axis=1)[:, None] + gt_masks.sum(axis=1)[None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        pred, gt = np.unravel_index(int(flat), iou.shape)
        if iou[pred, gt] < min_iou:
            break
        if matches[pred] is None and gt not in matches:
            matches[pred] = int(gt)
    return matches


def _instance_overlay(
    ax: Axes, image: np.ndarray, masks: np.ndarray, colour_ids: Sequence[int | None], texts: Sequence[str], title: str
) -> None:
    """Each mask filled with a colour over the grey image, outlined, and labelled at its deepest point.

    ``colour_ids[i]`` picks mask i's colour from a fixed cycle (None: grey); ``texts[i]`` is its label ("" for none).
    """
    palette = colormaps["tab10"].colors
    rgb = 0.25 + 0.6 * _gray(image)
    colours = [np.asarray(palette[c % len(palette)]) if c is not None else np.full(3, 0.55) for c in colour_ids]
    for mask, colour in zip(masks, colours, strict=True):
        rgb[mask] = 0.35 * rgb[mask] + 0.65 * colour
    _image_panel(ax, rgb, title)
    for mask, colour, text in zip(masks, colours, texts, strict=True):
        if mask.any() and not mask.all():
            ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour * 0.6], linewidths=1.0)
        if not text or not mask.any():
            continue
        # The point farthest from the mask's edge lies inside even for rings and crosses, unlike the centroid.
        depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
        ax.text(
            x,
            y,
            text,
            fontsize=8,
            ha="center",
            va="center",
            clip_on=True,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.8, "linewidth": 0},
        )


def _image_miou(pred: np.ndarray, gt: np.ndarray) -> float | None:
    """Mean IoU over the labels (background included) present in either map, void (255) pixels ignored."""
    valid = gt != 255
    values = [v for v in np.union1d(np.unique(pred[valid]), np.unique(gt[valid])) if v != 255]
    ious = []
    for value in values:
        p, g = (pred == value) & valid, (gt == value) & valid
        union = np.count_nonzero(p | g)
        if union:
            ious.append(np.count_nonzero(p & g) / union)
    return float(np.mean(ious)) if ious else None


def pseudo_label_figure(
    image: np.ndarray,
    semantic: np.ndarray,
    gt_semantic: np.ndarray,
    masks: np.ndarray,
    classes: Sequence[int],
    scores: Sequence[float],
    gt_masks: np.ndarray,
    gt_classes: Sequence[int],
    class_names: Sequence[str],
    title: str,
) -> Figure:
    """Semantic pseudo-label next to ground truth, instance pseudo-labels next to ground-truth instances.

    ``masks`` bool (M, H, W) with 0-based ``classes`` and ``scores``; ``gt_masks`` bool (G, H, W) with
    ``gt_classes``. Instances are labelled "class score" (the best :data:`MAX_INSTANCE_LABELS` by score);
    fragments with score 0 (too small to count, see the instances config) are drawn grey and unlabelled. An
    instance that matches a ground-truth instance at IoU >= 0.5 has that instance's colour.
    """
    n = len(class_names)
    fig, axes = _strip(4, image.shape, title, legend=True)
    miou = _image_miou(np.asarray(semantic), np.asarray(gt_semantic))
    score_text = "" if miou is None else f" · mIoU {miou:.0%}"
    _image_panel(axes[0], label_rgb(semantic, n), f"semantic pseudo-label{score_text}")
    _image_panel(axes[1], label_rgb(gt_semantic, n), "ground truth")

    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    masks = np.asarray(masks, dtype=bool)
    gt_masks = np.asarray(gt_masks, dtype=bool)
    labelled = set(np.argsort(-scores, kind="stable")[:MAX_INSTANCE_LABELS].tolist())
    texts = [
        f"{class_names[int(c)]} {s:.2f}" if s > 0 and i in labelled else ""
        for i, (c, s) in enumerate(zip(classes, scores, strict=True))
    ]
    # A prediction that matches a ground-truth instance takes its colour; others get colours no GT uses.
    matches = match_instances(masks, gt_masks)
    spare = iter(range(len(gt_masks), len(gt_masks) + len(masks)))
    colour_ids = [
        None if s <= 0 else (m if m is not None else next(spare)) for m, s in zip(matches, scores, strict=True)
    ]
    positive = int(np.count_nonzero(scores > 0))
    matched = sum(m is not None and s > 0 for m, s in zip(matches, scores, strict=True))
    fragments = len(scores) - positive
    title = f"instances: {positive}, {matched} match GT" + (f" (+{fragments} grey)" if fragments else "")
    _instance_overlay(axes[2], image, masks, colour_ids, texts, title)
    _instance_overlay(
        axes[3],
        image,
        gt_masks,
        list(range(len(gt_masks))),
        [class_names[int(c)] for c in gt_classes],
        f"ground-truth instances: {len(gt_classes)}",
    )
    present = _present_classes(semantic, gt_semantic, n_classes=n)
    present += [int(c) for c in classes] + [int(c) for c in gt_classes]
    void = bool(np.any(np.asarray(gt_semantic) == 255))
    _class_legend(fig, present, class_names, [("background", (0, 0, 0))] + [("void", VOID_RGB)] * void)
    return _fit_height(fig)


# ---- final models -----------------------------------------------------------------------------------------


def final_semantic_figure(
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], class_names: Sequence[str], title: str
) -> Figure:
    """One row per val image ``(image_id, image, prediction, ground truth)``: image, the model's label map (with
    this image's mIoU) and the ground truth."""
    n = len(class_names)
    fig = Figure(
        figsize=(3 * PANEL_INCHES, max(1, len(rows)) * PANEL_INCHES * 0.8 + 0.9), dpi=DPI, layout="constrained"
    )
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=12, fontweight="bold")
    axes = fig.subplots(max(1, len(rows)), 3, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    present: list[int] = []
    for (image_id, image, pred, gt), row in zip(rows, axes, strict=False):
        miou = _image_miou(np.asarray(pred), np.asarray(gt))
        _image_panel(row[0], image, image_id)
        _image_panel(row[1], label_rgb(pred, n), "prediction" + ("" if miou is None else f" · mIoU {miou:.0%}"))
        _image_panel(row[2], label_rgb(gt, n), "ground truth")
        present += _present_classes(pred, gt, n_classes=n)
    _class_legend(fig, present, class_names, [("background", (0, 0, 0)), ("void", VOID_RGB)])
    return fig


def final_instance_figure(rows: Sequence[tuple], class_names: Sequence[str], title: str) -> Figure:
    """One row per val image ``(image_id, image, masks, classes, scores, gt_masks, gt_classes)``: the model's
    detections scoring at least :data:`FIGURE_MIN_SCORE` (labelled "class score"; a detection matching a
    ground-truth instance at IoU >= 0.5 has its colour) beside the ground-truth instances."""
    height = max(1, len(rows)) * PANEL_INCHES * 0.9 + 0.6
    fig = Figure(figsize=(2.6 * PANEL_INCHES, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=12, fontweight="bold")
    axes = fig.subplots(max(1, len(rows)), 2, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for (image_id, image, masks, classes, scores, gt_masks, gt_classes), row in zip(rows, axes, strict=False):
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        shown = scores >= FIGURE_MIN_SCORE
        masks, classes, scores = np.asarray(masks, bool)[shown], np.asarray(classes)[shown], scores[shown]
        labelled = set(np.argsort(-scores, kind="stable")[:MAX_INSTANCE_LABELS].tolist())
        texts = [
            f"{class_names[int(c)]} {s:.2f}" if i in labelled else "" for i, (c, s) in enumerate(zip(classes, scores))
        ]
        matches = match_instances(masks, np.asarray(gt_masks, bool))
        spare = iter(range(len(gt_masks), len(gt_masks) + len(masks)))
        colour_ids = [m if m is not None else next(spare) for m in matches]
        matched = sum(m is not None for m in matches)
        caption = f"{image_id}: {len(masks)} detections\n(score >= {FIGURE_MIN_SCORE:g}), {matched} match GT"
        _instance_overlay(row[0], image, masks, colour_ids, texts, caption)
        gt_texts = [class_names[int(c)] for c in gt_classes]
        _instance_overlay(
            row[1], image, gt_masks, list(range(len(gt_masks))), gt_texts, f"ground truth: {len(gt_masks)}"
        )
    return fig


# ---- training curves --------------------------------------------------------------------------------------


def _column(rows: Sequence[Mapping[str, float]], name: str) -> np.ndarray:
    return np.asarray([row.get(name, math.nan) for row in rows], dtype=np.float64)


def training_curves_figure(rows: Sequence[Mapping[str, float]], title: str) -> Figure:
    """Curves of a training history (one row per epoch, as in ``train_log.csv``).

    Panels, each present only when its columns are: ``loss`` with ``val_loss``; the loss terms ``loss_*``
    (log scale); the other validation metrics ``val_*``; the learning rate ``lr``. The x axis is the epoch, and
    the total step count is in the axis label.
    """
    columns = [name for name in rows[0]] if rows else []
    panels: list[tuple[str, list[str], bool]] = []
    if "loss" in columns:
        panels.append(("loss", [c for c in ("loss", "val_loss") if c in columns], False))
    terms = [c for c in columns if c.startswith("loss_")]
    if terms:
        panels.append(("loss terms", terms, True))
    metrics = [c for c in columns if c.startswith("val_") and c != "val_loss"]
    if metrics:
        panels.append(("validation", metrics, False))
    if "lr" in columns:
        panels.append(("learning rate (end of epoch)", ["lr"], False))

    # Legends go below the panels (five loss terms inside a panel would cover their own curves).
    tallest_legend = max((len(names) for _, names, _ in panels if names != ["lr"]), default=0)
    fig = Figure(figsize=(3.9 * max(1, len(panels)), 3.3 + 0.2 * tallest_legend), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=12, fontweight="bold")
    if not panels:
        ax = fig.subplots()
        _message_panel(ax, "", "no training history")
        return fig
    epoch = _column(rows, "epoch") if "epoch" in columns else np.arange(1, len(rows) + 1, dtype=np.float64)
    steps = _column(rows, "step") if "step" in columns else None
    xlabel = "epoch" if steps is None or not np.isfinite(steps[-1]) else f"epoch ({int(steps[-1])} steps in all)"
    for ax, (name, names, log_scale) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels, strict=True):
        for column in names:
            values = _column(rows, column)
            label = f"{CURVE_LABELS[column]} ({column})" if column in CURVE_LABELS else column
            ax.plot(epoch, values, marker="o", markersize=4, linewidth=1.6, label=label)
        positive = all(np.nanmin(_column(rows, c), initial=math.inf) > 0 for c in names)
        if log_scale and positive:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # labels at 0.2, 0.5, 1, 2, ...
            ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(FormatStrFormatter(""))  # minor labels crowd the axis
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if names == ["lr"]:
            ax.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))  # no "1e-3" offset text over the title
        else:
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    return fig


THRESHOLD_TITLES = {
    "cam": "CAM background threshold",
    "semantic": "random-walk threshold (sem_bg_threshold)",
    "instances": "instance threshold (bg_threshold)",
}


def calibration_figure(calibration: Mapping) -> Figure:
    """One panel per swept threshold of ``results/eval/calibration.json``: its curve, the chosen value marked
    (and for the CAM threshold, the label-free value beside it); the relation thresholds that follow from
    the CAM threshold are marked on its panel."""
    thresholds = calibration["thresholds"]
    names = [name for name in THRESHOLD_TITLES if name in thresholds]
    fig = Figure(figsize=(3.9 * max(1, len(names)), 3.4), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(
        f"Threshold calibration: {calibration['method']}, {calibration['n_images']} images",
        fontsize=12, fontweight="bold",
    )  # fmt: skip
    for ax, name in zip(fig.subplots(1, max(1, len(names)), squeeze=False)[0], names, strict=False):
        entry = thresholds[name]
        ax.set_title(THRESHOLD_TITLES[name], fontsize=10)
        ax.set_xlabel("threshold", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        if entry.get("curve"):
            xs = sorted(entry["curve"], key=float)
            ys = [math.nan if entry["curve"][x] is None else 100 * entry["curve"][x] for x in xs]
            ax.plot([float(x) for x in xs], ys, marker="o", markersize=3, linewidth=1.6)
            ax.set_ylabel(f"{entry['metric']} (%)", fontsize=8)
        if entry.get("label_free_curve"):
            # The label-free rule's edge mass, relative to its peak: on its own axis when a metric is plotted.
            edge_ax = ax.twinx() if entry.get("curve") else ax
            xs = sorted(entry["label_free_curve"], key=float)
            edge_ax.plot([float(x) for x in xs], [entry["label_free_curve"][x] for x in xs], color="tab:gray",
                         linestyle="--", linewidth=1.2)  # fmt: skip
            edge_ax.set_ylabel("edge mass on label borders (relative)", fontsize=8, color="tab:gray")
            edge_ax.tick_params(labelsize=8)
        ax.axvline(entry["value"], color="tab:red", linewidth=1.4, label=f"chosen {entry['value']:g}")
        if entry.get("label_free") is not None and entry.get("curve"):
            ax.axvline(entry["label_free"], color="tab:gray", linestyle=":", linewidth=1.2,
                       label=f"label-free {entry['label_free']:g}")  # fmt: skip
        if name == "cam":
            for key, style in (("conf_bg", ":"), ("conf_fg", "-.")):
                if key in thresholds:
                    value = thresholds[key]["value"]
                    ax.axvline(value, color="tab:green", linestyle=style, linewidth=1.2, label=f"{key} {value:g}")
        ax.set_xlim(0, 1)
        ax.legend(fontsize=7, loc="lower center", frameon=False)
    return fig


# ---- output -------------------------------------------------------------------------------------------------


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG on a white background (report viewers may use a dark theme)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, facecolor="white")
    return path
