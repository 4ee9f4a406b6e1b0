"""`auto` thresholds in the workflow: the calibrated value is what the stage uses, a sweep-grid change reruns
the sweep and only what reads its thresholds, and a number given by the user is used as it is.

On a copy of the tiny run, whose random-walk threshold is a number and whose CAM-baseline threshold is auto
(so the calibration stages ran, label-free: the tiny config has no calibration list).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from irnet_core.store import open_root
from tests.workflow.harness import planned_jobs, snakemake
from tests.workflow.outputs import product_digest

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

TARGET = "results/summary.json"
SEMANTIC = "results/semantic/shard-*.zarr"
# The instance export and its evaluation stay: the semantic labels are exported by a rule of their own.
DOWNSTREAM_OF_SEMANTIC = {"propagate_semantic", "export_semantic", "evaluate_semantic", "summarize"}


def edit_config(workdir, section, key, value):
    path = workdir / "tiny.yaml"
    config = yaml.safe_load(path.read_text())
    config.setdefault(section, {})[key] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def used(workdir, key="random_walk.sem_bg_threshold"):
    return json.loads((workdir / TARGET).read_text())["thresholds"][key]


def stored_labels(workdir):
    """Semantic labels per image id, from every shard store."""
    labels = {}
    for store in sorted(workdir.glob(SEMANTIC)):
        root = open_root(store)
        for image_id in root.attrs["image_ids"]:
            labels[image_id] = root[image_id]["labels"][...]
    return labels


def labels_at(workdir, threshold):
    """The semantic labels that the kept calibration scores give at ``threshold`` (the calibration images)."""
    import torch

    from irnet_core.random_walk import labels_from_scores

    root = open_root(workdir / "results/calibration/scores.zarr")
    return {
        image_id: labels_from_scores(
            torch.from_numpy(root[image_id]["semantic"][...]), root[image_id].attrs["keys"], threshold
        ).numpy()
        for image_id in root.attrs["image_ids"]
    }


@pytest.fixture(scope="module")
def steps(tiny_run, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("thresholds") / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    record = {"initial": (used(workdir), product_digest(workdir, SEMANTIC))}
    for name, section, key, value in (
        ("auto", "random_walk", "sem_bg_threshold", "auto"),
        ("grid", "calibration", "semantic_grid", [0.35]),
        ("fixed", "random_walk", "sem_bg_threshold", 0.45),
    ):
        edit_config(workdir, section, key, value)
        plan = planned_jobs(workdir, TARGET)
        snakemake(workdir, TARGET)
        record[name] = (used(workdir), product_digest(workdir, SEMANTIC), plan, stored_labels(workdir))
        if name == "grid":
            record["grid_expected"] = labels_at(workdir, 0.35)
    return record


def test_auto_uses_the_calibrated_value_and_reruns_only_the_random_walk_and_after(steps):
    entry, _, plan, _ = steps["auto"]
    assert entry["how"].startswith("auto: label-free on") and 0 < entry["value"] < 1
    assert set(plan) == DOWNSTREAM_OF_SEMANTIC, plan


def test_a_sweep_grid_change_reruns_the_sweep_and_what_reads_its_threshold_only(steps):
    entry, digest, plan, labels = steps["grid"]
    assert entry["value"] == 0.35
    assert set(plan) == {"calibrate_label_thresholds", *DOWNSTREAM_OF_SEMANTIC}, plan  # no new random walk
    # The stage used the new value: its labels are those of the kept scores at 0.35 (on the calibration images
    # that are also infer images: the label-free sample takes those first).
    shared = set(steps["grid_expected"]) & set(labels)
    assert shared
    for image_id in shared:
        assert np.array_equal(labels[image_id], steps["grid_expected"][image_id]), image_id
    if steps["auto"][0]["value"] != 0.35:
        assert digest != steps["auto"][1]


def test_a_number_given_by_the_user_is_used_as_it_is_without_calibration(steps):
    entry, digest, plan, _ = steps["fixed"]
    assert entry == {"value": 0.45, "how": "given in the config"}
    assert not {"propagate_calibration", "calibrate_label_thresholds"} & set(plan), plan
    assert digest not in (steps["initial"][1], steps["grid"][1])
