"""IRNet learns what the method needs: boundaries on object borders, displacements that meet at centres.

Trained briefly on clean relation labels (ground truth with its void band as "unsure") of a few demo images,
with the project's own model, path index, pair labels and losses; checked with irnet_core.diagnostics and the
measures below, which only this test needs.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from irnet_core import transforms as T
from irnet_core.data.voc import load_image
from irnet_core.diagnostics import _rms_spread, class_borders, grid_labels, walk_instances
from irnet_core.inference import infer_boundary_displacement
from irnet_core.losses import irnet_loss, pair_labels
from irnet_core.models.backbone import build_backbone
from irnet_core.models.irnet import IRNet
from irnet_core.palette import read_label_png
from irnet_core.path_index import get_path_index
from irnet_core.tools.demo_generator import generate_demo_dataset

CROP = 96


def boundary_contrast(boundary: np.ndarray, class_gt: np.ndarray) -> tuple[float, float]:
    """Mean boundary score on ground-truth borders and deep inside objects (stride-4 grid cells).

    Interior cells: foreground cells at least two cells away from any border cell.
    """
    labels = grid_labels(class_gt, boundary.shape)
    border = class_borders(class_gt, boundary.shape)
    interior = (labels > 0) & (labels < 255) & ~ndimage.binary_dilation(border, iterations=2)
    if not border.any() or not interior.any():
        return float("nan"), float("nan")
    return float(boundary[border].mean()), float(boundary[interior].mean())


def centroid_spread_ratio(displacement: np.ndarray, object_gt: np.ndarray) -> list[float]:
    """How tightly the cells of each object meet after following the field, relative to the object's size.

    Per instance: RMS distance of the end points to their mean over the RMS distance of the cells to their
    centroid. 1 = no movement, 0 = a single point.
    """
    return [_rms_spread(end) / _rms_spread(start) for start, end in walk_instances(displacement, object_gt)]


def centre_separation(displacement: np.ndarray, object_gt: np.ndarray) -> list[float]:
    """For each pair of instances: distance between their mean end points over the smaller object's spread.

    Large values mean different objects meet at different centres (a field that pulls everything into one
    point would give small spreads but also small separations).
    """
    walks = walk_instances(displacement, object_gt)
    out = []
    for a in range(len(walks)):
        for b in range(a + 1, len(walks)):
            gap = np.linalg.norm(walks[a][1].mean(axis=1) - walks[b][1].mean(axis=1))
            out.append(float(gap / min(_rms_spread(walks[a][0]), _rms_spread(walks[b][0]))))
    return out


def test_irnet_learns_borders_and_centres(tmp_path):
    generate_demo_dataset(tmp_path, n_images=6, n_labelled=2, seed=3, min_size=96, max_size=112)
    ids = (tmp_path / "ImageSets/Segmentation/train_aug.txt").read_text().split()
    images = [load_image(tmp_path / f"JPEGImages/{i}.jpg") for i in ids]
    classes = [read_label_png(tmp_path / f"SegmentationClass/{i}.png") for i in ids]
    objects = [read_label_png(tmp_path / f"SegmentationObject/{i}.png") for i in ids]
    # Relations must separate instances, as mined labels separate classes: use instance ids as labels.
    relations = [np.where(o == 255, 255, o).astype(np.uint8) for o in objects]

    torch.manual_seed(0)
    net = IRNet(build_backbone("resnet18", "none", frozen_bn=False), train_backbone=True)
    groups = net.param_groups()
    optimizer = torch.optim.AdamW(
        [{"params": groups["edge"] + groups["backbone"]}, {"params": groups["displacement"], "lr": 3e-3}], lr=1e-3
    )
    index = get_path_index(5, CROP // 4, CROP // 4)
    rng = np.random.default_rng(0)
    net.train()
    for _ in range(120):
        batch, grids = [], []
        for k in rng.choice(len(ids), size=4):
            image, label = T.random_hflip(T.normalize(images[k]), relations[k], rng)
            image, label = T.random_crop(image, label, CROP, rng)
            batch.append(T.to_chw(image))
            grids.append(T.downsample_label_nearest(label, 4))
        x = torch.from_numpy(np.stack(batch).copy())
        pos_bg, pos_fg, neg = pair_labels(torch.from_numpy(np.stack(grids).astype(np.int64)), index)
        losses = irnet_loss(*net(x), pos_bg, pos_fg, neg, index)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()

    border, interior, spread, separation = [], [], [], []
    for image, class_gt, object_gt in zip(images, classes, objects):
        boundary, displacement = infer_boundary_displacement(net, image, pad_size=CROP + 16)
        on_border, inside = boundary_contrast(boundary, class_gt)
        border.append(on_border)
        interior.append(inside)
        spread += centroid_spread_ratio(displacement, object_gt)
        separation += centre_separation(displacement, object_gt)
    assert np.nanmean(border) > np.nanmean(interior) + 0.1, (border, interior)
    # The cells of one object meet: their end points spread much less than the object itself ...
    assert np.median(spread) < 0.5, spread
    # ... and not because everything collapses into one point: different objects end at different centres.
    assert np.median(separation) > 1.0, separation
