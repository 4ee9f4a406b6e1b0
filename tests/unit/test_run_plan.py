"""The run's lists and shards as the workflow works them out when it builds its DAG (irnet_core.run_plan)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from irnet_core.errors import InputError
from irnet_core.run_plan import check_files_exist, demo_lists, largest_image_pixels, plan_run
from irnet_core.shards import shard_of
from irnet_core.tools.demo_generator import demo_split_ids


def _config(shards=2, max_images=3, method="auto", **dataset):
    section = {key: None for key in ("train_list", "infer_list", "eval_list", "calibration_list", "val_list")}
    section.update(dataset)
    return {
        "dataset": section,
        "compute": {"shards": shards},
        "calibration": {"max_images": max_images, "method": method},
        "demo": {"n_images": 10, "n_labelled": 4, "n_calibration": 2, "n_val": 3},
    }


def test_the_shards_hold_train_infer_and_calibration_and_the_input_check_also_val():
    lists = {"train_list": ["a", "b", "c"], "infer_list": ["b", "d"], "eval_list": ["d"],
             "calibration_list": ["e", "f", "g", "h"], "val_list": ["v"]}  # fmt: skip
    plan = plan_run(_config(train_list="t.txt"), lists)
    assert plan.calibration == ["e", "f", "g"]  # only the first calibration.max_images
    assert sorted(i for shard in plan.shards for i in shard) == ["a", "b", "c", "d", "e", "f", "g"]
    assert sorted(i for shard in plan.verify_shards for i in shard) == ["a", "b", "c", "d", "e", "f", "g", "v"]
    for k, shard in enumerate(plan.verify_shards):
        assert all(shard_of(i, 2) == k for i in shard)  # an image's verify shard is its CAM shard
    assert plan.threshold_ids == ["e", "f", "g"] and plan.thresholds_with_ground_truth
    assert plan.ground_truth_ids == {"d", "e", "f", "g", "v"}
    assert plan.every_id == ["a", "b", "c", "d", "e", "f", "g", "v"]


def test_without_a_calibration_list_the_thresholds_use_a_label_free_sample_of_training_images():
    plan = plan_run(_config(max_images=2), {"train_list": ["a", "b", "c", "d"], "infer_list": ["c", "x"]})
    assert not plan.thresholds_with_ground_truth
    assert plan.threshold_ids[0] == "c" and len(plan.threshold_ids) == 2  # the infer list's training images first
    assert set(plan.threshold_ids) <= {"a", "b", "c", "d"}


def test_the_threshold_rule_is_one_value_and_calibrated_needs_a_calibration_list():
    lists = {"train_list": ["a", "b", "c"], "infer_list": ["a"], "calibration_list": ["e", "f"]}
    assert plan_run(_config(), lists).threshold_method == "calibrated"
    label_free = plan_run(_config(method="label-free"), lists)
    assert label_free.threshold_method == "label-free" and not label_free.thresholds_with_ground_truth
    assert set(label_free.threshold_ids) <= {"a", "b", "c"}  # a sample of training images, not the list
    with pytest.raises(InputError, match=r"^config key calibration.method: calibrated needs images with ground"):
        plan_run(_config(method="calibrated"), {"train_list": ["a"]})


@pytest.mark.parametrize(
    ("lists", "key", "problem"),
    [
        ({"train_list": []}, "dataset.train_list", "the training list t.txt is empty"),
        ({"train_list": ["a"], "infer_list": ["b"], "eval_list": ["c"]}, "dataset.eval_list",
         "1 id(s) is not in dataset.infer_list, e.g. 'c'"),
        ({"train_list": ["a"], "infer_list": ["b"], "eval_list": ["b"], "calibration_list": ["b"]},
         "dataset.calibration_list", "1 id(s) is also in dataset.eval_list, e.g. 'b'"),
        ({"train_list": ["a"], "infer_list": ["b"], "val_list": ["a", "b", "c"]}, "dataset.val_list",
         "2 id(s) also trains or gets pseudo-labels, e.g. 'a'"),
    ],
)  # fmt: skip
def test_lists_that_break_what_the_stages_rely_on_stop_with_one_line_naming_the_key(lists, key, problem):
    with pytest.raises(InputError) as caught:
        plan_run(_config(train_list="t.txt"), lists)
    assert str(caught.value) == f"config key {key}: {problem}"


def test_the_demo_lists_come_from_its_settings():
    config = _config(train_list="ImageSets/Segmentation/train_aug.txt", eval_list="ImageSets/Segmentation/train.txt",
                     val_list="ImageSets/Segmentation/val.txt")  # fmt: skip
    splits = demo_split_ids(10, 4, 2, 3)
    assert demo_lists(config) == {"train_list": splits["train_aug"], "eval_list": splits["train"],
                                  "val_list": splits["val"]}  # fmt: skip
    config["dataset"]["infer_list"] = "ImageSets/Segmentation/nope.txt"
    with pytest.raises(InputError, match=r"^config key dataset.infer_list: the demo dataset has lists .*'nope'"):
        demo_lists(config)
    config["demo"]["n_val"] = -1
    with pytest.raises(InputError, match=r"^config key demo.n_val: must be an integer"):
        demo_lists(config)


def test_a_missing_file_is_named_with_the_count(tmp_path):
    (tmp_path / "here.jpg").write_bytes(b"")
    check_files_exist([str(tmp_path / "here.jpg")], "image")
    with pytest.raises(InputError) as caught:
        check_files_exist([str(tmp_path / "here.jpg"), str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")], "image")
    assert str(caught.value) == f"{tmp_path / 'a.jpg'}: image does not exist (2 missing in all)"


def test_the_largest_image_is_read_from_headers_and_unknown_sizes_count_zero(tmp_path):
    for name, size in (("small", (30, 20)), ("large", (50, 40))):
        Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(tmp_path / f"{name}.png")
    assert largest_image_pixels([str(tmp_path / "small.png"), str(tmp_path / "large.png")], [], None) == 2000
    assert largest_image_pixels([str(tmp_path / "missing.png")], [], None) == 0  # a dry run: not there yet
    assert largest_image_pixels([], [str(tmp_path / "no.zarr")], None) == 0
