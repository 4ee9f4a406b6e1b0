"""The paper's recipe on real ImageNet weights, end to end: the tiny workflow with `backbone: {arch: mobilenet_v2,
weights: imagenet}` (torchvision's file in a temporary hub cache, tests/real_data.py), on CPU. Skipped when the
weights package is not installed."""

from __future__ import annotations

import json

import pytest
import torch

from tests.real_data import imagenet_hub
from tests.workflow.harness import make_workdir, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def test_paper_recipe_runs_on_imagenet_mobilenet_v2(tmp_path, monkeypatch):
    cached = imagenet_hub(tmp_path / "torch", monkeypatch)
    workdir = make_workdir(tmp_path / "run", {"backbone": {"arch": "mobilenet_v2", "weights": "imagenet"}})
    snakemake(workdir, "results/summary.json")

    imagenet = torch.load(cached, map_location="cpu", weights_only=True)
    cam = torch.load(workdir / "results/cam/model.pt", map_location="cpu", weights_only=True)
    assert cam["arch"] == "mobilenet_v2" and cam["weights"] == "imagenet" and cam["paper_recipe"]
    model = cam["model"]
    # The paper's recipe: stages up to stride 8 (features 0-6) frozen at the ImageNet values, the later ones and
    # their BatchNorm affine trained, every BatchNorm statistic frozen at ImageNet's.
    assert torch.equal(model["backbone.stem.0.0.weight"], imagenet["features.0.0.weight"])
    assert torch.equal(model["backbone.layer2.6.conv.2.weight"], imagenet["features.6.conv.2.weight"])
    assert not torch.equal(model["backbone.layer4.18.0.weight"], imagenet["features.18.0.weight"])
    assert not torch.equal(model["backbone.layer3.7.conv.1.1.weight"], imagenet["features.7.conv.1.1.weight"])
    assert torch.equal(model["backbone.layer4.18.1.running_mean"], imagenet["features.18.1.running_mean"])
    assert torch.equal(model["backbone.layer3.13.conv.3.running_var"], imagenet["features.13.conv.3.running_var"])

    # IRNet on the plain ImageNet trunk, frozen (irnet.backbone_source auto = pretrained_frozen).
    irnet = torch.load(workdir / "results/irnet/model.pt", map_location="cpu", weights_only=True)
    assert irnet["arch"] == "mobilenet_v2" and irnet["backbone_source"] == "pretrained_frozen"
    assert not irnet["train_backbone"] and irnet["frozen_bn"]
    assert torch.equal(irnet["model"]["backbone.layer4.18.0.weight"], imagenet["features.18.0.weight"])

    summary = json.loads((workdir / "results/summary.json").read_text())
    semantic = json.loads((workdir / "results/eval/semantic.json").read_text())
    assert summary and 0.0 <= semantic["miou"] <= 1.0
