"""How well a calibration list of few images chooses the thresholds: each rule's choice on random subsets of the
calibration images, scored on the evaluated images.

    python bench/calibration_sample.py RUN_DIR [RUN_DIR ...] [--sizes 10 20 40] [--draws 300]

For a finished run with a calibration list (bench/quality.py's `calibrated` runs, or the demo), reads the CAMs
and IRNet's maps of the calibration and the evaluated images once (the random walk runs here for the evaluated
images, as the calibration stage runs it for its own), and keeps per image, for each of the three thresholds
(CAM, random walk, instances), its statistic at every value of the calibration grid (confusion matrix, or the
image's AP50 matches) and the label-free rule's edge mass. Then, for each subset size, draws subsets of the
calibration images and lets each rule choose:

- ``peak``: the best CAM mIoU of the subset's curve (the rule before issue 18);
- ``smoothed``: the best of the curve averaged over each threshold and its grid neighbours;
- ``guarded``: the robust rule (irnet_core.thresholds.robust_choice): the smoothed peak where it beats the
  label-free threshold's smoothed score by ``calibration.min_gain``, else the label-free threshold;
- ``label-free``: the label-free rule on the same subset (no ground truth);
- ``workflow``: what the calibration stage does (irnet_core.thresholds.calibrated_choice): ``peak`` on
  ``calibration.min_images`` images or more, ``guarded`` on fewer.

Prints, per run, threshold, size and rule, the mean and worst regret in points on the evaluated images (their
best threshold's mIoU or mAP50 minus the one at the choice) and the share of draws within 1 point of that
best, then the per-class IoU or AP50 at each rule's most frequent choice. The evaluated images never take part
in a choice.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from irnet_core.data.dataset import open_dataset, read_lists  # noqa: E402
from irnet_core.evaluation import cam_label_map  # noqa: E402
from irnet_core.inference import stored_high_res  # noqa: E402
from irnet_core.instances import InstanceScores, instance_class_map, instance_scores, instances_from_scores  # noqa: E402
from irnet_core.metrics import ConfusionMatrix, InstanceAP  # noqa: E402
from irnet_core.pipeline.pseudo_labels import _read_inputs, walked_scores  # noqa: E402
from irnet_core.random_walk import labels_from_scores  # noqa: E402
from irnet_core.settings import WalkSettings, from_section  # noqa: E402
from irnet_core.store import ShardReader, open_shards  # noqa: E402
from irnet_core.thresholds import (  # noqa: E402
    EdgeAlignment,
    best_of,
    calibrated_choice,
    gradient_magnitude,
    robust_choice,
    smoothed,
)

DEVICE = torch.device("cpu")


def _instance_ap(found, gt_masks, gt_classes, n_classes) -> InstanceAP:
    accumulator = InstanceAP(n_classes, (0.5,))
    accumulator.add(found.masks, found.classes, found.scores, gt_masks, gt_classes)
    return accumulator


def per_image(run: Path, config: dict, dataset, image_ids, stored_scores: ShardReader | None) -> dict[str, dict]:
    """Per threshold kind: grid, and per image the statistic at every grid value (confusion matrix, or a
    one-image AP accumulator) and the label-free rule's edge mass. Propagated scores come from the calibration
    stage's store where it holds the image, else from the random walk run here as that stage runs it."""
    cal = config["calibration"]
    grids = {"cam": cal["cam_grid"], "semantic": cal["semantic_grid"], "instances": cal["instance_grid"]}
    grids = {kind: [float(t) for t in grid] for kind, grid in grids.items()}
    walk = from_section(WalkSettings, {key: config["random_walk"][key] for key in ("beta", "exp_times", "radius")})
    # The CAM veto as the run used it (runs made before it existed had none).
    summary = json.loads((run / "results/summary.json").read_text())
    veto = config["random_walk"].get("cam_veto", False)
    cam_floor = summary["thresholds"]["relations.conf_bg"]["value"] if veto else None
    inst = config["instances"]
    cams = open_shards(sorted(str(p) for p in (run / "results/cam").glob("shard-*.zarr")))
    maps = open_shards(sorted(str(p) for p in (run / "results/irnet").glob("shard-*.zarr")))
    n = len(dataset.classes) + 1
    out = {
        kind: {"grid": grid, "stats": [], "mass": np.zeros((len(image_ids), len(grid)))} for kind, grid in grids.items()
    }
    for i, image_id in enumerate(image_ids):
        gt = dataset.semantic_gt(image_id)
        gt_masks, gt_classes, _ = dataset.instance_gt(image_id)
        gradient = gradient_magnitude(dataset.load_image(image_id))
        high_res, attrs = stored_high_res(cams[image_id], image_id)
        keys = attrs["keys"]
        if stored_scores is not None and image_id in stored_scores.image_ids:
            arrays, _ = stored_scores.read(image_id)
            semantic = torch.from_numpy(arrays["semantic"])
            rows = InstanceScores(arrays["instances"], arrays["row_classes"])
        else:
            cam, keys, size, boundary, displacement = _read_inputs(cams[image_id], maps[image_id], image_id, DEVICE)
            semantic = walked_scores(cams[image_id], image_id, cam, keys, boundary, size, walk, cam_floor)
            rows = instance_scores(cam, keys, boundary, displacement, size, walk, device=DEVICE,
                                   centroid_iterations=inst["centroid_iterations"], weak_threshold=inst["weak_threshold"])  # fmt: skip
        high_res = high_res.astype(np.float32)
        label_maps = {
            "cam": {t: cam_label_map(high_res, keys, t) for t in out["cam"]["grid"]},
            "semantic": {t: labels_from_scores(semantic, keys, t).numpy() for t in out["semantic"]["grid"]},
            "instances": {t: instance_class_map(rows, t) for t in out["instances"]["grid"]},
        }
        for kind, entry in out.items():
            maps_at = label_maps[kind]
            if kind == "instances":
                found = {t: instances_from_scores(rows, t, inst["min_fragment"]) for t in entry["grid"]}
                entry["stats"].append([_instance_ap(found[t], gt_masks, gt_classes, n - 1) for t in entry["grid"]])
            else:
                row = []
                for t in entry["grid"]:
                    matrix = ConfusionMatrix(n)
                    matrix.update(gt, maps_at[t])
                    row.append(matrix.matrix)
                entry["stats"].append(row)
            edges = EdgeAlignment(entry["grid"])
            edges.update(gradient, maps_at.__getitem__)
            entry["mass"][i] = [edges.mass[t] for t in entry["grid"]]
    return out


def ious(matrix: np.ndarray) -> np.ndarray:
    """Per-class IoU of a confusion matrix (NaN where a class is absent from both)."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def per_class(kind: str, stats: list) -> np.ndarray:
    """Per-class score of the pooled statistics of some images at one threshold (IoU, or AP50 per class)."""
    if kind == "instances":
        return InstanceAP.merged(stats).result()[0.5][0]
    return ious(np.sum(stats, axis=0))


def curve_of(kind: str, entry: dict, images) -> dict[float, float]:
    return {t: float(np.nanmean(per_class(kind, [entry["stats"][i][j] for i in images])))
            for j, t in enumerate(entry["grid"])}  # fmt: skip


def choices(kind: str, entry: dict, images, min_gain: float, min_images: int) -> dict[str, float]:
    curve = curve_of(kind, entry, images)
    edges = EdgeAlignment(entry["grid"])
    edges.mass = {t: float(entry["mass"][images, j].sum()) for j, t in enumerate(entry["grid"])}
    label_free = edges.best()
    return {
        "peak": best_of(curve),
        "smoothed": best_of(smoothed(curve)),
        "guarded": robust_choice(curve, label_free, min_gain)[0],
        "label-free": label_free,
        "workflow": calibrated_choice(curve, label_free, len(images), min_images, min_gain)[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 20, 40])
    parser.add_argument("--draws", type=int, default=300)
    args = parser.parse_args()
    for run in args.runs:
        config = yaml.safe_load((run / "results/config.effective.yaml").read_text())
        grid = [float(t) for t in config["calibration"]["cam_grid"]]
        # Runs made before the keys existed get the schema's defaults.
        min_gain = float(config["calibration"].get("min_gain", 0.01))
        min_images = int(config["calibration"].get("min_images", 30))
        section = dict(config["dataset"])
        section["root"] = str(run / section["root"]) if not Path(section["root"]).is_absolute() else section["root"]
        dataset = open_dataset(section)
        calibration_ids = json.loads((run / "results/eval/calibration.json").read_text())["image_ids"]
        eval_ids = read_lists(dataset, section)["eval_list"]
        stored = ShardReader(str(run / "results/calibration/scores.zarr"))
        cal = per_image(run, config, dataset, calibration_ids, stored)
        evaluated = per_image(run, config, dataset, eval_ids, None)
        names = ["background", *dataset.classes]
        print(f"\n{run}: {len(calibration_ids)} calibration images, {len(eval_ids)} evaluated")
        rng = np.random.default_rng(0)
        for kind in ("cam", "semantic", "instances"):
            grid = cal[kind]["grid"]
            eval_curve = curve_of(kind, evaluated[kind], range(len(eval_ids)))
            best = max(eval_curve.values())
            metric = "mAP50" if kind == "instances" else "mIoU"
            print(
                f"\n  {kind} threshold: evaluated images' best {metric} {100 * best:.1f} at {max(eval_curve, key=eval_curve.get):g}"
            )
            print(f"  {'size':>4} {'rule':12}{'mean regret':>12}{'worst':>8}{'within 1':>10}  most frequent choices")
            for size in args.sizes:
                size = min(size, len(calibration_ids))
                picked: dict[str, list[float]] = {}
                for _ in range(args.draws):
                    subset = rng.choice(len(calibration_ids), size=size, replace=False)
                    for rule, value in choices(kind, cal[kind], subset, min_gain, min_images).items():
                        picked.setdefault(rule, []).append(value)
                for rule, values in picked.items():
                    regret = np.array([100 * (best - eval_curve[v]) for v in values])
                    common = ", ".join(f"{t:g}x{c}" for t, c in Counter(values).most_common(3))
                    print(
                        f"  {size:>4} {rule:12}{regret.mean():12.2f}{regret.max():8.1f}{np.mean(regret <= 1.0):10.0%}  {common}"
                    )
            heads = names if kind != "instances" else list(dataset.classes)
            print(f"  per class on the evaluated images at each rule's most frequent choice with {size} images")
            print(f"  {'rule':12}{'t':>6}" + "".join(f"{h[:9]:>10}" for h in heads))
            for rule, values in picked.items():
                t = Counter(values).most_common(1)[0][0]
                row = per_class(kind, [evaluated[kind]["stats"][i][grid.index(t)] for i in range(len(eval_ids))])
                print(f"  {rule:12}{t:6g}" + "".join(f"{100 * v:10.1f}" for v in row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
