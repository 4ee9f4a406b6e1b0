"""Pseudo-label stage entry points: semantic propagation, instance extraction, exports, evaluation, summary."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..coco_instances import decode_instances, read_coco_instances
from ..data.base import Dataset
from ..errors import InputError
from ..export import CocoWriter, annotation_image_key, image_keys_by_id, write_label_png
from ..inference import stored_high_res
from ..instances import Instances, cam_component_instances, extract_instances, instances_to_map, map_to_instances
from ..metrics import (
    REPORT_IOUS,
    ConfusionMatrix,
    InstanceAP,
    InstanceCoverage,
    coco_segm_ap,
    coverage_report,
    instance_ap_report,
    semantic_report,
)
from ..palette import read_label_png
from ..random_walk import labels_from_scores, semantic_scores, veto_by_cam
from ..settings import InstanceSettings, RandomWalkSettings, WalkSettings, as_plain
from ..store import ShardReader, ShardWriter, open_shards
from .common import progress, write_json

log = logging.getLogger(__name__)


def _read_inputs(cams: ShardReader, maps: ShardReader, image_id: str, device: torch.device):
    cam_arrays, cam_attrs = cams.read(image_id, ["cam"])
    map_arrays, _ = maps.read(image_id, ["boundary", "displacement"])
    cam = torch.from_numpy(cam_arrays["cam"].astype(np.float32)).to(device)
    boundary = torch.from_numpy(map_arrays["boundary"].astype(np.float32)).to(device)
    if cam.shape[1:] != boundary.shape:
        raise ValueError(
            f"{maps.path}: {image_id}: boundary map {tuple(boundary.shape)} does not match CAM grid {tuple(cam.shape[1:])}"
        )
    return cam, cam_attrs["keys"], tuple(cam_attrs["size"]), boundary, map_arrays["displacement"].astype(np.float32)


def propagate_semantic_shard(
    *,
    cam_store: str,
    irnet_store: str,
    image_ids: Sequence[str],
    random_walk: RandomWalkSettings,
    cam_floor: float | None,
    out_store: str,
    device: torch.device,
) -> int:
    """Semantic pseudo-labels (uint8, 0 = background, c+1 = class c) of one shard's images (method doc §2.12),
    with the CAM veto (:func:`~irnet_core.random_walk.veto_by_cam`) where ``cam_floor`` is given."""
    cams = ShardReader(cam_store, expected_ids=image_ids)
    maps = ShardReader(irnet_store, expected_ids=image_ids)
    attrs = {"random_walk": as_plain(random_walk), "cam_floor": cam_floor}
    with ShardWriter(out_store, stage="semantic", image_ids=image_ids, attrs=attrs) as writer:
        for image_id in progress(image_ids, len(image_ids), "semantic labels", log):
            cam, keys, size, boundary, _ = _read_inputs(cams, maps, image_id, device)
            scores = walked_scores(cams, image_id, cam, keys, boundary, size, random_walk.walk, cam_floor)
            labels = labels_from_scores(scores, keys, random_walk.sem_bg_threshold)
            writer.write(
                image_id, {"labels": labels.cpu().numpy().astype(np.uint8)}, {"keys": keys, "size": list(size)}
            )
    return len(image_ids)


def walked_scores(cams: ShardReader, image_id: str, cam, keys, boundary, size, walk: WalkSettings, cam_floor):
    """The propagated class scores of one image, vetoed where the class's full-size CAM is below ``cam_floor``
    (None: the paper's walk, no veto)."""
    scores = semantic_scores(cam, keys, boundary, size, walk)
    if cam_floor is None or not keys:
        return scores
    high_res, _ = stored_high_res(cams, image_id)
    return veto_by_cam(scores, torch.from_numpy(high_res.astype(np.float32)), cam_floor)


def extract_instances_shard(
    *,
    cam_store: str,
    irnet_store: str,
    image_ids: Sequence[str],
    walk: WalkSettings,
    instances: InstanceSettings,
    out_store: str,
    device: torch.device,
) -> int:
    """Instance pseudo-labels of one shard: an instance-id map plus per-instance class and score arrays."""
    cams = ShardReader(cam_store, expected_ids=image_ids)
    maps = ShardReader(irnet_store, expected_ids=image_ids)
    attrs = {"random_walk": as_plain(walk), "instances": as_plain(instances)}
    with ShardWriter(out_store, stage="instances", image_ids=image_ids, attrs=attrs) as writer:
        for image_id in progress(image_ids, len(image_ids), "instances", log):
            cam, keys, size, boundary, displacement = _read_inputs(cams, maps, image_id, device)
            found = extract_instances(cam, keys, boundary, displacement, size, walk, instances, device=device)
            id_map, classes, scores = instances_to_map(found)
            writer.write(
                image_id,
                {"instance_map": id_map, "classes": classes.astype(np.int64), "scores": scores.astype(np.float32)},
                {"keys": keys, "size": list(size), "count": len(classes)},
            )
    return len(image_ids)


def read_instances(reader: ShardReader, image_id: str) -> Instances:
    arrays, _ = reader.read(image_id, ["instance_map", "classes", "scores"])
    return map_to_instances(arrays["instance_map"], arrays["classes"], arrays["scores"])


def export_semantic_labels(
    *, semantic_stores: Sequence[str], dataset: Dataset, image_ids: Sequence[str], out_dir: str
) -> int:
    """VOC-palette PNGs of the semantic labels, one image at a time."""
    semantic = open_shards(semantic_stores)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for image_id in progress(image_ids, len(image_ids), "export", log):
        if image_id not in semantic:
            raise ValueError(f"{image_id}: image has no semantic pseudo-labels in the shard stores")
        labels = semantic[image_id].read(image_id, ["labels"])[0]["labels"]
        write_label_png(Path(out_dir) / f"{image_id}.png", labels)
    log.info("exported %d label maps", len(image_ids))
    return len(image_ids)


def export_instance_labels(
    *, instance_stores: Sequence[str], dataset: Dataset, image_ids: Sequence[str], out_coco: str
) -> int:
    """A COCO instances file of the instance labels, one image at a time (memory does not grow with the number
    of images). It keeps the dataset's own image and category ids where it has them (see
    :mod:`irnet_core.export`)."""
    instance = open_shards(instance_stores)
    with CocoWriter(out_coco, dataset.classes, dataset.category_ids) as coco:
        for image_id in progress(image_ids, len(image_ids), "export", log):
            if image_id not in instance:
                raise ValueError(f"{image_id}: image has no instance pseudo-labels in the shard stores")
            found = read_instances(instance[image_id], image_id)
            coco.add(image_id, dataset.file_name(image_id), found.masks.shape[1:], found,
                     dataset.source_image_id(image_id))  # fmt: skip
    log.info("exported %d instances of %d images", coco.n_annotations, coco.n_images)
    return coco.n_annotations


def export_labels(
    *,
    semantic_stores: Sequence[str],
    instance_stores: Sequence[str],
    dataset: Dataset,
    image_ids: Sequence[str],
    out_dir: str,
    out_coco: str,
) -> dict:
    """Both exports at once (the workflow runs them as two rules, export_semantic and export_instances)."""
    images = export_semantic_labels(semantic_stores=semantic_stores, dataset=dataset, image_ids=image_ids,
                                    out_dir=out_dir)  # fmt: skip
    annotations = export_instance_labels(instance_stores=instance_stores, dataset=dataset, image_ids=image_ids,
                                         out_coco=out_coco)  # fmt: skip
    return {"images": images, "annotations": annotations}


def evaluate_semantic(*, label_dir: str, dataset: Dataset, image_ids: Sequence[str], out_path: str) -> dict:
    """mIoU of the exported semantic pseudo-labels against ground truth (method doc §2.14), one image at a time."""
    matrix = ConfusionMatrix(len(dataset.classes) + 1)
    for image_id in image_ids:
        gt = dataset.semantic_gt(image_id)
        pred = read_label_png(Path(label_dir) / f"{image_id}.png")
        if pred.shape != gt.shape:
            where = dataset.annotation_files([image_id], "semantic")[0]
            raise InputError(where, f"ground truth is {gt.shape} but the pseudo-label is {pred.shape}")
        matrix.update(gt, np.where(pred == 255, 0, pred))
    result = {**semantic_report(matrix, ["background", *dataset.classes]), "n_images": len(image_ids)}
    write_json(out_path, result)
    return result


def evaluate_instances(
    *,
    instance_stores: Sequence[str],
    cam_stores: Sequence[str],
    dataset: Dataset,
    image_ids: Sequence[str],
    baseline_threshold: float,
    out_path: str,
    exported_coco: str | None = None,
) -> dict:
    """PASCAL VOC instance AP at IoU 0.25/0.5/0.75 for IRNet's instances and the CAM-components baseline,
    accumulated one image at a time; for a COCO source also COCO's AP / AP50 / AP75 (pycocotools, segm) of the
    exported file ``exported_coco`` against the official annotation file."""
    instance = open_shards(instance_stores)
    cams = open_shards(cam_stores)
    thresholds = tuple(REPORT_IOUS.values())
    ours, baseline = InstanceAP(len(dataset.classes), thresholds), InstanceAP(len(dataset.classes), thresholds)
    coverage = InstanceCoverage(len(dataset.classes))
    n_found = n_gt = 0
    for image_id in progress(image_ids, len(image_ids), "instance evaluation", log):
        gt_masks, gt_classes, _ = dataset.instance_gt(image_id)  # crowd / void regions: not used by VOC AP
        found = read_instances(instance[image_id], image_id)
        high_res, attrs = stored_high_res(cams[image_id], image_id)
        components = cam_component_instances(high_res.astype(np.float32), attrs["keys"], baseline_threshold)
        ours.add(found.masks, found.classes, found.scores, gt_masks, gt_classes)
        coverage.add(found.masks, found.classes, gt_masks, gt_classes)
        baseline.add(components.masks, components.classes, components.scores, gt_masks, gt_classes)
        n_found, n_gt = n_found + len(found), n_gt + len(gt_classes)
    main, base = instance_ap_report(ours, dataset.classes), instance_ap_report(baseline, dataset.classes)
    result = {
        **main,
        **coverage_report(coverage, dataset.classes),
        "map25_cam_baseline": base["map25"],
        "map50_cam_baseline": base["map50"],
        "map75_cam_baseline": base["map75"],
        "cam_baseline_per_class": base["per_class"],
        "cam_baseline_threshold": baseline_threshold,
        "n_images": len(image_ids),
        "n_instances": n_found,
        "n_gt_instances": n_gt,
    }
    if exported_coco is not None and dataset.format == "coco":
        result["coco"] = coco_scores(dataset, image_ids, exported_coco)
    write_json(out_path, result)
    return result


def score_instance_file(dataset: Dataset, image_ids: Sequence[str], coco_path: str, what: str = "image") -> dict:
    """VOC instance AP (``map25|50|75``, ``per_class``), ``recall50`` / ``merged`` (with ``coverage_per_class``)
    and the instance counts of a COCO instances file this workflow wrote (pseudo-labels, a self-training round's
    targets, a model's predictions) on ``image_ids``; every image must have an entry (``what`` names them)."""
    records = read_coco_instances(coco_path, dataset.classes)
    accumulator = InstanceAP(len(dataset.classes), tuple(REPORT_IOUS.values()))
    coverage = InstanceCoverage(len(dataset.classes))
    n_found = n_gt = 0
    for image_id in image_ids:
        if image_id not in records:
            raise ValueError(f"{coco_path}: {what} {image_id} has no entry")
        found = decode_instances(records[image_id])
        gt_masks, gt_classes, _ = dataset.instance_gt(image_id)
        accumulator.add(found.masks, found.classes, found.scores, gt_masks, gt_classes)
        coverage.add(found.masks, found.classes, gt_masks, gt_classes)
        n_found, n_gt = n_found + len(found), n_gt + len(gt_classes)
    return {
        **instance_ap_report(accumulator, dataset.classes),
        **coverage_report(coverage, dataset.classes),
        "n_images": len(image_ids),
        "n_instances": n_found,
        "n_gt_instances": n_gt,
    }


def coco_scores(dataset: Dataset, image_ids: Sequence[str], exported_coco: str) -> dict:
    """COCO AP, AP50, AP75 (segm) of the exported instances against the dataset's annotation file(s), on
    ``image_ids``: per annotation file when the images come from several splits, else one set of keys.

    Predictions are matched to images by the workflow's id (``image_key``), then scored against their own
    split's file under its integer id: user-made splits may reuse integer ids, and matching by those alone
    would score one image's predictions against another's ground truth."""
    with open(exported_coco) as handle:
        exported = json.load(handle)
    split_of: dict[str, str] = {}
    by_file: dict[str, list[int]] = {}
    for image_id in image_ids:
        path = dataset.annotation_files([image_id], "instance")[0]
        split_of[image_id] = path
        by_file.setdefault(path, []).append(dataset.source_image_id(image_id))
    predictions: dict[str, list[dict]] = {path: [] for path in by_file}
    keys_by_id = image_keys_by_id(exported["images"])
    for annotation in exported["annotations"]:
        key = annotation_image_key(annotation, keys_by_id, exported_coco)
        if key in split_of:
            predictions[split_of[key]].append(annotation)
    scores = {path: coco_segm_ap(path, predictions[path], ids) for path, ids in by_file.items()}
    return next(iter(scores.values())) if len(scores) == 1 else scores


# ---- summary ----------------------------------------------------------------------------------------------


def _load(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)


def _final_rows(final_path: str | None, pct) -> list[str]:
    """The summary's val rows: final models beside the pseudo-label pipeline and the CAM baselines."""
    if not final_path:
        return []
    final = _load(final_path)
    return [
        "",
        f"  val images ({final['n_images']}, held out from every pseudo-label stage)",
        f"  semantic mIoU, DeepLabv3 (final)      {pct(final['semantic']['miou'])}",
        f"  semantic mIoU, pseudo-label pipeline  {pct(final['pseudo_labels']['miou'])}",
        f"  semantic mIoU, CAMs                   {pct(final['baselines']['cam_miou'])}",
        f"  instance mAP50, Mask R-CNN (final)    {pct(final['instance']['map50'])}",
        f"  instance mAP50, pseudo-label pipeline {pct(final['pseudo_labels']['map50'])}",
        f"  instance mAP50, CAM components        {pct(final['baselines']['cam_components_map50'])}",
    ]


def _round_rows(rounds: Sequence[dict], pct) -> list[str]:
    """The summary's self-training rows: each round's targets on the evaluated images (and the val mAP50 of the
    Mask R-CNN trained on them), then their AP50 per class."""
    if not rounds:
        return []
    has_val = "val_model" in rounds[0]
    lines = ["", "  self-training rounds (targets on the evaluated images; round 0: IRNet's pseudo-labels)",
             f"    {'round':<7}{'mAP50':>7}{'mAP75':>7}{'recall':>8}{'merged':>8}" + (f"{'val mAP50':>11}" if has_val else "")]  # fmt: skip
    for entry in rounds:
        targets = entry["targets"]
        row = f"    {entry['round']:<7}{pct(targets['map50']):>7}{pct(targets['map75']):>7}"
        row += f"{pct(targets.get('recall50')):>8}{pct(targets.get('merged')):>8}"
        lines.append(row + (f"{pct(entry['val_model']['map50']):>11}" if has_val else ""))
    names = list(rounds[0]["targets"]["per_class"])
    lines.append(f"    {'AP50 per class':<20}" + "".join(f"{'round ' + str(e['round']):>9}" for e in rounds))
    for name in names:
        cells = "".join(f"{pct(e['targets']['per_class'][name]['ap50']):>9}" for e in rounds)
        lines.append(f"    {name[:20]:<20}{cells}")
    return lines


# A class whose random-walk IoU is more than this many points below its CAM IoU is flagged: the walk spread
# it into background or other classes (or let background take it), which the mean can hide.
LOSS_FLAG_POINTS = 2.0


def per_class_figures(cam: dict, semantic: dict, instances: dict, final: dict | None = None) -> dict[str, dict]:
    """{class: {cam, random_walk, change, pseudo_ap50[, val_deeplab, val_maskrcnn_ap50]}}: the per-class table
    beside every mean of the summary. CAM IoU is at the threshold used (cam.json's ``threshold``); the val
    columns are the final models on the val images (another image set than the first three)."""
    rows: dict[str, dict] = {}
    for name, rw in semantic["per_class"].items():
        cam_iou = cam["per_class"].get(name)
        row = {"cam": cam_iou, "random_walk": rw, "change": None if cam_iou is None else rw - cam_iou}
        if name in instances["per_class"]:
            row["pseudo_ap50"] = instances["per_class"][name]["ap50"]
            coverage = instances.get("coverage_per_class", {}).get(name, {})
            if coverage:
                row["pseudo_recall50"], row["pseudo_merged"] = coverage["recall50"], coverage["merged"]
        if final:
            row["val_deeplab"] = final["semantic"]["per_class"].get(name)
            if name in final["instance"]["per_class"]:
                row["val_maskrcnn_ap50"] = final["instance"]["per_class"][name]["ap50"]
        rows[name] = row
    return rows


def classes_lost_in_random_walk(rows: dict[str, dict], points: float = LOSS_FLAG_POINTS) -> list[str]:
    """Classes whose random-walk IoU is more than ``points`` below their CAM IoU."""
    return [name for name, row in rows.items() if row["change"] is not None and -100 * row["change"] > points]


def _per_class_lines(rows: dict[str, dict], lost: list[str], pct) -> list[str]:
    columns = [("cam", "CAM", 7), ("random_walk", "RW", 7), ("change", "change", 8), ("pseudo_ap50", "AP50", 7),
               ("pseudo_recall50", "R50", 7), ("pseudo_merged", "merged", 8), ("val_deeplab", "val DLv3", 10),
               ("val_maskrcnn_ap50", "val AP50", 10)]  # fmt: skip
    columns = [c for c in columns if any(c[0] in row for row in rows.values())]

    def cell(row, key, width):
        if key not in row:
            return " " * width
        if key == "change":
            return f"{'n/a' if row[key] is None else f'{100 * row[key]:+.1f}':>{width}}"
        return f"{pct(row[key]):>{width}}"

    lines = [
        "",
        "  per class (% on the eval images; R50: objects recalled at IoU 0.5, merged: objects in one instance with "
        "another of their class)",
        f"  {'class':<16}" + "".join(f"{title:>{width}}" for _, title, width in columns),
    ]
    for name, row in rows.items():
        line = f"  {name:<16}" + "".join(cell(row, key, width) for key, _, width in columns)
        lines.append(line.rstrip() + ("  LOST IN THE RANDOM WALK" if name in lost else ""))
    if lost:
        lines.append(
            f"  warning: {', '.join(lost)}: random-walk IoU more than {LOSS_FLAG_POINTS:g} points below the CAM's"
        )
    return lines


def stage_timings(benchmark_dir: str) -> dict[str, dict]:
    """Per rule: job count, summed wall seconds and the largest peak memory (MB) from `benchmark:` files."""
    timings: dict[str, dict] = {}
    # benchmarks/<rule>/<wildcards>.tsv; a wildcard value with a slash (self_training/round-0) nests deeper.
    for path in sorted(Path(benchmark_dir).glob("*/**/*.tsv")):
        with open(path) as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if not rows:
            continue
        rule = path.relative_to(benchmark_dir).parts[0]
        entry = timings.setdefault(rule, {"jobs": 0, "seconds": 0.0, "max_rss_mb": 0.0})
        entry["jobs"] += 1
        entry["seconds"] += float(rows[-1]["s"])
        with contextlib.suppress(ValueError):
            entry["max_rss_mb"] = max(entry["max_rss_mb"], float(rows[-1].get("max_rss", "nan")))
    return timings


def _calibration_warning(calibration_path: str | None) -> list[str]:
    warning = _load(calibration_path).get("warning") if calibration_path else None
    return [f"    warning: {warning}"] if warning else []


def thresholds_used(configured: dict, calibration_path: str | None) -> dict[str, dict]:
    """Each threshold key's value and how it was chosen: given (a number in the config), or the calibration
    stage's choice for `auto` (read from ``calibration_path``, results/eval/calibration.json)."""
    from ..thresholds import AUTO, CALIBRATED_NAME

    calibrated = {}
    if calibration_path:
        with open(calibration_path) as handle:
            calibration = json.load(handle)
        n_images = calibration["n_images"]
        for name, entry in calibration["thresholds"].items():
            how = entry["method"]
            if how in ("calibrated", "label-free"):
                how = f"{how} on {n_images} images"
                if how.startswith("calibrated") and entry.get("rule"):
                    how += f" ({entry['rule']})"
            calibrated[name] = {"value": entry["value"], "how": f"auto: {how}"}
    names = {".".join(path): name for path, name in CALIBRATED_NAME.items()}
    used = {}
    for key, value in configured.items():
        if value == AUTO:
            if names[key] not in calibrated:
                raise ValueError(f"{key} is auto but {calibration_path} holds no {names[key]!r} threshold")
            used[key] = calibrated[names[key]]
        else:
            used[key] = {"value": value, "how": "given in the config"}
    return used


def summarize(
    *,
    cam_path: str,
    semantic_path: str,
    instances_path: str,
    benchmark_dir: str,
    stage_order: Sequence[str],
    out_json: str,
    out_table: str,
    thresholds: dict | None = None,
    calibration_path: str | None = None,
    final_path: str | None = None,
    round_paths: Sequence[str] = (),
) -> str:
    """One table of the headline numbers and the per-stage wall time (stages in ``stage_order``, then any other
    that has benchmarks), with the val rows of ``final_path`` (results/eval/final.json) and the self-training
    rounds' scores (``round_paths``: results/eval/self_training/round-J.json) when given; returns the table text."""
    with open(cam_path) as h:
        cam = json.load(h)
    with open(semantic_path) as h:
        semantic = json.load(h)
    with open(instances_path) as h:
        instances = json.load(h)
    timings = stage_timings(benchmark_dir)
    rounds = [_load(path) for path in round_paths]
    used = thresholds_used(thresholds or {}, calibration_path)
    per_class = per_class_figures(cam, semantic, instances, _load(final_path) if final_path else None)
    lost = classes_lost_in_random_walk(per_class)
    if lost:
        log.warning("random-walk IoU more than %g points below the CAM's for %s", LOSS_FLAG_POINTS, ", ".join(lost))

    def pct(value) -> str:
        return "  n/a" if value is None else f"{100 * value:5.1f}"

    lines = [
        "IRNet pipeline summary",
        "",
        f"  CAM mIoU (threshold {cam['threshold']:g})           {pct(cam['miou'])}",
        f"  CAM mIoU (best threshold {cam['best_threshold']:g})      {pct(cam['best_miou'])}",
        f"    baseline: all background           {pct(cam['baseline_background'])}",
        f"    baseline: untrained network        {pct(cam['baseline_untrained'])}",
        f"  random-walk mIoU (semantic labels)    {pct(semantic['miou'])}",
        f"  instance mAP50, IRNet                 {pct(instances['map50'])}",
        f"  instance mAP50, CAM components        {pct(instances['map50_cam_baseline'])}",
        f"    objects recalled at IoU 0.5         {pct(instances.get('recall50'))}",
        f"    objects merged with another of their class {pct(instances.get('merged'))}",
        *_final_rows(final_path, pct),
        *_per_class_lines(per_class, lost, pct),
        *_round_rows(rounds, pct),
        "",
        "  thresholds used",
        *[f"    {key:<34}{entry['value']:>8.4g}  {entry['how']}" for key, entry in used.items()],
        *_calibration_warning(calibration_path),
        "",
        f"  {'stage':<28}{'jobs':>5}{'wall s':>10}{'peak MB':>10}",
    ]
    total = 0.0
    for stage in [*stage_order, *sorted(set(timings) - set(stage_order))]:
        if stage in timings:
            t = timings[stage]
            total += t["seconds"]
            lines.append(f"  {stage:<28}{t['jobs']:>5}{t['seconds']:>10.1f}{t['max_rss_mb']:>10.0f}")
    lines.append(f"  {'all stages (sum of jobs)':<33}{total:>10.1f}")
    table = "\n".join(lines) + "\n"
    write_json(
        out_json,
        {
            "cam_miou": cam["miou"],
            "cam_best_miou": cam["best_miou"],
            "cam_best_threshold": cam["best_threshold"],
            "baseline_background": cam["baseline_background"],
            "baseline_untrained": cam["baseline_untrained"],
            "random_walk_miou": semantic["miou"],
            "instance_map50": instances["map50"],
            "instance_map50_cam_baseline": instances["map50_cam_baseline"],
            "instance_map75": instances["map75"],
            "instance_recall50": instances.get("recall50"),
            "instance_merged": instances.get("merged"),
            "thresholds": used,
            "per_class": per_class,
            "classes_lost_in_random_walk": lost,
            **({"val": _load(final_path)} if final_path else {}),
            **({"self_training": rounds} if rounds else {}),
            "timings": timings,
        },
    )
    Path(out_table).write_text(table)
    return table
