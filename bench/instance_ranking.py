"""What the instance scores cost: AP with the scores as given against AP of the same masks ranked perfectly.

    python bench/instance_ranking.py RUN_DIR [RUN_DIR ...]

For a finished run, reads the instance pseudo-labels of the evaluated images (``results/instances``) and their
ground truth, and scores the same masks twice: with their own scores, and ranked by an oracle (each mask's
best IoU with an object of its class, so that every match comes before every miss). The gap is what ranking
costs; what is left below 100 is masks that never match (merged, split or missed objects), which the recall
at IoU 0.5 and the share of merged objects show. Prints mAP50 / mAP75 both ways, recall50, merged, the share
of masks with score 0 and of masks sharing their score with another mask of their image, and per class AP50
both ways.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from irnet_core.data.dataset import open_dataset, read_lists  # noqa: E402
from irnet_core.metrics import InstanceAP, InstanceCoverage, mask_iou  # noqa: E402
from irnet_core.pipeline.pseudo_labels import read_instances  # noqa: E402
from irnet_core.store import open_shards  # noqa: E402


def oracle_scores(masks: np.ndarray, classes: np.ndarray, gt_masks: np.ndarray, gt_classes: np.ndarray) -> np.ndarray:
    """Each mask's best IoU with a ground-truth object of its class (0 where its class has none)."""
    scores = np.zeros(len(classes))
    for k, label in enumerate(classes):
        objects = gt_masks[gt_classes == label]
        if len(objects):
            scores[k] = mask_iou(masks[k : k + 1], objects).max()
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    for run in args.runs:
        config = yaml.safe_load((run / "results/config.effective.yaml").read_text())
        section = dict(config["dataset"])
        section["root"] = str(run / section["root"]) if not Path(section["root"]).is_absolute() else section["root"]
        dataset = open_dataset(section)
        instances = open_shards(sorted(str(p) for p in (run / "results/instances").glob("shard-*.zarr")))
        eval_ids = [i for i in read_lists(dataset, section)["eval_list"] if i in instances]
        n = len(dataset.classes)
        given, ranked = InstanceAP(n, (0.5, 0.75)), InstanceAP(n, (0.5, 0.75))
        coverage = InstanceCoverage(n)
        n_masks = n_zero = n_tied = 0
        for image_id in eval_ids:
            gt_masks, gt_classes, _ = dataset.instance_gt(image_id)
            found = read_instances(instances[image_id], image_id)
            given.add(found.masks, found.classes, found.scores, gt_masks, gt_classes)
            ranked.add(found.masks, found.classes, oracle_scores(found.masks, found.classes, gt_masks, gt_classes),
                       gt_masks, gt_classes)  # fmt: skip
            coverage.add(found.masks, found.classes, gt_masks, gt_classes)
            n_masks += len(found)
            n_zero += int((found.scores == 0).sum())
            _, counts = np.unique(found.scores, return_counts=True)
            n_tied += int(counts[counts > 1].sum())
        g, r, c = given.result(), ranked.result(), coverage.result()
        print(f"\n{run}: {len(eval_ids)} images, {n_masks} masks ({n_zero} with score 0, {n_tied} sharing a score)")
        print(f"  mAP50 {100 * g[0.5][1]:.1f} as given, {100 * r[0.5][1]:.1f} ranked perfectly; "
              f"mAP75 {100 * g[0.75][1]:.1f} / {100 * r[0.75][1]:.1f}; recall50 {100 * c['recall50_all']:.1f}, "
              f"merged {100 * c['merged_all']:.1f}")  # fmt: skip
        print(f"  {'class':12}{'AP50':>7}{'ranked':>8}{'recall50':>10}{'merged':>8}")
        for k, name in enumerate(dataset.classes):
            print(f"  {name:12}{100 * g[0.5][0][k]:7.1f}{100 * r[0.5][0][k]:8.1f}{100 * c['recall50'][k]:10.1f}"
                  f"{100 * c['merged'][k]:8.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
