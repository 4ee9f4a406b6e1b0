"""Backbone, CAMNet and IRNet: shapes, freezing semantics and weight loading (resnet18, mobilenet_v2, random init)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from irnet_core.errors import InputError
from irnet_core.models import CAMNet, FrozenStatsBatchNorm2d, IRNet, build_backbone, build_cam_net, build_irnet
from irnet_core.models import backbone as backbone_module


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- backbone -------------------------------------------------------------------------------------


def test_backbone_strides_sizes_and_channels_for_odd_input() -> None:
    net = build_backbone("resnet18", "none", frozen_bn=False)
    feats = net(torch.randn(1, 3, 97, 130))
    # ceil(97/4)=25, ceil(130/4)=33; /8: 13, 17; /16: 7, 9 (layer4 keeps stride 16).
    assert [tuple(f.shape[-2:]) for f in feats] == [(25, 33), (25, 33), (13, 17), (7, 9), (7, 9)]
    assert [f.shape[1] for f in feats] == [64, 64, 128, 256, 512]
    assert net.out_channels == {"x1": 64, "x2": 64, "x3": 128, "x4": 256, "x5": 512}
    block = net.layer4[0]
    assert block.conv1.stride == (1, 1) and block.downsample[0].stride == (1, 1)
    assert all(m.dilation == (1, 1) for m in net.modules() if isinstance(m, nn.Conv2d))
    assert not hasattr(net, "fc") and not hasattr(net, "avgpool")


def test_bottleneck_backbone_channels() -> None:
    net = build_backbone("resnet50", "none", frozen_bn=True)
    assert net.out_channels == {"x1": 64, "x2": 256, "x3": 512, "x4": 1024, "x5": 2048}
    assert net.layer4[0].conv2.stride == (1, 1)  # torchvision's Bottleneck strides its 3x3 conv
    assert tuple(net(torch.randn(1, 3, 33, 17))[4].shape) == (1, 2048, 3, 2)


def test_mobilenet_v2_levels_strides_and_channels() -> None:
    net = build_backbone("mobilenet_v2", "none", frozen_bn=False)
    feats = net(torch.randn(1, 3, 97, 130))
    # Strides 4, 4, 8, 16, 16 as the ResNets': features.14 (the last stride-2 block) has stride 1.
    assert [tuple(f.shape[-2:]) for f in feats] == [(25, 33), (25, 33), (13, 17), (7, 9), (7, 9)]
    assert net.out_channels == {"x1": 24, "x2": 24, "x3": 32, "x4": 96, "x5": 1280}
    assert [f.shape[1] for f in feats] == list(net.out_channels.values())
    assert net.layer4[0].conv[1][0].stride == (1, 1) and net.layer4[0].stride == 1
    assert all(m.dilation == (1, 1) for m in net.modules() if isinstance(m, nn.Conv2d))
    # Every module of torchvision's features is in exactly one stage; the ImageNet classifier is not.
    assert sum(
        len(list(getattr(net, s).parameters())) for s in ("stem", "layer1", "layer2", "layer3", "layer4")
    ) == len(list(torchvision.models.mobilenet_v2().features.parameters()))


def _build_from_file(path: Path, arch: str, state: dict[str, torch.Tensor]) -> nn.Module:
    """The backbone ``arch`` built from ``state`` saved to ``path``, as a user's local weights file."""
    torch.save(state, path)
    return build_backbone(arch, str(path), frozen_bn=True)


def _assert_loaded(net: nn.Module, state: dict[str, torch.Tensor], ours_to_theirs: dict[str, str]) -> None:
    loaded = net.state_dict()
    for ours, theirs in ours_to_theirs.items():
        assert torch.equal(loaded[ours], state[theirs]), ours


def test_mobilenet_v2_torchvision_file_maps_onto_the_stages(tmp_path: Path) -> None:
    state = torchvision.models.mobilenet_v2(weights=None).state_dict()
    path = tmp_path / "mnv2.pth"
    net = _build_from_file(path, "mobilenet_v2", state)
    loaded = net.state_dict()
    _assert_loaded(
        net,
        state,
        {
            "stem.0.0.weight": "features.0.0.weight",
            "layer1.conv.2.weight": "features.3.conv.2.weight",
            "layer2.4.conv.1.0.weight": "features.4.conv.1.0.weight",
            "layer4.18.1.running_var": "features.18.1.running_var",
        },
    )
    assert torch.equal(
        backbone_module.torchvision_state(net)["features.13.conv.2.weight"], state["features.13.conv.2.weight"]
    )
    assert not any(key.startswith("classifier") for key in loaded)
    with pytest.raises(InputError, match="mnv2.pth.*(missing|unexpected)"):
        build_backbone("resnet18", str(path), frozen_bn=True)


def test_unknown_arch_is_input_error() -> None:
    with pytest.raises(InputError, match="backbone.arch"):
        build_backbone("vgg16", "none", frozen_bn=False)


def test_frozen_bn_keeps_running_stats_and_trains_affine() -> None:
    net = build_backbone("resnet18", "none", frozen_bn=True)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(isinstance(m, FrozenStatsBatchNorm2d) for m in bns)
    # Non-trivial statistics so that "normalise with running stats" is distinguishable from batch stats.
    for m in bns:
        m.running_mean.uniform_(-0.5, 0.5)
        m.running_var.uniform_(0.5, 2.0)
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}
    x = torch.randn(1, 3, 32, 40)
    net.eval()
    out_eval = net(x)[4]
    net.train()
    out_train = net(x)[4]
    out_train.sum().backward()
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    torch.testing.assert_close(out_train, out_eval)
    for m in bns:
        assert isinstance(m.weight, nn.Parameter) and m.weight.requires_grad
        assert m.weight.grad is not None and m.bias.grad is not None
    assert float(bns[-1].weight.grad.abs().sum()) > 0


def test_ordinary_bn_updates_running_stats_in_train_mode() -> None:
    net = build_backbone("resnet18", "none", frozen_bn=False)
    before = net.stem.bn1.running_mean.clone()
    net.train()
    net(torch.randn(2, 3, 32, 32))
    assert not torch.equal(before, net.stem.bn1.running_mean)


# --- weights --------------------------------------------------------------------------------------


def _torchvision_resnet18_state() -> dict[str, torch.Tensor]:
    return torchvision.models.resnet18(weights=None).state_dict()


def test_local_weights_file_in_torchvision_format(tmp_path: Path) -> None:
    state = _torchvision_resnet18_state()
    net = _build_from_file(tmp_path / "r18.pth", "resnet18", state)
    _assert_loaded(
        net,
        state,
        {
            "stem.conv1.weight": "conv1.weight",
            "stem.bn1.running_var": "bn1.running_var",
            "layer4.1.conv2.weight": "layer4.1.conv2.weight",
            "layer3.0.downsample.1.bias": "layer3.0.downsample.1.bias",
        },
    )


def test_local_weights_file_wrapped_with_module_prefix(tmp_path: Path) -> None:
    source = build_backbone("resnet18", "none", frozen_bn=False)
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in source.state_dict().items()}}, path)
    net = build_backbone("resnet18", str(path), frozen_bn=False)
    for key, value in source.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key


def test_wrong_shape_weights_file_names_the_file(tmp_path: Path) -> None:
    state = _torchvision_resnet18_state()
    state["layer2.0.conv1.weight"] = torch.zeros(128, 64, 5, 5)
    path = tmp_path / "bad_shape.pth"
    torch.save(state, path)
    with pytest.raises(InputError, match="bad_shape.pth") as info:
        build_backbone("resnet18", str(path), frozen_bn=True)
    assert "layer2.0.conv1.weight" in str(info.value) and "\n" not in str(info.value)


def test_weights_for_other_arch_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(_torchvision_resnet18_state(), path)
    with pytest.raises(InputError, match="r18.pth.*(missing|unexpected)"):
        build_backbone("resnet50", str(path), frozen_bn=True)
    with pytest.raises(InputError, match="nope.pth.*not found"):
        build_backbone("resnet18", str(tmp_path / "nope.pth"), frozen_bn=True)


def test_imagenet_weights_offline_error_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def no_network(url: str, cache_dir: Path) -> dict[str, torch.Tensor]:
        raise OSError("network unreachable")

    monkeypatch.setattr(backbone_module, "_download_state_dict", no_network)
    with pytest.raises(InputError) as info:
        build_backbone("resnet50", "imagenet", frozen_bn=True)
    message = str(info.value)
    assert message.startswith("backbone.weights: ") and "\n" not in message
    assert "resnet50-0676ba61.pth" in message and "https://download.pytorch.org/models/" in message
    assert str(tmp_path / "checkpoints") in message


def test_imagenet_weights_from_hub_cache_without_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(url: str, cache_dir: Path) -> dict[str, torch.Tensor]:
        raise AssertionError("download attempted although the file is cached")

    monkeypatch.setattr(backbone_module, "_download_state_dict", forbidden)
    state = _torchvision_resnet18_state()
    (tmp_path / "checkpoints").mkdir()
    path = tmp_path / "checkpoints" / "stand-in.pth"
    torch.save(state, path)
    # A stand-in for torchvision's file, under a name that carries its own hash as torchvision's names do.
    prefix = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    cached = path.rename(path.with_name(f"resnet18-{prefix}.pth"))
    monkeypatch.setattr(backbone_module, "imagenet_weights_location", lambda arch: ("https://x/" + cached.name, cached))
    net = build_backbone("resnet18", "imagenet", frozen_bn=True)
    assert torch.equal(net.state_dict()["layer1.0.conv1.weight"], state["layer1.0.conv1.weight"])


def test_cached_imagenet_file_with_another_hash_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # torch.hub checks the hash on download only; a replaced or truncated file in the cache is named instead.
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(backbone_module, "_download_state_dict", lambda url, cache_dir: pytest.fail("download"))
    (tmp_path / "checkpoints").mkdir()
    torch.save(_torchvision_resnet18_state(), tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    with pytest.raises(InputError) as info:
        build_backbone("resnet18", "imagenet", frozen_bn=True)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "checkpoints" / "resnet18-f37072fd.pth") + ": SHA-256 ")
    assert "does not start with f37072fd" in message and "\n" not in message


# --- CAMNet ---------------------------------------------------------------------------------------


def test_cam_net_paper_recipe_gradient_pattern() -> None:
    net = CAMNet(build_backbone("resnet18", "none", frozen_bn=True), 5, paper_recipe=True)
    net.train()
    logits = net(torch.randn(2, 3, 48, 40))
    assert tuple(logits.shape) == (2, 5)
    logits.sum().backward()
    b = net.backbone
    for module in (b.stem, b.layer1, b.layer2):
        assert all(not p.requires_grad and p.grad is None for p in module.parameters())
    for module in (b.layer3, b.layer4, net.classifier):
        assert all(p.requires_grad and p.grad is not None for p in module.parameters())
    assert net.classifier.bias is None
    groups = net.param_groups()
    assert {id(p) for p in groups["backbone"]} == {id(p) for m in (b.layer3, b.layer4) for p in m.parameters()}
    assert [id(p) for p in groups["head"]] == [id(net.classifier.weight)]


def test_mobilenet_v2_cam_net_and_irnet() -> None:
    net = build_cam_net("mobilenet_v2", "none", 3)
    assert tuple(net.cams(torch.randn(1, 3, 50, 70)).shape) == (1, 3, 4, 5)
    paper = CAMNet(build_backbone("mobilenet_v2", "none", frozen_bn=True), 3, paper_recipe=True)
    trained = {id(p) for p in paper.param_groups()["backbone"]}
    b = paper.backbone
    assert trained == {id(p) for m in (b.layer3, b.layer4) for p in m.parameters()}  # features 7-18
    edge, disp = build_irnet("mobilenet_v2", "none")(torch.randn(1, 3, 97, 130))
    assert tuple(edge.shape) == (1, 1, 25, 33) and tuple(disp.shape) == (1, 2, 25, 33)


def test_cam_net_scratch_recipe_trains_everything() -> None:
    net = build_cam_net("resnet18", "none", 3)
    assert not net.paper_recipe and not net.backbone.frozen_bn
    net.train()
    net(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    assert len(net.param_groups()["backbone"]) == len(list(net.backbone.parameters()))


def test_cam_net_recipe_and_backbone_must_agree() -> None:
    with pytest.raises(ValueError, match="frozen_bn"):
        CAMNet(build_backbone("resnet18", "none", frozen_bn=False), 3, paper_recipe=True)


def test_cams_are_relu_of_the_classifier_and_logits_their_pre_relu_mean() -> None:
    net = CAMNet(build_backbone("resnet18", "none", frozen_bn=True), 4, paper_recipe=True).eval()
    x = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        feats = net.backbone(x)[4]
        pre = torch.einsum("kc,nchw->nkhw", net.classifier.weight[:, :, 0, 0], feats)
        cams = net.cams(x)
        logits = net(x)
    assert tuple(cams.shape) == (1, 4, 4, 5)
    torch.testing.assert_close(cams, pre.clamp_min(0))
    torch.testing.assert_close(logits, pre.mean(dim=(2, 3)))


# --- IRNet ----------------------------------------------------------------------------------------


def test_irnet_output_shapes_for_odd_sizes() -> None:
    net = build_irnet("resnet18", "none")
    for size in [(97, 130), (33, 17)]:
        edge, disp = net(torch.randn(2, 3, *size))
        h4, w4 = (size[0] + 3) // 4, (size[1] + 3) // 4
        assert tuple(edge.shape) == (2, 1, h4, w4) and tuple(disp.shape) == (2, 2, h4, w4)


def test_irnet_head_layout_matches_spec() -> None:
    net = build_irnet("resnet18", "none")
    gn = {name: (m.num_groups, m.num_channels) for name, m in net.named_modules() if isinstance(m, nn.GroupNorm)}
    assert gn["edge1.norm"] == (4, 32) and gn["edge5.norm"] == (4, 32)
    assert gn["disp1.norm"] == (8, 64) and gn["disp2.norm"] == (16, 128) and gn["disp6.norm"] == (16, 256)
    assert gn["disp7.0.norm"] == (16, 256)
    assert net.edge6.in_channels == 160 and net.edge6.bias is not None
    assert net.disp6.conv.in_channels == 768 and net.disp7[0].conv.in_channels == 448
    assert net.disp7[1].out_channels == 2 and net.disp7[1].bias is None
    assert [net.edge3.upsample, net.edge4.upsample, net.edge5.upsample] == [2, 4, 4]
    assert [net.disp4.upsample, net.disp5.upsample, net.disp6.upsample] == [2, 2, 2]


def test_irnet_frozen_backbone_gets_no_grad_and_stays_in_eval_mode() -> None:
    net = build_irnet("resnet18", "none")
    net.train()
    assert net.training and not net.backbone.training
    assert all(not m.training for m in net.backbone.modules())
    edge, disp = net(torch.randn(1, 3, 40, 36))
    (edge.sum() + disp.sum()).backward()
    assert all(p.grad is None and not p.requires_grad for p in net.backbone.parameters())
    heads = [p for name, p in net.named_parameters() if not name.startswith("backbone.")]
    assert heads and all(p.grad is not None for p in heads)
    groups = net.param_groups()
    assert groups["backbone"] == []
    assert len(groups["edge"]) + len(groups["displacement"]) == len(heads)
    assert all(p is not q for p in groups["edge"] for q in groups["displacement"])
    net.eval()
    assert not net.training


def test_irnet_trainable_backbone_gets_grad_and_switches_mode() -> None:
    net = IRNet(build_backbone("resnet18", "none", frozen_bn=False), train_backbone=True)
    net.train()
    assert net.backbone.training
    edge, disp = net(torch.randn(1, 3, 32, 32))
    (edge.sum() + disp.sum()).backward()
    assert all(p.grad is not None for p in net.backbone.parameters())
    assert len(net.param_groups()["backbone"]) == len(list(net.backbone.parameters()))
    net.eval()
    assert not net.backbone.training


def test_irnet_mean_displacement_is_a_saved_buffer_not_applied_in_forward() -> None:
    net = build_irnet("resnet18", "none").eval()
    assert torch.equal(net.mean_displacement, torch.zeros(2))
    assert "mean_displacement" in net.state_dict()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        _, before = net(x)
        net.mean_displacement.copy_(torch.tensor([3.0, -1.0]))
        _, after = net(x)
    torch.testing.assert_close(before, after)
    assert torch.equal(net.state_dict()["mean_displacement"], torch.tensor([3.0, -1.0]))
