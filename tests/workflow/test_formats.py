"""The same images in three dataset formats give the same pseudo-labels, and a COCO run scores against the
official-style annotation file without remapping.

The shared tiny run (VOC layout) is the reference. Its dataset is converted without loss to the COCO 2014
layout and to a folder with a labels CSV (irnet_core.data.convert: other ids, nested folders, COCO's own image
and category ids), the lists keep their order, and the pipeline runs on each up to the exports. Every image's
semantic pseudo-label and instance masks, scores and classes must equal the reference's.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from irnet_core.data.convert import convert_dataset
from tests.workflow.dryrun import copy_workflow
from tests.workflow.harness import REPO, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

FORMAT_KEYS = {
    "coco": {"splits": ["train2014"], "index_cache": "results/dataset/coco_index"},
    "folder": {"class_gt_dir": "ground_truth/class", "instance_gt_dir": "ground_truth/instance"},
}


def run_in_format(tiny_run, tmp_path_factory, fmt: str):
    workdir = tmp_path_factory.mktemp(fmt)
    copy_workflow(REPO, workdir)
    config = yaml.safe_load((tiny_run / "tiny.yaml").read_text())
    voc = tiny_run / config["dataset"]["root"]
    lists = {name: (voc / f"ImageSets/Segmentation/{name}.txt").read_text().split() for name in ("train_aug", "train")}
    mapping = convert_dataset(voc, workdir / "data" / fmt, fmt, lists, classes=config["dataset"]["classes"])
    config["dataset"] = {
        "format": fmt,
        "root": f"data/{fmt}",
        "train_list": "lists/train_aug.txt",
        "infer_list": "lists/train.txt",
        "eval_list": "lists/train.txt",
        "classes": config["dataset"]["classes"],
        **FORMAT_KEYS[fmt],
    }
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake(workdir, "results/eval/instances.json", "results/pseudo_labels/SegmentationClass")
    return workdir, mapping


@pytest.fixture(scope="module", params=["coco", "folder"])
def converted_run(request, tiny_run, tmp_path_factory):
    workdir, mapping = run_in_format(tiny_run, tmp_path_factory, request.param)
    return request.param, workdir, mapping


def instances_by_image(coco_file):
    """{image_key: sorted [(class name, score, RLE counts)]} of an exported COCO file."""
    data = json.loads(coco_file.read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    keys = {image["id"]: image["image_key"] for image in data["images"]}
    found = {key: [] for key in keys.values()}
    for a in data["annotations"]:
        found[keys[a["image_id"]]].append((names[a["category_id"]], a["score"], a["segmentation"]["counts"]))
    return {key: sorted(items) for key, items in found.items()}


def test_the_same_images_in_another_format_give_identical_pseudo_labels(tiny_run, converted_run):
    fmt, workdir, mapping = converted_run
    reference_ids = (tiny_run / "data/VOC/ImageSets/Segmentation/train.txt").read_text().split()
    for voc_id in reference_ids:
        ours = np.asarray(Image.open(workdir / f"results/pseudo_labels/SegmentationClass/{mapping[voc_id]}.png"))
        theirs = np.asarray(Image.open(tiny_run / f"results/pseudo_labels/SegmentationClass/{voc_id}.png"))
        assert np.array_equal(ours, theirs), (fmt, voc_id)
    ours = instances_by_image(workdir / "results/pseudo_labels/instances.json")
    theirs = instances_by_image(tiny_run / "results/pseudo_labels/instances.json")
    assert {voc_id: ours[mapping[voc_id]] for voc_id in reference_ids} == theirs
    assert sum(map(len, theirs.values())) > 0  # the comparison covers real instances


def test_a_coco_run_exports_the_sources_ids_and_scores_with_cocoeval(tiny_run, converted_run):
    fmt, workdir, _ = converted_run
    if fmt != "coco":
        pytest.skip("COCO identities only")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    annotation_file = workdir / "data/coco/annotations/instances_train2014.json"
    source = json.loads(annotation_file.read_text())
    exported = json.loads((workdir / "results/pseudo_labels/instances.json").read_text())
    assert {i["id"] for i in exported["images"]} <= {i["id"] for i in source["images"]}
    assert sorted(c["id"] for c in exported["categories"]) == sorted(c["id"] for c in source["categories"])
    assert "info" in exported and exported["annotations"]
    with contextlib.redirect_stdout(io.StringIO()):  # no remapping: the exported annotations load as results
        ground_truth = COCO(str(annotation_file))
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(exported["annotations"]), "segm")
        evaluation.params.imgIds = [i["id"] for i in exported["images"]]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    metrics = json.loads((workdir / "results/eval/instances.json").read_text())
    assert metrics["coco"]["ap50"] == pytest.approx(max(float(evaluation.stats[1]), 0.0))
    assert {"map25", "map50", "map75"} <= set(metrics)


def test_a_bad_csv_row_stops_with_one_line_naming_it(tiny_run, tmp_path):
    workdir = tmp_path / "bad"
    copy_workflow(REPO, workdir)
    shutil.copytree(tiny_run / "data", workdir / "data")
    config = yaml.safe_load((tiny_run / "tiny.yaml").read_text())
    voc = workdir / "data/VOC"
    convert_dataset(voc, workdir / "data/folder", "folder", {"all": ["2026_000001", "2026_000002"]},
                    classes=config["dataset"]["classes"])  # fmt: skip
    csv = workdir / "data/folder/labels.csv"
    rows = csv.read_text().splitlines()
    rows[2] = rows[2].rsplit(",", 1)[0] + ",unicorn"  # the second image's labels: a class that does not exist
    csv.write_text("\n".join(rows) + "\n")
    config["dataset"] = {"format": "folder", "root": "data/folder", "train_list": "all", "infer_list": "all",
                         "eval_list": None, "classes": config["dataset"]["classes"]}  # fmt: skip
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("Error: ") and "labels.csv" in last and "unicorn" in last, last
