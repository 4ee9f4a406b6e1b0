"""Report stage entry points: per-image figures of every stage, training curves, metric and benchmark tables.

Each function reads the workflow's files (stores only through :mod:`irnet_core.store`) and writes the PNG or
HTML files that ``rules/report.smk`` marks for Snakemake's report.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..coco_instances import decode_instances, read_coco_instances
from ..data.base import Dataset
from ..errors import InputError
from ..inference import stored_high_res
from ..instances import cluster_centroids, find_centroids
from ..palette import read_label_png
from ..report import figures, tables
from ..store import ShardReader
from .pseudo_labels import read_instances

log = logging.getLogger(__name__)


def detect_centroids(
    displacement: np.ndarray, foreground: np.ndarray, iterations: int, weak_threshold: float, min_share: float = 0.02
) -> np.ndarray:
    """The centroids that instance extraction uses, to draw: float (N, 3) rows ``(y, x, pixels)`` on the grid.

    The same two calls as :func:`~irnet_core.instances.instance_scores`: every grid pixel walks along the field
    (:func:`~irnet_core.instances.find_centroids`) and pixels are grouped by the weak-displacement region their
    walk ends in (:func:`~irnet_core.instances.cluster_centroids`). Each cluster holding at least ``min_share``
    of the ``foreground`` pixels (and 2) is drawn at the mean end point of its foreground pixels; smaller
    clusters (background pixels that stay where they are, stray cells) are left out of the figure only.
    """
    displacement = np.asarray(displacement, dtype=np.float32)
    foreground = np.asarray(foreground, dtype=bool)
    if foreground.shape != displacement.shape[1:]:
        raise ValueError(
            f"detect_centroids: foreground {foreground.shape} does not match displacement {displacement.shape}"
        )
    ends = find_centroids(displacement, iterations)
    clusters = cluster_centroids(ends, displacement, weak_threshold)
    minimum = max(2, math.ceil(min_share * np.count_nonzero(foreground)))
    rows = []
    for cluster in np.unique(clusters[foreground]):
        cells = foreground & (clusters == cluster)
        count = int(cells.sum())
        if count >= minimum:
            rows.append((float(ends[0][cells].mean()), float(ends[1][cells].mean()), float(count)))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def _read(store: str, image_id: str, names: Sequence[str]) -> tuple[dict[str, np.ndarray], dict]:
    reader = ShardReader(store)
    if image_id not in reader:
        raise ValueError(f"{store}: image {image_id!r} is not in this store")
    return reader.read(image_id, names)


def report_figures(
    *,
    image_id: str,
    dataset: Dataset,
    cam_store: str,
    relations_store: str,
    irnet_store: str,
    semantic_store: str,
    instance_store: str,
    instances: Mapping[str, float],
    out_cam: str,
    out_relations: str,
    out_irnet: str,
    out_pseudo_labels: str,
) -> None:
    """The four per-stage strips of one image: CAMs, relation labels, IRNet maps, pseudo-labels vs ground truth."""
    image = dataset.load_image(image_id)
    classes = dataset.classes
    high_res, cam_attrs = stored_high_res(ShardReader(cam_store), image_id)
    size = tuple(int(v) for v in cam_attrs["size"])
    if image.shape[:2] != size:
        raise ValueError(f"{image_id}: image is {image.shape[:2]} but its CAMs are {size}")
    keys = [int(k) for k in cam_attrs["keys"]]
    figures.save_png(figures.cam_figure(image, high_res, keys, classes, f"{image_id} · CAMs"), out_cam)

    relations = ShardReader(relations_store)
    labels = relations.read(image_id, ["labels"])[0]["labels"] if image_id in relations else None
    figures.save_png(figures.relations_figure(image, labels, classes, f"{image_id} · relation labels"), out_relations)

    maps, _ = _read(irnet_store, image_id, ["boundary", "displacement"])
    semantic = _read(semantic_store, image_id, ["labels"])[0]["labels"]
    # The semantic pseudo-label on the grid (pixel 4i of row i) tells which pixels are objects.
    foreground = (semantic[::4, ::4] > 0) & (semantic[::4, ::4] < 255)
    displacement = maps["displacement"].astype(np.float32)
    centroids = detect_centroids(
        displacement, foreground, int(instances["centroid_iterations"]), float(instances["weak_threshold"])
    )
    log.info("%s: %d centroid(s)", image_id, len(centroids))
    figures.save_png(
        figures.irnet_figure(
            image, maps["boundary"], displacement, centroids, f"{image_id} · IRNet: boundaries and displacements"
        ),
        out_irnet,
    )

    found = read_instances(ShardReader(instance_store), image_id)
    gt_class = dataset.semantic_gt(image_id)
    gt_masks, gt_classes, _ = dataset.instance_gt(image_id)
    figures.save_png(
        figures.pseudo_label_figure(
            image,
            semantic,
            gt_class,
            found.masks,
            found.classes,
            found.scores,
            gt_masks,
            gt_classes,
            classes,
            f"{image_id} · pseudo-labels vs ground truth",
        ),
        out_pseudo_labels,
    )


def read_history(path: str | Path) -> list[dict[str, float]]:
    """A ``train_log.csv`` as rows of floats (empty cells become NaN)."""
    with open(path, newline="") as handle:
        records = list(csv.DictReader(handle))
    rows = []
    for line, record in enumerate(records, start=2):
        row = {}
        for key, text in record.items():
            try:
                row[key] = float(text) if text not in ("", None) else math.nan
            except ValueError:
                raise InputError(f"{path}:{line}", f"column {key!r} holds {text!r}, not a number") from None
        rows.append(row)
    return rows


def report_curves(*, cam_history: str, irnet_history: str, out_cam: str, out_irnet: str) -> None:
    """Training curves of the CAM classifier and of IRNet from their ``train_log.csv``."""
    for history, out, title in (
        (cam_history, out_cam, "train_cam: CAM classifier"),
        (irnet_history, out_irnet, "train_irnet: IRNet (boundary and displacement branches)"),
    ):
        figures.save_png(figures.training_curves_figure(read_history(history), title), out)


def report_calibration(*, calibration: str, out_png: str) -> None:
    """The threshold curves of the calibration stages, choices marked."""
    figures.save_png(figures.calibration_figure(_load_json(calibration)), out_png)


def report_final(
    *,
    dataset: Dataset,
    image_ids: Sequence[str],
    semantic_dir: str,
    instance_coco: str,
    semantic_history: str,
    instance_history: str,
    out_semantic: str,
    out_instances: str,
    out_semantic_curves: str,
    out_instance_curves: str,
) -> None:
    """The final models' figures: val predictions beside ground truth, one figure per model, and their curves."""
    classes = dataset.classes
    semantic_rows, instance_rows = [], []
    records = read_coco_instances(instance_coco, classes)
    for image_id in image_ids:
        image = dataset.load_image(image_id)
        pred = read_label_png(Path(semantic_dir) / f"{image_id}.png")
        semantic_rows.append((image_id, image, pred, dataset.semantic_gt(image_id)))
        found = decode_instances(records[image_id])
        gt_masks, gt_classes, _ = dataset.instance_gt(image_id)
        instance_rows.append((image_id, image, found.masks, found.classes, found.scores, gt_masks, gt_classes))
    figures.save_png(figures.final_semantic_figure(semantic_rows, classes, "DeepLabv3 on val images"), out_semantic)
    figures.save_png(figures.final_instance_figure(instance_rows, classes, "Mask R-CNN on val images"), out_instances)
    for history, out, title in (
        (semantic_history, out_semantic_curves, "train_semantic_model: DeepLabv3 on semantic pseudo-labels"),
        (instance_history, out_instance_curves, "train_instance_model: Mask R-CNN on instance pseudo-labels"),
    ):
        figures.save_png(figures.training_curves_figure(read_history(history), title), out)


def _load_json(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)


def report_tables(
    *,
    cam_metrics: str,
    semantic_metrics: str,
    instance_metrics: str,
    benchmark_files: Sequence[str],
    out_cam: str,
    out_semantic: str,
    out_instances: str,
    out_benchmarks: str,
    summary: str | None = None,
    out_per_class: str | None = None,
) -> None:
    """HTML tables of the three evaluation JSONs (per class), of the summary's per-class figures stage by stage
    (with ``summary`` and ``out_per_class``) and of every job's benchmark."""
    pages = (
        (
            cam_metrics,
            out_cam,
            "CAM evaluation",
            "IoU",
            "CAMs turned into label maps with a background threshold, "
            "against ground truth; the sweep gives the mIoU at each threshold.",
        ),
        (
            semantic_metrics,
            out_semantic,
            "Semantic pseudo-label evaluation",
            "IoU",
            "Random-walk semantic pseudo-labels against ground truth.",
        ),
        (
            instance_metrics,
            out_instances,
            "Instance pseudo-label evaluation",
            "AP",
            "PASCAL VOC instance AP at IoU 0.25 / 0.5 / 0.75 of IRNet's instances, and of the CAM-components "
            "baseline (every connected CAM region is one instance).",
        ),
    )
    for source, out, title, value_name, note in pages:
        page = tables.metrics_page(_load_json(source), title, note=f"{note} Source: {source}.", value_name=value_name)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(page, encoding="utf-8")
    if summary and out_per_class:
        Path(out_per_class).parent.mkdir(parents=True, exist_ok=True)
        Path(out_per_class).write_text(tables.per_class_stages_page(_load_json(summary)), encoding="utf-8")
    rows = tables.read_benchmarks(benchmark_files)
    log.info("%d of %d benchmark files found", len(rows), len(benchmark_files))
    Path(out_benchmarks).parent.mkdir(parents=True, exist_ok=True)
    Path(out_benchmarks).write_text(tables.benchmarks_page(rows), encoding="utf-8")
