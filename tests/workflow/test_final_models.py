"""The final stages on a copy of the tiny run with a val list: only the val pipeline and the final models run,
final.json holds the contract's keys, the COCO predictions load with pycocotools, and a final_models change
reruns only the final stages and changes their result."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from pycocotools.coco import COCO

from irnet_core.tools.demo_generator import demo_split_ids, generate_demo_dataset
from tests.workflow.harness import make_workdir, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

N_VAL = 3
FINAL_MODELS = {
    "instance": {
        "fpn_channels": 16,
        "rpn_proposals": 100,
        "roi_samples": 32,
        "train": {"epochs": 1, "batch_size": 2, "min_size": 64, "max_size": 96},
    },
    "semantic": {"train": {"epochs": 1, "batch_size": 2, "crop_size": 64}},
}
# The val list runs through the shard stages' own rules, as their `val` part: one job of each.
VAL_RULES = {"infer_cam", "infer_irnet", "propagate_semantic", "extract_instances", "export_semantic",
             "export_instances"}  # fmt: skip
FINAL_RULES = {"train_instance_model", "train_semantic_model", "predict_instances", "predict_semantic"}
# Consumers of final.json: the evaluation itself, its figures, the summary (val rows) and the report's tables.
FINAL_CONSUMERS = {"evaluate_final", "report_final", "summarize", "report_tables", "all"}


def add_val_split(workdir, tmp_path):
    """Generate the val images of the tiny dataset beside it (the other files stay as they are) and use them."""
    config = yaml.safe_load((workdir / "tiny.yaml").read_text())
    demo, voc = config["demo"], workdir / config["dataset"]["root"]
    staging = tmp_path / "staging"
    generate_demo_dataset(staging, n_images=16, n_labelled=6, seed=demo["seed"], min_size=demo["min_size"],
                          max_size=demo["max_size"], n_val=N_VAL)  # fmt: skip
    val = demo_split_ids(16, 6, n_val=N_VAL)["val"]
    for image_id in val:
        for folder, suffix in (("JPEGImages", "jpg"), ("Annotations", "xml"), ("SegmentationClass", "png"),
                               ("SegmentationObject", "png")):  # fmt: skip
            shutil.copy2(staging / folder / f"{image_id}.{suffix}", voc / folder / f"{image_id}.{suffix}")
    shutil.copy2(staging / "ImageSets/Segmentation/val.txt", voc / "ImageSets/Segmentation/val.txt")
    config["dataset"]["val_list"] = "ImageSets/Segmentation/val.txt"
    config["final_models"] = FINAL_MODELS
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return val


def digest(path) -> str:
    files = sorted(path.rglob("*.png")) if path.is_dir() else [path]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


def model_digest(path) -> str:
    """The weights' values (not the file, which also records settings)."""
    state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    return hashlib.sha256(b"".join(state[k].numpy().tobytes() for k in sorted(state))).hexdigest()


@pytest.mark.slow  # minutes: the val pipeline and both trainings, twice
def test_final_stages_on_a_val_list(tiny_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    val = add_val_split(workdir, tmp_path)

    plan = planned_jobs(workdir)
    # Nothing of the train pipeline reruns (one job per shard rule: the val part); the input check covers the new
    # val images (its shard jobs).
    assert set(plan) == VAL_RULES | FINAL_RULES | FINAL_CONSUMERS | {"verify_inputs"}, plan
    assert all(plan[rule] == 1 for rule in VAL_RULES), plan
    snakemake(workdir)
    for stage in ("cam", "irnet", "semantic", "instances"):
        assert (workdir / f"results/{stage}/val.zarr").is_dir(), stage
    exported = json.loads((workdir / "results/val_pseudo_labels/instances.json").read_text())
    assert sorted(image["image_key"] for image in exported["images"]) == sorted(val)

    final = json.loads((workdir / "results/eval/final.json").read_text())
    for section, names in {"semantic": ["miou"], "instance": ["map25", "map50", "map75"],
                           "pseudo_labels": ["miou", "map50"],
                           "baselines": ["cam_miou", "cam_components_map50"]}.items():  # fmt: skip
        for name in names:
            assert final[section][name] is None or 0.0 <= final[section][name] <= 1.0, (section, name)
    assert final["n_images"] == N_VAL
    coco = COCO(str(workdir / "results/final/instance/round-0/predictions.json"))
    assert sorted(image["image_key"] for image in coco.dataset["images"]) == sorted(val)
    assert sorted(p.stem for p in (workdir / "results/final/semantic/SegmentationClass").glob("*.png")) == sorted(val)
    summary = (workdir / "results/summary.txt").read_text()
    assert "DeepLabv3 (final)" in summary and "Mask R-CNN (final)" in summary
    for name in ("final/semantic_model.png", "final/instance_model.png", "curves/train_semantic_model.png"):
        assert (workdir / "results/report" / name).stat().st_size > 0
    val_ids_trained = json.loads((workdir / "results/dataset/labels.json").read_text())["image_ids"]
    assert not set(val) & set(val_ids_trained)

    # A final_models change: only that model's stages and the consumers of final.json, with a new result.
    before = model_digest(workdir / "results/final/semantic/model.pt")
    instances_before = digest(workdir / "results/final/instance/round-0/predictions.json")
    config = yaml.safe_load((workdir / "tiny.yaml").read_text())
    config["final_models"]["semantic"]["train"]["seed"] = 1
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    plan = planned_jobs(workdir)
    assert set(plan) == {"train_semantic_model", "predict_semantic"} | FINAL_CONSUMERS, plan
    snakemake(workdir)
    assert model_digest(workdir / "results/final/semantic/model.pt") != before
    assert digest(workdir / "results/final/instance/round-0/predictions.json") == instances_before
    assert planned_jobs(workdir) == {}

    # A prediction setting reruns prediction only: the trained model stays byte for byte, the masks change.
    model_before = digest(workdir / "results/final/instance/round-0/model.pt")
    config["final_models"]["instance"].setdefault("infer", {})["mask_threshold"] = 0.2
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    plan = planned_jobs(workdir)
    assert set(plan) == {"predict_instances"} | FINAL_CONSUMERS, plan
    predictions = workdir / "results/final/instance/round-0/predictions.json"
    written_before = predictions.stat().st_mtime_ns
    snakemake(workdir)
    assert digest(workdir / "results/final/instance/round-0/model.pt") == model_before
    assert predictions.stat().st_mtime_ns != written_before
    if json.loads(predictions.read_text())["annotations"]:  # a one-epoch model may detect nothing at all
        assert digest(predictions) != instances_before

    # A self-training round: only the new round's jobs and the consumers of the exported instances; the
    # round-0 files stay as they are, and the export is the round's combination of them with the predictions.
    round_zero = workdir / "results/self_training/round-0/instances.json"
    exported = workdir / "results/pseudo_labels/instances.json"
    assert exported.read_bytes() == round_zero.read_bytes()
    round_zero_bytes = round_zero.read_bytes()
    config["self_training"] = {"rounds": 1, "score_threshold": 0.05}  # every detection is confident
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    plan = planned_jobs(workdir)
    assert plan == {"predict_train_instances": 1, "combine_round": 1, "train_instance_model": 1,
                    "predict_instances": 1, "evaluate_round": 2, "publish_instances": 1, "evaluate_instances": 1,
                    **{rule: 1 for rule in FINAL_CONSUMERS}}, plan  # fmt: skip
    snakemake(workdir)
    assert digest(workdir / "results/final/instance/round-0/model.pt") == model_before
    assert round_zero.read_bytes() == round_zero_bytes
    round_one = workdir / "results/self_training/round-1/instances.json"
    assert exported.read_bytes() == round_one.read_bytes()
    check_round(workdir, round_zero, workdir / "results/self_training/round-1/predictions.json", round_one)
    summary = json.loads((workdir / "results/summary.json").read_text())
    assert [entry["round"] for entry in summary["self_training"]] == [0, 1]
    final = json.loads((workdir / "results/eval/final.json").read_text())
    assert final["instance"]["map50"] == summary["self_training"][1]["val_model"]["map50"]  # the last round's model
    assert "self-training rounds" in (workdir / "results/summary.txt").read_text()
    # A second round reuses the first.
    config["self_training"]["rounds"] = 2
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    plan = planned_jobs(workdir)
    assert {rule: plan[rule] for rule in ("predict_train_instances", "combine_round", "train_instance_model",
                                          "evaluate_round")} == dict.fromkeys(("predict_train_instances",
                                          "combine_round", "train_instance_model", "evaluate_round"), 1), plan  # fmt: skip


def check_round(workdir, previous_path, predictions_path, round_path):
    """The round's file holds, image by image, what the rule makes of the previous targets and the predictions."""
    from irnet_core.coco_instances import decode_instances, read_coco_instances
    from irnet_core.self_training import combine_round

    config = yaml.safe_load((workdir / "tiny.yaml").read_text())
    classes = json.loads((workdir / "results/dataset/labels.json").read_text())
    previous, predicted, written = (read_coco_instances(path, classes["classes"])
                                    for path in (previous_path, predictions_path, round_path))  # fmt: skip
    assert sorted(written) == sorted(previous) == sorted(predicted)
    for image_id, record in written.items():
        expected, _ = combine_round(
            decode_instances(previous[image_id]), decode_instances(predicted[image_id]),
            classes["labels"][image_id], score_threshold=config["self_training"]["score_threshold"], cover=0.5,
        )  # fmt: skip
        got = decode_instances(record)
        assert np.array_equal(got.masks, expected.masks), image_id
        assert got.classes.tolist() == expected.classes.tolist(), image_id


def test_the_demo_rule_generates_its_val_split(tmp_path):
    workdir = make_workdir(tmp_path, n_images=4, n_labelled=2)
    (workdir / "tiny.yaml").write_text((workdir / "configs/demo.yaml").read_text())  # what `make demo` selects
    target = "results/demo/VOC2012/ImageSets/Segmentation/val.txt"
    snakemake(workdir, target, "--config", "demo={n_images: 4, n_labelled: 2, n_calibration: 1, n_val: 2}")
    val = (workdir / target).read_text().split()
    assert val == demo_split_ids(4, 2, n_val=2)["val"]
    assert all((workdir / f"results/demo/VOC2012/SegmentationObject/{i}.png").exists() for i in val)
    calibration = (workdir / "results/demo/VOC2012/ImageSets/Segmentation/calibration.txt").read_text().split()
    assert calibration == demo_split_ids(4, 2, n_calibration=1)["calibration"] and not set(calibration) & set(val)
