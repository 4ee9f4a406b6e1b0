"""The run summary gives the per-class table beside every mean and flags a class the random walk lost."""

from __future__ import annotations

import json

import pytest

from irnet_core.pipeline.pseudo_labels import classes_lost_in_random_walk, per_class_figures, summarize
from irnet_core.report.tables import per_class_stages_page

CAM = {"miou": 0.6, "threshold": 0.3, "best_threshold": 0.3, "best_miou": 0.6, "baseline_background": 0.1,
       "baseline_untrained": 0.2, "per_class": {"background": 0.90, "disc": 0.50, "ring": 0.40, "star": 0.30}}  # fmt: skip
# disc gains; ring loses 1.5 points (within the rule); star loses 3 points (flagged).
SEMANTIC = {"miou": 0.6, "per_class": {"background": 0.95, "disc": 0.70, "ring": 0.385, "star": 0.27}}
INSTANCES = {"map50": 0.4, "map75": 0.1, "map50_cam_baseline": 0.1, "recall50": 0.55, "merged": 0.25,
             "coverage_per_class": {"disc": {"recall50": 0.8, "merged": 0.1}, "ring": {"recall50": 0.5, "merged": 0.3},
                                    "star": {"recall50": 0.25, "merged": 0.5}},
             "per_class": {name: {"ap25": 0.6, "ap50": ap, "ap75": 0.1} for name, ap in
                           (("disc", 0.5), ("ring", 0.4), ("star", 0.2))}}  # fmt: skip


def test_a_class_more_than_two_points_below_its_cam_iou_is_flagged():
    rows = per_class_figures(CAM, SEMANTIC, INSTANCES)
    assert list(rows) == ["background", "disc", "ring", "star"]
    assert rows["disc"]["change"] == pytest.approx(0.20) and rows["star"]["change"] == pytest.approx(-0.03)
    assert rows["star"]["pseudo_ap50"] == 0.2 and "pseudo_ap50" not in rows["background"]
    assert classes_lost_in_random_walk(rows) == ["star"]
    assert classes_lost_in_random_walk(rows, points=1.0) == ["ring", "star"]


def test_the_summary_holds_the_per_class_table_and_the_flag(tmp_path, caplog):
    paths = {}
    for name, data in (("cam", CAM), ("semantic", SEMANTIC), ("instances", INSTANCES)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(data))
    (tmp_path / "benchmarks").mkdir()
    table = summarize(cam_path=paths["cam"], semantic_path=paths["semantic"], instances_path=paths["instances"],
                      benchmark_dir=tmp_path / "benchmarks", stage_order=[], out_json=tmp_path / "summary.json",
                      out_table=tmp_path / "summary.txt")  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["classes_lost_in_random_walk"] == ["star"]
    assert summary["per_class"]["ring"]["random_walk"] == 0.385
    star = next(line for line in table.splitlines() if line.strip().startswith("star"))
    assert star.split()[:7] == ["star", "30.0", "27.0", "-3.0", "20.0", "25.0", "50.0"]
    assert "LOST IN THE RANDOM WALK" in star
    assert "objects recalled at IoU 0.5          55.0" in table and summary["instance_merged"] == 0.25
    assert "LOST" not in next(line for line in table.splitlines() if line.strip().startswith("ring"))
    assert "star: random-walk IoU more than 2 points below the CAM's" in table
    assert "random-walk IoU more than 2 points below the CAM's for star" in caplog.text

    page = per_class_stages_page(summary)
    assert "<td>star (lost in the random walk)</td>" in page and "<td>ring</td>" in page
    assert "<td>-3.0</td>" in page and "val DeepLabv3" not in page


def _round(index, map50, val_map50):
    targets = {**{k: INSTANCES[k] for k in ("map75", "recall50", "merged")}, "map50": map50,
               "per_class": {name: {"ap50": map50 / (i + 1)} for i, name in enumerate(("disc", "ring", "star"))}}  # fmt: skip
    return {"round": index, "targets": targets, "val_model": {"map50": val_map50, "map75": 0.1, "per_class": {}}}


def test_the_summary_and_the_report_give_each_self_training_round(tmp_path):
    paths = {}
    for name, data in (("cam", CAM), ("semantic", SEMANTIC), ("instances", INSTANCES), *(
            (f"round-{j}", _round(j, 0.4 + 0.1 * j, 0.3 + 0.05 * j)) for j in range(2))):  # fmt: skip
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(data))
    # A job whose wildcard value holds a slash (export_instances of self_training/round-0) nests its file.
    for rule, name in (("export_instances", "self_training/round-0.tsv"), ("export_instances", "val.tsv")):
        path = tmp_path / "benchmarks" / rule / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("s\tmax_rss\n2.5\t100\n")
    table = summarize(cam_path=paths["cam"], semantic_path=paths["semantic"], instances_path=paths["instances"],
                      benchmark_dir=tmp_path / "benchmarks", stage_order=[], out_json=tmp_path / "summary.json",
                      out_table=tmp_path / "summary.txt", round_paths=[paths["round-0"], paths["round-1"]])  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [entry["targets"]["map50"] for entry in summary["self_training"]] == [0.4, 0.5]
    assert summary["timings"]["export_instances"] == {"jobs": 2, "seconds": 5.0, "max_rss_mb": 100.0}
    rows = table[table.index("self-training rounds") :].splitlines()
    assert rows[2].split() == ["0", "40.0", "10.0", "55.0", "25.0", "30.0"]
    assert rows[3].split() == ["1", "50.0", "10.0", "55.0", "25.0", "35.0"]
    assert next(line for line in rows if line.strip().startswith("ring")).split() == ["ring", "20.0", "25.0"]

    page = per_class_stages_page(summary)
    assert "Self-training rounds" in page and "round 1 AP50" in page and "val Mask R-CNN mAP50" in page
    assert "Self-training rounds" not in per_class_stages_page({**summary, "self_training": []})
