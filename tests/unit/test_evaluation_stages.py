"""The evaluation stage entry points score a perfect prediction as perfect: mIoU 1.0 and mAP 1.0.

Ground truth of a few generated images goes into the shard stores as if the pipeline had predicted it; export,
semantic and instance evaluation then run exactly as their workflow jobs do (through the dataset reader and
the one ground-truth decoder), on CPU.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from irnet_core.data.voc import VOCDataset
from irnet_core.errors import InputError
from irnet_core.instances import Instances, instances_to_map
from irnet_core.pipeline.pseudo_labels import evaluate_instances, evaluate_semantic, export_labels
from irnet_core.store import ShardWriter
from irnet_core.tools.demo_generator import DEMO_CLASSES, demo_split_ids, generate_demo_dataset


@pytest.fixture(scope="module")
def perfect(tmp_path_factory):
    root = tmp_path_factory.mktemp("perfect")
    generate_demo_dataset(root / "VOC", n_images=5, n_labelled=5, seed=3, min_size=64, max_size=96)
    dataset = VOCDataset(root / "VOC", classes=DEMO_CLASSES)
    ids = demo_split_ids(5, 5)["train"]
    stores = {stage: str(root / stage / "shard-0.zarr") for stage in ("semantic", "instances", "cam")}
    writers = {stage: ShardWriter(path, stage=stage, image_ids=ids) for stage, path in stores.items()}
    for image_id in ids:
        semantic = dataset.semantic_gt(image_id)
        masks, classes, _ = dataset.instance_gt(image_id)
        keys = dataset.image_labels(image_id)
        size = list(semantic.shape)
        writers["semantic"].write(
            image_id, {"labels": np.where(semantic == 255, 0, semantic)}, {"keys": keys, "size": size}
        )
        id_map, inst_classes, scores = instances_to_map(Instances(masks, classes, np.ones(len(classes))))
        writers["instances"].write(
            image_id,
            {"instance_map": id_map, "classes": inst_classes.astype(np.int64), "scores": scores.astype(np.float32)},
            {"keys": keys, "size": size, "count": len(classes)},
        )
        cams = np.stack([(semantic == k + 1).astype(np.float16) for k in keys])
        writers["cam"].write(image_id, {"high_res": cams}, {"keys": keys, "size": size})
    for writer in writers.values():
        writer.close()
    export_labels(semantic_stores=[stores["semantic"]], instance_stores=[stores["instances"]], dataset=dataset,
                  image_ids=ids, out_dir=str(root / "labels"), out_coco=str(root / "instances.json"))  # fmt: skip
    semantic = evaluate_semantic(label_dir=str(root / "labels"), dataset=dataset, image_ids=ids,
                                 out_path=str(root / "semantic.json"))  # fmt: skip
    instances = evaluate_instances(instance_stores=[stores["instances"]], cam_stores=[stores["cam"]], dataset=dataset,
                                   image_ids=ids, baseline_threshold=0.5, out_path=str(root / "instances.json.eval"))  # fmt: skip
    return root, semantic, instances


def test_a_perfect_semantic_prediction_scores_miou_one(perfect):
    root, semantic, _ = perfect
    assert semantic["miou"] == pytest.approx(1.0) and semantic["n_images"] == 5
    assert json.loads((root / "semantic.json").read_text())["miou"] == pytest.approx(1.0)


def test_perfect_instances_score_map_one_at_every_iou(perfect):
    _, _, instances = perfect
    assert instances["map25"] == instances["map50"] == instances["map75"] == pytest.approx(1.0)
    assert instances["n_instances"] == instances["n_gt_instances"] > 5
    # CAMs equal to the class maps: components of touching same-class objects merge, so the baseline falls short.
    assert 0.0 < instances["map50_cam_baseline"] <= 1.0


@pytest.fixture(scope="module")
def calibration_inputs(tmp_path_factory):
    """Score stores of a few generated images whose objects score 0.7 (CAMs) or 0.8 (propagated) and whose
    background scores 0.4 or 0.3: every threshold between the two is perfect, none outside."""
    root = tmp_path_factory.mktemp("calibration")
    generate_demo_dataset(root / "VOC", n_images=4, n_labelled=4, seed=5, min_size=64, max_size=96)
    dataset = VOCDataset(root / "VOC", classes=DEMO_CLASSES)
    ids = demo_split_ids(4, 4)["train"]
    cam_store, score_store = str(root / "cam.zarr"), str(root / "scores.zarr")
    cams = ShardWriter(cam_store, stage="cam", image_ids=ids)
    scores = ShardWriter(score_store, stage="calibration_scores", image_ids=ids)
    for image_id in ids:
        semantic = dataset.semantic_gt(image_id)
        masks, classes, _ = dataset.instance_gt(image_id)
        keys = dataset.image_labels(image_id)
        attrs = {"keys": keys, "size": list(semantic.shape)}
        class_maps = np.stack([semantic == k + 1 for k in keys])
        cams.write(image_id, {"high_res": np.where(class_maps, 0.7, 0.4).astype(np.float16)}, attrs)
        rows = np.where(masks, 0.8, 0.3).astype(np.float32)
        scores.write(image_id, {"semantic": np.where(class_maps, 0.8, 0.3).astype(np.float32), "instances": rows,
                                "row_classes": classes.astype(np.int64)}, attrs)  # fmt: skip
    for writer in (cams, scores):
        writer.close()
    return root, dataset, ids, cam_store, score_store


@pytest.mark.parametrize("method", ["calibrated", "label-free"])
def test_calibration_chooses_thresholds_between_object_and_background_scores(calibration_inputs, method):
    from irnet_core.pipeline.calibration import calibrate_cam_thresholds, calibrate_label_thresholds

    with_ground_truth = method == "calibrated"

    root, dataset, ids, cam_store, score_store = calibration_inputs
    grid = [round(0.05 * k, 2) for k in range(1, 19)]
    cam = calibrate_cam_thresholds(cam_stores=[cam_store], dataset=dataset, image_ids=ids,
                                   method=method, grid=grid, offsets={"fg": 0.8873, "bg": -1.2098},
                                   min_gain=0.01, min_images=30, out_path=str(root / "cam.json"))  # fmt: skip
    chosen = cam["thresholds"]
    assert 0.4 <= chosen["cam"]["value"] < 0.7 and 0.4 <= chosen["cam"]["label_free"] < 0.7
    assert chosen["conf_bg"]["value"] < chosen["cam"]["value"] < chosen["conf_fg"]["value"]
    if with_ground_truth:
        assert chosen["cam"]["curve"]["0.5"] == pytest.approx(1.0) and chosen["cam"]["curve"]["0.1"] < 1.0
    labels = calibrate_label_thresholds(
        scores_store=score_store, cam_calibration=str(root / "cam.json"), dataset=dataset, image_ids=ids,
        method=method, semantic_grid=grid,
        instance_grid=grid, min_fragment=0.0, min_gain=0.01, min_images=30, out_path=str(root / "labels.json"),
        summary_path=str(root / "calibration.json"),
    )  # fmt: skip
    for name in ("semantic", "instances"):
        entry = labels["thresholds"][name]
        assert 0.3 <= entry["value"] < 0.8 and 0.3 <= entry["label_free"] < 0.8, (name, entry)
        if with_ground_truth:
            assert entry["curve"][f"{entry['value']:g}"] == pytest.approx(1.0)
            assert entry["curve"]["0.9"] < 1.0
        # Relative edge mass: the borders of the objects at every threshold between their scores, none above.
        assert entry["label_free_curve"][f"{entry['label_free']:g}"] == pytest.approx(1.0)
        assert entry["label_free_curve"]["0.9"] == 0.0
    summary = json.loads((root / "calibration.json").read_text())
    assert set(summary["thresholds"]) == {"cam", "conf_fg", "conf_bg", "semantic", "instances"}
    assert summary["method"] == method
    # 4 calibration images, fewer than min_images: warned (a label-free run has no list to warn about).
    assert (summary["warning"] is not None) == with_ground_truth and cam["warning"] == summary["warning"]


def _rectangle(top: int, left: int, size: int = 6) -> list[list[float]]:
    x0, y0, x1, y1 = left, top, left + size, top + size
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def test_coco_scores_match_ids_per_split_and_leave_the_predictions_alone(tmp_path):
    """Two user-made splits both number their one image 1, with the object in different places: each split's
    perfect prediction scores AP 1.0 only if predictions are matched per split (by the workflow's id), not by the
    integer id alone; and the evaluation leaves the prediction dicts it reads as they were."""
    import copy

    from pycocotools import mask as mask_utils

    from irnet_core.data.coco import CocoDataset
    from irnet_core.pipeline.pseudo_labels import coco_scores

    (tmp_path / "annotations").mkdir()
    tops = {"a": 2, "b": 12}
    for split, top in tops.items():
        (tmp_path / split).mkdir()
        ann = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 36.0, "bbox": [3, top, 6, 6],
               "segmentation": _rectangle(top, 3)}  # fmt: skip
        data = {"images": [{"id": 1, "file_name": f"{split}_img.jpg", "height": 20, "width": 20}],
                "annotations": [ann], "categories": [{"id": 1, "name": "box"}]}  # fmt: skip
        (tmp_path / f"annotations/instances_{split}.json").write_text(json.dumps(data))
    dataset = CocoDataset(tmp_path, splits=["a", "b"])
    exported = {"info": {}, "licenses": [], "categories": [{"id": 1, "name": "box"}], "images": [], "annotations": []}
    for number, (split, top) in enumerate(tops.items(), start=1):
        mask = np.zeros((20, 20), np.uint8)
        mask[top : top + 6, 3:9] = 1
        rle = mask_utils.encode(np.asfortranarray(mask))
        exported["images"].append({"id": 1, "file_name": f"{split}_img.jpg", "height": 20, "width": 20,
                                   "image_key": f"{split}_img"})  # fmt: skip
        exported["annotations"].append({"id": number, "image_id": 1, "category_id": 1, "iscrowd": 0, "score": 0.9,
                                        "segmentation": {"size": [20, 20], "counts": rle["counts"].decode()},
                                        "image_key": f"{split}_img"})  # fmt: skip
    path = tmp_path / "exported.json"
    path.write_text(json.dumps(exported))
    ids = ["a_img", "b_img"]
    assert [dataset.source_image_id(i) for i in ids] == [1, 1]
    before = copy.deepcopy(exported)
    first = coco_scores(dataset, ids, str(path))
    second = coco_scores(dataset, ids, str(path))  # a second evaluation of the same predictions works
    assert first == second
    assert {key: value["ap50"] for key, value in first.items()} == pytest.approx(
        {str(dataset.annotation_path("a")): 1.0, str(dataset.annotation_path("b")): 1.0}
    )
    assert json.loads(path.read_text()) == before

    from irnet_core.metrics import coco_segm_ap

    predictions = copy.deepcopy(exported["annotations"][:1])
    kept = copy.deepcopy(predictions)
    coco_segm_ap(str(dataset.annotation_path("a")), predictions, [1])
    assert predictions == kept  # pycocotools' loadRes would have added area, bbox and id to them

    # A file without image_key on its annotations (written elsewhere) whose integer ids collide: one line.
    for annotation in exported["annotations"]:
        del annotation["image_key"]
    path.write_text(json.dumps(exported))
    with pytest.raises(InputError, match="annotation 1: image id 1 is shared by images a_img, b_img"):
        coco_scores(dataset, ids, str(path))
