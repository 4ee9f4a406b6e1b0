"""Workflow tests: dry-run plans, a tiny real run of the whole pipeline, rerun semantics, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from irnet_core.config import validate_config
from irnet_core.inference import stored_high_res
from irnet_core.store import ShardReader, open_root
from tests.workflow.harness import make_workdir, planned_jobs, snakemake
from tests.workflow.outputs import snapshot

pytestmark = pytest.mark.workflow


# ---- plans without running anything -----------------------------------------------------------------------


def test_demo_config_plans_every_stage(tmp_path):
    workdir = make_workdir(tmp_path, n_images=4, n_labelled=2)
    (workdir / "tiny.yaml").write_text((workdir / "configs/demo.yaml").read_text())  # what `make demo` selects
    plan = planned_jobs(workdir)
    shards = 4
    parts = shards + 1  # the demo has a val list: the shard stages run on it as one more part
    expected = {
        "make_demo_dataset": 1,
        "verify_inputs": shards,
        "prepare_dataset": 1,
        "train_cam": 1,
        "infer_cam": parts,
        "evaluate_cam_untrained": 1,
        "evaluate_cam": 1,
        "mine_relations": shards,
        "train_irnet": 1,
        "calibrate_displacement": 1,
        "infer_irnet": parts,
        "propagate_semantic": parts,
        "extract_instances": parts,
        "export_semantic": 2,  # the infer list's pseudo-labels and the val list's
        "export_instances": 2,
        "publish_instances": 1,  # the infer list's instances, as the last self-training round's (round 0)
        "evaluate_semantic": 1,
        "evaluate_instances": 1,
        "summarize": 1,
        "all": 1,
    }
    for rule, count in expected.items():
        assert plan.get(rule) == count, (rule, plan)


def test_a_config_of_dataset_keys_only_gets_the_documented_defaults(tmp_path):
    workdir = make_workdir(tmp_path, n_images=4, n_labelled=2)
    dataset = yaml.safe_load((workdir / "tiny.yaml").read_text())["dataset"]
    (workdir / "tiny.yaml").write_text(yaml.safe_dump({"dataset": dataset}))
    planned_jobs(workdir)  # a dry run: no job runs
    effective = yaml.safe_load((workdir / "results/config.effective.yaml").read_text())
    expected = validate_config({"dataset": dataset})
    expected["dataset"]["exif_orientation"] = "ignore"  # the VOC format's own policy, resolved when the DAG is built
    assert effective == expected
    # The schema's documented values, not the demo's tuning (configs/demo.yaml).
    assert effective["backbone"] == {"arch": "resnet50", "weights": "imagenet"}
    assert effective["relations"]["conf_fg"] == effective["cam"]["eval"]["threshold"] == "auto"
    assert effective["irnet"]["train"]["crop_size"] == 512 and effective["compute"]["shards"] == 8
    assert not (workdir / "results/cam").exists()


def test_bad_config_value_stops_with_one_line(tmp_path):
    workdir = make_workdir(tmp_path, n_images=4, n_labelled=2)
    result = snakemake(workdir, "-n", "--config", "cam={train: {epochs: many}}", check=False)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == "Error: config key cam.train.epochs: 'many' is not of type 'integer'"
    result = snakemake(workdir, "-n", "--config", "relations={conf_fg: 1.5}", check=False)
    assert "Error: config key relations.conf_fg: 1.5 is neither auto nor a number in [0, 1]" in result.stderr


def test_unsafe_image_id_stops_with_one_line(tmp_path):
    workdir = make_workdir(tmp_path, n_images=4, n_labelled=2)
    id_list = workdir / "data/VOC/ImageSets/Segmentation/train_aug.txt"
    id_list.write_text(id_list.read_text() + "../x\n")
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("Error: ") and "train_aug.txt:5" in last and "'../x'" in last


@pytest.mark.parametrize("problem", ["corrupt_image", "unknown_class", "no_labels"])
def test_bad_training_data_stops_with_one_line(tmp_path, problem):
    workdir = make_workdir(tmp_path, n_images=4, n_labelled=2)
    voc = workdir / "data/VOC"
    image_id = "2026_000002"
    if problem == "corrupt_image":
        culprit = voc / f"JPEGImages/{image_id}.jpg"
        culprit.write_bytes(culprit.read_bytes()[:200])
    elif problem == "unknown_class":
        culprit = voc / f"Annotations/{image_id}.xml"
        text = culprit.read_text()
        first = text.index("<name>", text.index("<object>"))
        culprit.write_text(text[: first + 6] + "unicorn" + text[text.index("</name>", first) :])
    else:
        culprit = voc / f"Annotations/{image_id}.xml"
        text = culprit.read_text()
        culprit.write_text(text[: text.index("<object>")] + "</annotation>\n")
    result = snakemake(workdir, "results/dataset/labels.json", check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors and str(culprit.name) in errors[0], result.stderr[-2000:]
    assert not (workdir / "results/dataset/labels.json").exists()
    # The console has one line; the job's log has it too, with the full traceback.
    log = (workdir / "logs/prepare_dataset/prepare_dataset.log").read_text()
    assert "Traceback (most recent call last)" in log and errors[0].removeprefix("Error: ") in log


# ---- the tiny real run -------------------------------------------------------------------------------------


def test_tiny_run_writes_every_product(tiny_run):
    results = tiny_run / "results"
    cam = json.loads((results / "eval/cam.json").read_text())
    for key in ("miou", "best_threshold", "best_miou", "per_class", "baseline_background", "baseline_untrained"):
        assert key in cam
    assert 0.0 <= cam["baseline_background"] < 0.5 and cam["best_miou"] >= cam["miou"] - 1e-9

    group = open_root(results / "cam/shard-0.zarr")
    image_id = group.attrs["image_ids"][0]
    assert group[image_id]["cam"].dtype == np.float16
    n_scales = len(group.attrs["scales"])
    assert sorted(group[image_id].array_keys()) == ["cam", *(f"scale_{i}" for i in range(n_scales))]
    assert all(group[image_id][f"scale_{i}"].dtype == np.float32 for i in range(n_scales))
    height, width = group[image_id].attrs["size"]
    high_res, _ = stored_high_res(ShardReader(results / "cam/shard-0.zarr"), image_id)
    assert high_res.shape[1:] == (height, width) and high_res.dtype == np.float16

    maps = open_root(results / "irnet/shard-0.zarr")
    some = maps.attrs["image_ids"][0]
    h, w = maps[some]["boundary"].shape
    assert maps[some]["displacement"].shape == (2, h, w) and maps[some]["displacement"].dtype == np.float16

    from pycocotools.coco import COCO

    coco = COCO(str(results / "pseudo_labels/instances.json"))
    assert len(coco.getImgIds()) == 6
    semantic = json.loads((results / "eval/semantic.json").read_text())
    instances = json.loads((results / "eval/instances.json").read_text())
    assert "miou" in semantic and {"map25", "map50", "map75", "map50_cam_baseline"} <= set(instances)
    assert "CAM mIoU" in (results / "summary.txt").read_text()


def pipeline_jobs(plan: dict[str, int]) -> dict[str, int]:
    """The plan without the target rule and the report assets (which consume every stage's outputs)."""
    return {rule: n for rule, n in plan.items() if rule != "all" and not rule.startswith("report_")}


def test_nothing_to_do_after_a_complete_run(tiny_run):
    assert planned_jobs(tiny_run) == {}


def test_run_settings_rerun_nothing(tiny_run):
    assert planned_jobs(tiny_run, "--config", "compute={device: auto, infer_batch_size: 2, num_workers: 1}") == {}
    assert planned_jobs(tiny_run, "--config", "compute={store_layout: directory}") == {}
    assert planned_jobs(tiny_run, "--set-threads", "train_cam=1", "infer_cam=2") == {}


def test_cam_threshold_change_plans_only_cam_evaluation(tiny_run):
    plan = planned_jobs(tiny_run, "--config", "cam={eval: {threshold: 0.2}}")
    assert pipeline_jobs(plan) == {"evaluate_cam": 1, "summarize": 1}


def test_conf_fg_change_reruns_relations_and_downstream_only(tiny_run):
    plan = planned_jobs(tiny_run, "--config", "relations={conf_fg: 0.4}")
    assert plan.get("mine_relations") == 2 and plan.get("train_irnet") == 1 and plan.get("extract_instances") == 2
    assert "train_cam" not in plan and "infer_cam" not in plan and "evaluate_cam" not in plan


def test_beta_change_reruns_random_walk_stages_only(tiny_run):
    plan = planned_jobs(tiny_run, "--config", "random_walk={beta: 8}")
    assert pipeline_jobs(plan) == {
        "propagate_calibration": 1,  # the kept scores of the threshold calibration are walked with it
        "calibrate_label_thresholds": 1,
        "propagate_semantic": 2,
        "extract_instances": 2,
        "export_semantic": 1,
        "export_instances": 1,
        "publish_instances": 1,
        "evaluate_semantic": 1,
        "evaluate_instances": 1,
        "summarize": 1,
    }


def test_cam_veto_change_reruns_the_semantic_labels_only(tiny_run):
    plan = planned_jobs(tiny_run, "--config", "random_walk={cam_veto: false}")
    assert plan.get("propagate_semantic") == 2 and plan.get("propagate_calibration") == 1
    assert not {"extract_instances", "train_irnet", "infer_irnet", "mine_relations"} & set(plan), plan


def test_replacing_a_weights_file_retrains_what_reads_it(tiny_run, tmp_path):
    import torch
    import torchvision

    workdir = tmp_path / "copy"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = yaml.safe_load((workdir / "tiny.yaml").read_text())
    config["backbone"]["weights"] = "weights/resnet18.pth"
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (workdir / "weights").mkdir()

    def write_weights(seed):
        torch.manual_seed(seed)
        torch.save(torchvision.models.resnet18().state_dict(), workdir / "weights/resnet18.pth")

    write_weights(0)
    model = workdir / "results/cam/model.pt"
    snakemake(workdir, "results/cam/model.pt")
    first = torch.load(model, map_location="cpu", weights_only=True)["model"]
    assert planned_jobs(workdir, "results/cam/model.pt") == {}
    # Other bytes under the same name: every training that reads the file is planned, and train_cam's result
    # changes (its checkpoint, fingerprinted with the file's digest, is not resumed).
    write_weights(1)
    plan = planned_jobs(workdir)
    assert {"train_cam", "evaluate_cam_untrained", "train_irnet"} <= set(plan), plan
    snakemake(workdir, "results/cam/model.pt")
    second = torch.load(model, map_location="cpu", weights_only=True)["model"]
    assert any(not torch.equal(first[key], second[key]) for key in first)


def test_adding_an_image_to_the_infer_list_reruns_one_shard(tiny_run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    infer_list = workdir / "data/VOC/ImageSets/Segmentation/train.txt"
    train_ids = set((workdir / "data/VOC/ImageSets/Segmentation/train_aug.txt").read_text().split())
    # An image of the dataset that is in no list yet: generate one more and leave it out of train_aug.
    from irnet_core.tools.demo_generator import generate_demo_dataset

    extra = tmp_path / "extra"
    generate_demo_dataset(extra, n_images=17, n_labelled=1, seed=0, min_size=64, max_size=96)
    new_id = "2026_000017"
    assert new_id not in train_ids
    for sub, ext in (
        ("JPEGImages", "jpg"),
        ("Annotations", "xml"),
        ("SegmentationClass", "png"),
        ("SegmentationObject", "png"),
    ):
        shutil.copy2(extra / sub / f"{new_id}.{ext}", workdir / "data/VOC" / sub / f"{new_id}.{ext}")
    infer_list.write_text(infer_list.read_text() + new_id + "\n")
    plan = planned_jobs(workdir)
    assert plan.get("infer_cam") == 1, plan
    assert "train_cam" not in plan and "prepare_dataset" not in plan


def test_store_layout_changes_no_result(tiny_run, tmp_path):
    """Stores rewritten in the directory layout hold the same results, and the stages after them read them."""
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    before = snapshot(workdir)
    snakemake(workdir, "--config", "compute={store_layout: directory}", "--forcerun", "propagate_semantic")
    for shard in ("0", "1"):
        store = workdir / f"results/semantic/shard-{shard}.zarr"
        assert (store / "zarr.json").is_file() and not (store / "store.zip").exists()
        assert not (workdir / f"results/instances/shard-{shard}.zarr/zarr.json").exists()  # untouched: still zip
    assert snapshot(workdir) == before


def test_a_pixel_limit_change_reruns_only_the_input_check(tiny_run):
    # The limit admits images and changes no result: a param of the shard checks only, whose outputs no stage
    # consumes (the target rule `all` collects them).
    plan = planned_jobs(tiny_run, "--config", "dataset={max_image_pixels: null}")
    assert pipeline_jobs(plan) == {"verify_inputs": 2}, plan
