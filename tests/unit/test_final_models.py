"""Final models on the pseudo-labels: datasets, one short training each, prediction formats, final.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from irnet_core.coco_instances import read_coco_instances
from irnet_core.config import validate_config
from irnet_core.data.voc import VOCDataset
from irnet_core.errors import InputError
from irnet_core.export import CocoWriter, write_label_png
from irnet_core.instances import Instances
from irnet_core.losses import semantic_loss
from irnet_core.models.cam_net import build_cam_net, save_cam_net
from irnet_core.models.final import build_instance_model, build_semantic_model, initial_backbone_state
from irnet_core.palette import read_label_png
from irnet_core.pipeline.cam import infer_cam_shard
from irnet_core.pipeline.final import (
    evaluate_final,
    predict_instance_set,
    predict_semantic_set,
    train_instance_model,
    train_semantic_model,
)
from irnet_core.settings import (
    BackboneSettings,
    CamInferSettings,
    InstanceModelSettings,
    SemanticModelSettings,
    from_section,
)
from irnet_core.tools.demo_generator import demo_split_ids, generate_demo_dataset
from irnet_core.training import TrainingRun
from irnet_core.training_sets import InstanceSamples, SemanticCrops

CLASSES = ("disc", "square", "triangle", "star", "ring", "cross")
CPU = torch.device("cpu")
BACKBONE = BackboneSettings(arch="resnet18", weights="none")


def _settings(cls, section: str, **train):
    values = validate_config({})["final_models"][section]
    values["train"].update(train)
    return from_section(cls, values, section)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """4 training images with ground truth as their pseudo-labels, 2 val images, a (random) CAM network."""
    root = tmp_path_factory.mktemp("final")
    generate_demo_dataset(root / "VOC", n_images=4, n_labelled=4, seed=0, min_size=64, max_size=80, n_val=2)
    dataset = VOCDataset(root / "VOC", classes=list(CLASSES), exif="ignore")
    splits = demo_split_ids(4, 4, n_val=2)
    train, val = splits["train_aug"], splits["val"]
    label_dir = root / "pseudo_labels" / "SegmentationClass"
    with CocoWriter(root / "pseudo_labels" / "instances.json", CLASSES) as coco:
        for image_id in train:
            write_label_png(label_dir / f"{image_id}.png", dataset.semantic_gt(image_id))
            masks, classes, _ = dataset.instance_gt(image_id)
            scores = np.ones(len(classes), np.float32)
            coco.add(image_id, f"{image_id}.jpg", masks.shape[1:], Instances(masks, classes, scores))
    torch.manual_seed(0)
    cam_model = root / "cam.pt"
    net = build_cam_net("resnet18", "none", len(CLASSES))
    save_cam_net(cam_model, net, arch="resnet18", weights="none", classes=CLASSES, fingerprint="test")
    return {"root": root, "dataset": dataset, "train": train, "val": val, "label_dir": label_dir,
            "coco": root / "pseudo_labels" / "instances.json", "cam_model": str(cam_model)}  # fmt: skip


def test_schema_defaults_build_the_settings():
    config = validate_config({})["final_models"]
    instance = from_section(InstanceModelSettings, config["instance"], "final_models.instance")
    semantic = from_section(SemanticModelSettings, config["semantic"], "final_models.semantic")
    assert instance.arch == "auto" and instance.train.min_size == 800 and semantic.train.crop_size == 512
    assert validate_config({})["dataset"]["val_list"] is None  # no val list: no final stages by default


def test_demo_val_split_is_disjoint_and_leaves_other_lists_alone():
    with_val, without = demo_split_ids(10, 4, n_val=3), demo_split_ids(10, 4)
    assert with_val["train_aug"] == without["train_aug"] and with_val["train"] == without["train"]
    assert len(with_val["val"]) == 3 and not set(with_val["val"]) & set(with_val["train_aug"])
    assert "val" not in without  # the lists of a demo without a val split are as they were


def test_backbone_comes_from_the_cam_network_and_must_match_its_arch(data):
    state = initial_backbone_state("resnet18", "none", data["cam_model"], where="final_models.semantic.arch")
    cam = torch.load(data["cam_model"], weights_only=True)["model"]
    assert torch.equal(state["conv1.weight"], cam["backbone.stem.conv1.weight"])
    assert torch.equal(state["layer4.1.conv2.weight"], cam["backbone.layer4.1.conv2.weight"])
    model = build_semantic_model("resnet18", len(CLASSES), backbone_state=state)
    assert torch.equal(model.backbone.layer3[0].conv1.weight, cam["backbone.layer3.0.conv1.weight"])
    with pytest.raises(InputError, match="final_models.instance.arch"):
        initial_backbone_state("resnet34", "none", data["cam_model"], where="final_models.instance.arch")


def test_mobilenet_v2_final_models_start_from_its_backbone():
    from irnet_core.models.backbone import build_backbone, torchvision_state

    torch.manual_seed(0)
    state = torchvision_state(build_backbone("mobilenet_v2", "none", frozen_bn=False))
    model = build_instance_model("mobilenet_v2", len(CLASSES), backbone_state=state, fpn_channels=32, min_size=64,
                                 max_size=96, rpn_proposals=16, roi_samples=8)  # fmt: skip
    body = model.backbone.body
    assert list(body.return_layers) == ["3", "6", "13", "18"]  # torchvision's strides 4, 8, 16, 32
    assert [block[0].in_channels for block in model.backbone.fpn.inner_blocks] == [24, 32, 96, 1280]
    assert torch.equal(body["13"].conv[2].weight, state["features.13.conv.2.weight"])
    trained = {name.split(".")[0] for name, p in body.named_parameters() if p.requires_grad}
    assert trained == {str(k) for k in range(4, 19)}  # trainable_layers 3: features 4-6, 7-13, 14-18
    model.eval()
    with torch.no_grad():
        features = model.backbone(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in features.values()][:4] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    semantic = build_semantic_model("mobilenet_v2", len(CLASSES), backbone_state=state).eval()
    assert torch.equal(semantic.backbone["18"][0].weight, state["features.18.0.weight"])
    assert semantic.backbone["14"].conv[1][0].stride == (1, 1)  # output stride 16, as the CAM network's
    with torch.no_grad():
        assert tuple(semantic(torch.randn(2, 3, 64, 96))["out"].shape) == (2, len(CLASSES) + 1, 64, 96)


def test_ignored_pixels_and_score_zero_fragments_are_not_trained(data):
    logits = torch.randn(1, 7, 4, 4, requires_grad=True)
    labels = torch.full((1, 4, 4), 255, dtype=torch.int64)
    labels[0, :2] = 3
    semantic_loss(logits, labels).backward()
    assert logits.grad[0, :, 2:].abs().max() == 0 and logits.grad[0, :, :2].abs().max() > 0
    assert semantic_loss(torch.randn(1, 7, 4, 4), torch.full((1, 4, 4), 255)).item() == 0.0

    records = read_coco_instances(data["coco"], CLASSES)
    image_id = data["train"][0]
    record = dict(records[image_id], scores=[0.0] + records[image_id]["scores"][1:])
    samples = InstanceSamples(data["dataset"].load_image, {image_id: record}, [image_id], min_score=0.0, seed=0)
    image, target = samples[(0, 0)]
    assert image.dtype == torch.float32 and image.min() >= 0.0 and image.max() <= 1.0
    assert len(target["labels"]) == len(record["classes"]) - 1  # the score-0 instance is no target
    assert target["masks"].shape[1:] == image.shape[1:] and (target["boxes"][:, 2:] > target["boxes"][:, :2]).all()

    crops = SemanticCrops(data["dataset"].load_image, data["label_dir"], data["train"], crop_size=96,
                          scale_range=(1.0, 1.0), seed=0)  # fmt: skip
    _, crop_labels = crops[(0, 0)]
    assert crop_labels.shape == (96, 96) and (crop_labels == 255).any()  # padding and void stay ignored


def _history(path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_train_and_predict_both_models_then_score_them(data, tmp_path):
    dataset, out = data["dataset"], tmp_path
    instance = _settings(InstanceModelSettings, "instance", epochs=1, batch_size=2, min_size=64, max_size=96)
    instance = from_section(
        InstanceModelSettings,
        {**_plain(instance), "fpn_channels": 16, "rpn_proposals": 100, "roi_samples": 32},
        "final_models.instance",
    )
    semantic = _settings(SemanticModelSettings, "semantic", epochs=1, batch_size=2, crop_size=64)
    common = {"dataset": dataset, "image_ids": data["train"], "backbone": BACKBONE, "cam_model_path": data["cam_model"],
              "labels_path": None}  # fmt: skip
    train_instance_model(coco_path=str(data["coco"]), settings=instance, **common,
                         run=TrainingRun(str(out / "inst.pt"), str(out / "inst.csv"), str(out / "ck1"), CPU, 0))  # fmt: skip
    train_semantic_model(label_dir=str(data["label_dir"]), settings=semantic, **common,
                         run=TrainingRun(str(out / "sem.pt"), str(out / "sem.csv"), str(out / "ck2"), CPU, 0))  # fmt: skip
    rows = _history(out / "inst.csv")
    assert len(rows) == 1 and {"loss", "loss_mask", "loss_classifier", "lr"} <= set(rows[0])
    assert np.isfinite(float(rows[0]["loss"])) and np.isfinite(float(_history(out / "sem.csv")[0]["loss"]))
    assert not (out / "ck1" / "last.pt").exists()  # a finished training leaves no checkpoint

    predict_instance_set(model_path=str(out / "inst.pt"), dataset=dataset, image_ids=data["val"], settings=instance,
                         out_coco=str(out / "pred.json"), device=CPU)  # fmt: skip
    predict_semantic_set(model_path=str(out / "sem.pt"), dataset=dataset, image_ids=data["val"], settings=semantic,
                         out_dir=str(out / "pred_png"), device=CPU)  # fmt: skip
    coco = COCO(str(out / "pred.json"))  # the results load with pycocotools
    assert sorted(image["image_key"] for image in coco.dataset["images"]) == sorted(data["val"])
    assert all("score" in a for a in coco.dataset["annotations"])
    if coco.dataset["annotations"]:
        coco.loadRes(coco.dataset["annotations"])
    for image_id in data["val"]:
        labels = read_label_png(out / "pred_png" / f"{image_id}.png")
        assert labels.shape == dataset.image_size(image_id) and labels.max() <= len(CLASSES)


def _plain(settings):
    from irnet_core.settings import as_plain

    return as_plain(settings)


def _evaluate_ground_truth_as_predictions(cam_model, dataset, val, gt_dir, tmp_path) -> dict:
    """evaluate_final with the ground truth (PNGs in ``gt_dir``, COCO in gt.json) as every prediction."""
    infer_cam_shard(model_path=cam_model, dataset=dataset, image_ids=val, out_store=str(tmp_path / "cam.zarr"),
                    infer=CamInferSettings(scales=(1.0,), max_long_side=None), device=CPU)  # fmt: skip
    return evaluate_final(
        dataset=dataset, image_ids=val, semantic_dir=str(gt_dir), instance_coco=str(tmp_path / "gt.json"),
        pseudo_semantic_dir=str(gt_dir), pseudo_instance_coco=str(tmp_path / "gt.json"),
        cam_store=str(tmp_path / "cam.zarr"), thresholds={"cam_eval_threshold": 0.15, "cam_baseline_threshold": 0.15},
        out_path=str(tmp_path / "final.json"),
    )  # fmt: skip


def test_final_json_keys_ranges_and_perfect_scores(data, tmp_path):
    """Ground truth as the final models' predictions scores 1.0; every key of the contract is a fraction."""
    dataset, val = data["dataset"], data["val"]
    gt_dir = tmp_path / "gt"
    with CocoWriter(tmp_path / "gt.json", CLASSES) as coco:
        for image_id in val:
            write_label_png(gt_dir / f"{image_id}.png", dataset.semantic_gt(image_id))
            masks, classes, _ = dataset.instance_gt(image_id)
            coco.add(image_id, f"{image_id}.jpg", masks.shape[1:], Instances(masks, classes, np.ones(len(classes))))
    result = _evaluate_ground_truth_as_predictions(data["cam_model"], dataset, val, gt_dir, tmp_path)
    assert json.loads(Path(tmp_path / "final.json").read_text()) == result
    keys = {
        "semantic": ["miou"],
        "instance": ["map25", "map50", "map75"],
        "pseudo_labels": ["miou", "map50"],
        "baselines": ["cam_miou", "cam_components_map50"],
    }
    for section, names in keys.items():
        for name in names:
            assert 0.0 <= result[section][name] <= 1.0, (section, name)
    assert result["semantic"]["miou"] == pytest.approx(1.0) and result["instance"]["map50"] == pytest.approx(1.0)
    assert result["n_images"] == len(val)
    with pytest.raises(InputError, match="val_list"):
        evaluate_final(dataset=dataset, image_ids=[], semantic_dir="", instance_coco="", pseudo_semantic_dir="",
                       pseudo_instance_coco="", cam_store="", thresholds={}, out_path=str(tmp_path / "x.json"))  # fmt: skip


def test_a_coco_source_adds_cocos_ap(data, tmp_path):
    """With COCO as the source the predictions keep COCO's ids and final.json adds COCO's AP (pycocotools)."""
    from irnet_core.data.convert import voc_to_coco
    from irnet_core.data.dataset import open_dataset

    mapping = voc_to_coco(data["root"] / "VOC", tmp_path / "coco", {"val2014": data["val"]}, classes=CLASSES)
    dataset = open_dataset({"format": "coco", "root": str(tmp_path / "coco"), "splits": ["val2014"]})
    val = [mapping[i] for i in data["val"]]
    gt_dir = tmp_path / "gt"
    with CocoWriter(tmp_path / "gt.json", dataset.classes, dataset.category_ids) as coco:
        for image_id in val:
            write_label_png(gt_dir / f"{image_id}.png", dataset.semantic_gt(image_id))
            masks, classes, _ = dataset.instance_gt(image_id)
            found = Instances(masks, classes, np.ones(len(classes)))
            coco.add(image_id, dataset.file_name(image_id), masks.shape[1:], found, dataset.source_image_id(image_id))
    result = _evaluate_ground_truth_as_predictions(data["cam_model"], dataset, val, gt_dir, tmp_path)
    assert result["instance"]["coco"]["ap50"] == pytest.approx(1.0)
    assert result["instance"]["map50"] == pytest.approx(1.0) and "coco" in result["pseudo_labels"]


def test_a_diverged_training_stops_with_one_line():
    from irnet_core.pipeline.final import _check_finite

    _check_finite(torch.tensor(1.5), "final_models.instance.train")
    with pytest.raises(InputError, match="final_models.instance.train.lr"):
        _check_finite(torch.tensor(float("nan")), "final_models.instance.train")
