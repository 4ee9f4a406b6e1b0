"""Where the random walk's gain is lost: per-stage quality of a finished run against ground truth.

For the evaluated images of a finished work folder (e.g. one of bench/quality.py's), measures:

- mined relation labels: precision of the confident foreground and background pixels, the share of pixels that
  are confident at all, and the share of true foreground pixels labelled confidently with the right class;
- IRNet's boundary map: precision and recall (at 0.5, one grid cell of tolerance) on ground-truth class borders;
- IRNet's displacement field: mean distance from where an object's cells end after following the field to the
  object's true centre, beside the object's own RMS radius (both in grid cells); and how many pairs of
  instances of one class (touching, or apart) meet in one point after following it, so come out as one;
- the random walk's gain per class: IoU of the semantic pseudo-labels minus IoU of the CAMs at their threshold.

    python bench/diagnostics.py WORKDIR [--max-images 100]

The last line reads ``diagnostics relations_fg_precision=... relations_bg_precision=... confident_share=...
fg_recall=... boundary_precision=... boundary_recall=... endpoint_error=... object_radius=...
touching_merged=... apart_merged=...`` (the last two: shares of same-class pairs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    from irnet_core.data.dataset import open_dataset, read_lists
    from irnet_core.diagnostics import (
        _rms_spread,
        boundary_precision_recall,
        endpoint_errors,
        relation_label_counts,
        same_class_merges,
        walk_instances,
    )
    from irnet_core.store import open_shards

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--max-images", type=int, default=100)
    args = parser.parse_args()
    work = args.workdir
    config = yaml.safe_load((work / "results/config.effective.yaml").read_text())
    section = dict(config["dataset"])
    section["root"] = str(work / section["root"]) if not Path(section["root"]).is_absolute() else section["root"]
    dataset = open_dataset(section)
    relations = open_shards(sorted(map(str, work.glob("results/relations/shard-*.zarr"))))
    maps = open_shards(sorted(map(str, work.glob("results/irnet/shard-*.zarr"))))
    eval_ids = read_lists(dataset, section)["eval_list"]
    ids = [i for i in eval_ids if i in relations and i in maps][: args.max_images]

    totals: dict[str, int] = {}
    boundary = np.zeros(4, dtype=np.int64)
    errors, radii = [], []
    merges: dict[str, int] = {}
    for image_id in ids:
        class_gt = dataset.semantic_gt(image_id)
        masks, instance_classes, _ = dataset.instance_gt(image_id)
        object_gt = np.zeros(class_gt.shape, np.uint8)
        for index, mask in enumerate(masks[:254]):
            object_gt[mask] = index + 1
        rel = relations[image_id].read(image_id, ["labels"])[0]["labels"]
        for key, value in relation_label_counts(rel, class_gt).items():
            totals[key] = totals.get(key, 0) + value
        arrays, _ = maps[image_id].read(image_id, ["boundary", "displacement"])
        boundary += boundary_precision_recall(arrays["boundary"].astype(np.float32), class_gt)
        displacement = arrays["displacement"].astype(np.float32)
        errors += endpoint_errors(displacement, object_gt)
        radii += [_rms_spread(start) for start, _ in walk_instances(displacement, object_gt)]
        for key, value in same_class_merges(displacement, object_gt, np.asarray(instance_classes)).items():
            merges[key] = merges.get(key, 0) + value

    figures = {
        "relations_fg_precision": totals["fg_correct"] / max(totals["fg"], 1),
        "relations_bg_precision": totals["bg_correct"] / max(totals["bg"], 1),
        "confident_share": (totals["fg"] + totals["bg"]) / max(totals["pixels"], 1),
        "fg_recall": totals["gt_fg_confident"] / max(totals["gt_fg"], 1),
        "boundary_precision": boundary[0] / max(boundary[1], 1),
        "boundary_recall": boundary[2] / max(boundary[3], 1),
        "endpoint_error": float(np.mean(errors)) if errors else float("nan"),
        "object_radius": float(np.mean(radii)) if radii else float("nan"),
        "touching_merged": merges.get("touching_merged", 0) / max(merges.get("touching", 0), 1),
        "apart_merged": merges.get("apart_merged", 0) / max(merges.get("apart", 0), 1),
    }
    cam = json.loads((work / "results/eval/cam.json").read_text())
    semantic = json.loads((work / "results/eval/semantic.json").read_text())
    print(f"{len(ids)} evaluated images of {work}")
    print(f"{'class':14}{'CAM IoU':>9}{'RW IoU':>9}{'gain':>8}")
    for name, cam_iou in cam["per_class"].items():
        rw_iou = semantic["per_class"].get(name)
        if cam_iou is None or rw_iou is None:
            continue
        print(f"{name:14}{100 * cam_iou:9.1f}{100 * rw_iou:9.1f}{100 * (rw_iou - cam_iou):+8.1f}")
    print("diagnostics " + " ".join(f"{k}={v:.3f}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
