"""Reruns recompute: after a change of one result setting (or of one annotation), every product of the stages
that depend on it holds new content and every other product is byte-for-byte what it was.

One tiny run, then a chain of edits a user would make, from the last stage to the first so that each rerun is
as short as possible: instance extraction, random walk, IRNet training, relation mining, CAM inference, CAM
training, and an annotation whose object changes class. After each edit the whole pipeline is rerun to the end
and the products are compared by content (tests/workflow/outputs.py), not by plan: a stage that reruns but
returns its old result (a training that resumes a checkpoint of other inputs) fails here.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest
import yaml

from irnet_core.pipeline.common import read_labels_file
from irnet_core.training_sets import split_holdout
from tests.workflow.harness import planned_jobs, snakemake
from tests.workflow.outputs import AFFECTED, PRODUCTS, changed_products, snapshot

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

# The exports (two rules: the semantic PNGs and the instances): the last products compared (evaluation is not).
TARGETS = ("results/pseudo_labels/instances.json", "results/pseudo_labels/SegmentationClass")

# One edit per group of result settings: (section path, new value). The tiny run trains for a few steps only, so
# a small learning-rate change can leave the labels downstream unchanged; seeds change every weight, and so does
# IRNet's floor of steps (16 images at batch 4: 4 steps per epoch, so min_steps 10 trains 3 epochs instead of
# 1). conf_fg 0.30 -> 0.40 keeps the written length of the value, the case that a size-based checkpoint
# fingerprint missed.
EDITS = [
    ("instances", ("instances", "bg_threshold"), 0.7),
    ("random_walk", ("random_walk", "beta"), 3),
    ("irnet.train", ("irnet", "train", "min_steps"), 10),
    ("relations", ("relations", "conf_fg"), 0.40),
    ("cam.infer", ("cam", "infer", "scales"), [1.0, 0.75]),
    ("cam.train", ("cam", "train", "seed"), 1),
]


def set_config(workdir, path, value):
    config_file = workdir / "tiny.yaml"
    config = yaml.safe_load(config_file.read_text())
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))


def relabel_one_object(workdir) -> str:
    """Give the only object of a one-object image that the CAM network trains on (not one of its held-out
    images, whose edit leaves the model as it was) another class; returns the image id."""
    voc = workdir / "data/VOC"
    config = yaml.safe_load((workdir / "tiny.yaml").read_text())
    classes = config["dataset"]["classes"]
    labels = read_labels_file(workdir / "results/dataset/labels.json")
    ids = labels["image_ids"]
    trained, _ = split_holdout([labels["image_digests"][i] for i in ids], config["cam"]["train"]["holdout_fraction"])
    for image_id in [ids[pos] for pos in trained]:
        path = voc / "Annotations" / f"{image_id}.xml"
        tree = ET.parse(path)
        names = [obj.find("name") for obj in tree.getroot().iter("object")]
        if len(names) == 1:
            names[0].text = next(c for c in classes if c != names[0].text)
            tree.write(path)
            return image_id
    raise AssertionError("the tiny dataset has no one-object training image")


@pytest.fixture(scope="module")
def rerun_chain(tiny_run, tmp_path_factory):
    """Run the chain of edits on a copy of the tiny run; returns {edit: (changed products, plan of the rerun)}."""
    workdir = tmp_path_factory.mktemp("rerun") / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    results = {}
    before = snapshot(workdir)
    for name, path, value in EDITS:
        set_config(workdir, path, value)
        plan = planned_jobs(workdir, *TARGETS)
        snakemake(workdir, *TARGETS)
        after = snapshot(workdir)
        results[name] = (changed_products(before, after), plan)
        if name == "irnet.train":
            results["irnet_epochs"] = len((workdir / "results/irnet/train_log.csv").read_text().splitlines()) - 1
        before = after
    relabel_one_object(workdir)
    plan = planned_jobs(workdir, *TARGETS)
    snakemake(workdir, *TARGETS)
    after = snapshot(workdir)
    results["annotation"] = (changed_products(before, after), plan)
    results["unchanged"] = planned_jobs(workdir, *TARGETS)
    return results


@pytest.mark.parametrize("edit", [name for name, _, _ in EDITS])
def test_a_setting_change_recomputes_its_stage_and_what_follows_only(rerun_chain, edit):
    changed, plan = rerun_chain[edit]
    assert changed == AFFECTED[edit], f"plan was {plan}"


def test_a_floor_of_steps_trains_more_epochs_on_a_small_dataset(rerun_chain):
    # tiny.yaml: 1 epoch of 4 steps; min_steps 10 needs ceil(10 / 4) = 3 epochs, one history row each.
    assert rerun_chain["irnet_epochs"] == 3


def test_an_annotation_edit_retrains_the_cam_network_and_everything_after(rerun_chain):
    changed, plan = rerun_chain["annotation"]
    assert plan.get("prepare_dataset") == 1 and plan.get("train_cam") == 1, plan
    assert changed == list(PRODUCTS)


def test_a_rerun_with_nothing_changed_runs_nothing(rerun_chain):
    assert rerun_chain["unchanged"] == {}
