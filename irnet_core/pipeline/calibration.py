"""Calibration stage entry points: the values behind `auto` thresholds (rules in rules/calibration.smk).

Two steps, because conf_fg / conf_bg feed IRNet's training while the random-walk and instance thresholds need
IRNet's maps:

1. :func:`calibrate_cam_thresholds` after CAM inference: the CAM background threshold (a sweep against the
   calibration images' ground truth, or the label borders that lie best on colour edges) and conf_fg / conf_bg from it.
2. :func:`propagate_calibration_scores` after IRNet inference keeps the propagated semantic and instance scores
   of the calibration images, so that :func:`calibrate_label_thresholds` sweeps their thresholds (against
   ground truth, or by the label-free rule) without a new random walk when a grid changes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..data.base import Dataset
from ..evaluation import cam_label_map
from ..inference import stored_high_res
from ..instances import InstanceScores, instance_class_map, instance_scores, instances_from_scores
from ..metrics import ConfusionMatrix, InstanceAP
from ..random_walk import labels_from_scores
from ..settings import WalkSettings, as_plain
from ..store import ShardReader, ShardWriter, open_shards
from ..thresholds import THRESHOLD_RULES, EdgeAlignment, best_of, gradient_magnitude, relation_thresholds
from .common import progress, write_json
from .pseudo_labels import _read_inputs, walked_scores

log = logging.getLogger(__name__)


def _curve(scores: Mapping[float, float | None]) -> dict[str, float | None]:
    return {f"{t:g}": (None if s is None or np.isnan(s) else float(s)) for t, s in sorted(scores.items())}


def _few_images_warning(n_images: int, min_images: int) -> str | None:
    """The warning of a calibration list shorter than ``calibration.min_images`` (logged and recorded)."""
    if n_images >= min_images:
        return None
    message = (f"{n_images} calibration images, fewer than calibration.min_images ({min_images}): the sweeps' "
               "peaks are noisy; each threshold is the peak of its curve averaged over grid neighbours")  # fmt: skip
    log.warning(message)
    return message


def _from_cam(cam: float, offset: float) -> str:
    """How a relation threshold follows from the CAM threshold, for the summary."""
    return f"from the CAM threshold: sigmoid(logit({cam:g}) {offset:+g})"


def calibrate_cam_thresholds(
    *,
    cam_stores: Sequence[str],
    dataset: Dataset,
    image_ids: Sequence[str],
    method: str,
    grid: Sequence[float],
    offsets: Mapping[str, float],
    min_gain: float,
    min_images: int,
    out_path: str,
) -> dict:
    """The CAM background threshold and the relation thresholds that follow from it, in ``out_path``, by the rule
    ``method`` (a name of :data:`~irnet_core.thresholds.THRESHOLD_RULES`).

    With ground truth (`calibrated`): from the CAM mIoU curve on ``image_ids``
    (:func:`~irnet_core.thresholds.calibrated_choice`: its peak, or on few images the robust choice). Without:
    the label-free rule
    (:class:`~irnet_core.thresholds.EdgeAlignment`: label borders on colour edges). The label-free value and
    the curve's raw peak are recorded in both cases, so that the rules can be compared on the same images.
    """
    method, with_ground_truth = THRESHOLD_RULES[method].name, THRESHOLD_RULES[method].needs_ground_truth
    shards = open_shards(cam_stores)
    edges = EdgeAlignment(grid)
    matrices = {float(t): ConfusionMatrix(len(dataset.classes) + 1) for t in grid}
    for image_id in progress(image_ids, len(image_ids), "CAM thresholds", log):
        high_res, attrs = stored_high_res(shards[image_id], image_id)
        high_res, keys = high_res.astype(np.float32), attrs["keys"]
        maps = {t: cam_label_map(high_res, keys, t) for t in matrices}
        edges.update(gradient_magnitude(dataset.load_image(image_id)), maps.__getitem__)
        if with_ground_truth:
            gt = dataset.semantic_gt(image_id)
            if gt.shape != high_res.shape[1:]:
                raise ValueError(f"{image_id}: ground truth is {gt.shape} but the CAMs are {high_res.shape[1:]}")
            for t, matrix in matrices.items():
                matrix.update(gt, maps[t])
    curve = {t: m.miou() for t, m in matrices.items()} if with_ground_truth else None
    label_free = edges.best()
    cam, rule = THRESHOLD_RULES[method].choose(curve, label_free, len(image_ids), min_images, min_gain)
    conf_fg, conf_bg = relation_thresholds(cam, offsets["fg"], offsets["bg"])
    result = {
        "method": method,
        "n_images": len(image_ids),
        "warning": _few_images_warning(len(image_ids), min_images) if with_ground_truth else None,
        "thresholds": {
            "cam": {
                "value": cam,
                "method": method,
                "rule": rule,
                "peak": best_of(curve) if curve else None,
                "metric": "mIoU" if curve else None,
                "curve": _curve(curve) if curve else None,
                "label_free": label_free,
                "label_free_curve": _curve(
                    {t: v / max(max(edges.mass.values()), 1e-12) for t, v in edges.mass.items()}
                ),
            },
            "conf_fg": {"value": conf_fg, "method": _from_cam(cam, offsets["fg"])},
            "conf_bg": {"value": conf_bg, "method": _from_cam(cam, offsets["bg"])},
        },
    }
    write_json(out_path, result)
    log.info("CAM threshold %g (%s), conf_fg %g, conf_bg %g", cam, method, conf_fg, conf_bg)
    return result


def propagate_calibration_scores(
    *,
    cam_stores: Sequence[str],
    irnet_stores: Sequence[str],
    image_ids: Sequence[str],
    walk: WalkSettings,
    centroid_iterations: int,
    weak_threshold: float,
    cam_floor: float | None,
    out_store: str,
    device: torch.device,
) -> int:
    """Propagated semantic scores (K, H, W) and instance rows (R, H, W) of the calibration images, as the
    pseudo-label stages compute them up to their background threshold (the semantic ones with the CAM veto
    where ``cam_floor`` is given)."""
    cams, maps = open_shards(cam_stores), open_shards(irnet_stores)
    centroids = {"centroid_iterations": centroid_iterations, "weak_threshold": weak_threshold}
    attrs = {"random_walk": as_plain(walk), "instances": centroids, "cam_floor": cam_floor}
    with ShardWriter(out_store, stage="calibration_scores", image_ids=image_ids, attrs=attrs) as writer:
        for image_id in progress(image_ids, len(image_ids), "calibration scores", log):
            cam, keys, size, boundary, displacement = _read_inputs(cams[image_id], maps[image_id], image_id, device)
            semantic = walked_scores(cams[image_id], image_id, cam, keys, boundary, size, walk, cam_floor)
            rows = instance_scores(cam, keys, boundary, displacement, size, walk, **centroids, device=device)
            arrays = {
                "semantic": semantic.cpu().numpy().astype(np.float32),
                "instances": rows.scores.astype(np.float32),
                "row_classes": rows.row_classes.astype(np.int64),
            }
            writer.write(image_id, arrays, {"keys": list(keys), "size": list(size)})
    return len(image_ids)


def calibrate_label_thresholds(
    *,
    scores_store: str,
    cam_calibration: str,
    dataset: Dataset,
    image_ids: Sequence[str],
    method: str,
    semantic_grid: Sequence[float],
    instance_grid: Sequence[float],
    min_fragment: float,
    min_gain: float,
    min_images: int,
    out_path: str,
    summary_path: str,
) -> dict:
    """The random-walk and instance background thresholds, swept over the kept scores: with ground truth the
    choice from the random-walk mIoU and instance mAP50 curves (as the CAM threshold's); without, the
    label-free rule of the CAM threshold applied to the propagated scores
    (:class:`~irnet_core.thresholds.EdgeAlignment`), whose value is recorded in both cases.
    ``summary_path`` gets every threshold (the CAM step's too). ``method``: as for the CAM threshold."""
    import json

    method, with_ground_truth = THRESHOLD_RULES[method].name, THRESHOLD_RULES[method].needs_ground_truth

    scores = ShardReader(scores_store, expected_ids=image_ids)
    semantic = {float(t): ConfusionMatrix(len(dataset.classes) + 1) for t in semantic_grid}
    instance_ap = {float(t): InstanceAP(len(dataset.classes), (0.5,)) for t in instance_grid}
    semantic_edges, instance_edges = EdgeAlignment(semantic_grid), EdgeAlignment(instance_grid)
    for image_id in progress(image_ids, len(image_ids), "threshold sweeps", log):
        arrays, attrs = scores.read(image_id)
        keys = attrs["keys"]
        semantic_t = torch.from_numpy(arrays["semantic"])
        rows = InstanceScores(arrays["instances"], arrays["row_classes"])
        semantic_maps = {t: labels_from_scores(semantic_t, keys, t).numpy() for t in semantic}
        gradient = gradient_magnitude(dataset.load_image(image_id))
        semantic_edges.update(gradient, semantic_maps.__getitem__)
        instance_edges.update(gradient, lambda t, rows=rows: instance_class_map(rows, t))
        if with_ground_truth:
            gt = dataset.semantic_gt(image_id)
            gt_masks, gt_classes, _ = dataset.instance_gt(image_id)
            for t, matrix in semantic.items():
                matrix.update(gt, semantic_maps[t])
            for t, accumulator in instance_ap.items():
                found = instances_from_scores(rows, t, min_fragment)
                accumulator.add(found.masks, found.classes, found.scores, gt_masks, gt_classes)
    curves = {
        "semantic": ({t: m.miou() for t, m in semantic.items()}, "mIoU", semantic_edges),
        "instances": ({t: acc.result()[0.5][1] for t, acc in instance_ap.items()}, "mAP50", instance_edges),
    }
    thresholds = {}
    for name, (curve, metric, edges) in curves.items():
        label_free = edges.best()
        peak = max(edges.mass.values()) or 1.0
        value, rule = THRESHOLD_RULES[method].choose(
            curve if with_ground_truth else None, label_free, len(image_ids), min_images, min_gain
        )
        thresholds[name] = {
            "value": value,
            "method": method,
            "rule": rule,
            "peak": best_of(curve) if with_ground_truth else None,
            "metric": metric if with_ground_truth else None,
            "curve": _curve(curve) if with_ground_truth else None,
            "label_free": label_free,
            "label_free_curve": _curve({t: mass / peak for t, mass in edges.mass.items()}),
        }
    warning = _few_images_warning(len(image_ids), min_images) if with_ground_truth else None
    result = {"method": method, "n_images": len(image_ids), "warning": warning, "thresholds": thresholds}
    write_json(out_path, result)
    with open(cam_calibration) as handle:
        cam = json.load(handle)
    write_json(
        summary_path,
        {
            "method": method,
            "n_images": len(image_ids),
            "warning": warning,
            "image_ids": list(image_ids),
            "thresholds": {**cam["thresholds"], **thresholds},
        },
    )
    log.info(
        "random-walk threshold %g, instance threshold %g (%s)",
        thresholds["semantic"]["value"], thresholds["instances"]["value"], method,
    )  # fmt: skip
    return result
