"""CAM inference, IRNet inference and the mean-displacement pass on tiny images (resnet18, random init)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from irnet_core.inference import (
    cam_inputs,
    compute_cams,
    high_res_from_scale_maps,
    infer_boundary_displacement,
    mean_displacement,
    scale_maps_from_inputs,
    stored_high_res,
)
from irnet_core.models import CAMNet, IRNet, build_backbone, build_irnet
from irnet_core.store import ShardReader, ShardWriter

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _norm_tensor(image: np.ndarray) -> torch.Tensor:
    """Independent re-statement of the ImageNet normalisation: uint8 HWC -> (1,3,H,W) float32."""
    x = (image.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(2, 0, 1).copy()).unsqueeze(0)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def cam_net() -> CAMNet:
    torch.manual_seed(0)
    net = CAMNet(build_backbone("resnet18", "none", frozen_bn=True), 4, paper_recipe=True)
    with torch.no_grad():
        # Positive head weights on non-negative features: every class has a non-zero CAM somewhere.
        net.classifier.weight.abs_()
        net.classifier.weight[1].mul_(3.0)
    return net.eval()


@pytest.fixture(scope="module")
def irnet() -> IRNet:
    torch.manual_seed(1)
    return build_irnet("resnet18", "none").eval()


# --- compute_cams ---------------------------------------------------------------------------------


def test_cams_shapes_and_per_class_max_normalisation(cam_net: CAMNet) -> None:
    cam, high_res = compute_cams(cam_net, _image(37, 50), [1, 3], device=torch.device("cpu"))
    assert cam.shape == (2, 10, 13) and high_res.shape == (2, 37, 50)
    assert cam.dtype == np.float32 and high_res.dtype == np.float32
    for maps in (cam, high_res):
        assert maps.min() >= 0.0 and maps.max() <= 1.0
        np.testing.assert_allclose(maps.max(axis=(1, 2)), 1.0, atol=1e-4)


def test_cams_without_classes_are_empty(cam_net: CAMNet) -> None:
    cam, high_res = compute_cams(cam_net, _image(37, 50), [])
    assert cam.shape == (0, 10, 13) and high_res.shape == (0, 37, 50)
    assert cam.dtype == np.float32 and high_res.dtype == np.float32


def test_single_scale_cam_equals_hand_computation(cam_net: CAMNet) -> None:
    image = _image(37, 50, seed=3)
    cam, high_res = compute_cams(cam_net, image, [3, 0], scales=(1.0,))
    x = _norm_tensor(image)
    with torch.no_grad():
        out = cam_net.cams(torch.cat([x, x.flip(-1)]))
    summed = (out[0] + out[1].flip(-1))[[3, 0]][None]  # (1, 2, 3, 4)
    expected_cam = F.interpolate(summed, size=(10, 13), mode="bilinear", align_corners=False)[0]
    expected_cam = expected_cam / (expected_cam.amax(dim=(1, 2), keepdim=True) + 1e-5)
    up = F.interpolate(summed, size=(48, 64), mode="bilinear", align_corners=False)[0, :, :37, :50]
    expected_high = up / (up.amax(dim=(1, 2), keepdim=True) + 1e-5)
    np.testing.assert_allclose(cam, expected_cam.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(high_res, expected_high.numpy(), rtol=1e-5, atol=1e-6)


def _accumulated_high_res(scale_maps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """high_res as CAM inference computed and stored it before the stores kept the scale maps instead."""
    height, width = size
    full = torch.zeros((scale_maps[0].shape[0], 16 * ((height + 15) // 16), 16 * ((width + 15) // 16)))
    for flip_sum in scale_maps:
        full += F.interpolate(flip_sum.unsqueeze(0), size=full.shape[-2:], mode="bilinear", align_corners=False)[0]
    full = full[:, :height, :width]
    return full / (full.amax(dim=(-2, -1), keepdim=True) + 1e-5)


def test_stored_scale_maps_give_the_former_high_res_bit_for_bit(tmp_path, cam_net: CAMNet) -> None:
    size, keys = (70, 93), [1, 3]
    inputs = cam_inputs(_image(*size, seed=5), (1.0, 0.5, 1.5))
    maps = scale_maps_from_inputs(cam_net, inputs, keys, device=torch.device("cpu"))
    assert [tuple(m.shape) for m in maps] == [(2, 5, 6), (2, 3, 3), (2, 7, 9)]  # stride 16 of each scale
    expected = _accumulated_high_res(maps, size)
    assert torch.equal(high_res_from_scale_maps(maps, size), expected)
    assert np.array_equal(compute_cams(cam_net, _image(*size, seed=5), keys, scales=(1.0, 0.5, 1.5))[1], expected)

    with ShardWriter(tmp_path / "cam.zarr", stage="cam", image_ids=["new", "old", "none"]) as writer:
        writer.write("new", {f"scale_{i}": m.numpy() for i, m in enumerate(maps)}, {"keys": keys, "size": size})
        writer.write("old", {"high_res": expected.numpy().astype(np.float16)}, {"keys": keys, "size": size})
        writer.write("none", {}, {"keys": [], "size": size})
    reader = ShardReader(tmp_path / "cam.zarr")
    derived, attrs = stored_high_res(reader, "new")
    assert derived.dtype == np.float16 and np.array_equal(derived, expected.numpy().astype(np.float16))
    assert attrs["keys"] == keys
    assert np.array_equal(stored_high_res(reader, "old")[0], derived)  # stores written before: read as they are
    assert stored_high_res(reader, "none")[0].shape == (0, *size)


def test_symmetric_image_gives_symmetric_cams(cam_net: CAMNet) -> None:
    half = _image(40, 32, seed=5)
    image = np.concatenate([half, half[:, ::-1]], axis=1)  # 40 x 64, mirror-symmetric
    cam, high_res = compute_cams(cam_net, image, [0, 1, 2])
    # Exact at scale 1; PIL's resize of a symmetric image is symmetric up to its fixed-point rounding.
    np.testing.assert_allclose(cam, cam[:, :, ::-1], atol=2e-3)
    np.testing.assert_allclose(high_res, high_res[:, :, ::-1], atol=2e-3)
    single, _ = compute_cams(cam_net, image, [0, 1, 2], scales=(1.0,))
    np.testing.assert_allclose(single, single[:, :, ::-1], atol=1e-6)


def test_cams_restore_train_mode_and_reject_bad_keys(cam_net: CAMNet) -> None:
    cam_net.train()
    try:
        compute_cams(cam_net, _image(20, 20), [2], scales=(1.0,))
        assert cam_net.training
    finally:
        cam_net.eval()
    with pytest.raises(ValueError, match="keys"):
        compute_cams(cam_net, _image(20, 20), [4])
    with pytest.raises(ValueError, match="image"):
        compute_cams(cam_net, _image(20, 20).astype(np.float32), [0])  # type: ignore[arg-type]


# --- infer_boundary_displacement -----------------------------------------------------------------


def _hand_boundary_displacement(net: IRNet, image: np.ndarray, padded: tuple[int, int]) -> tuple[np.ndarray, ...]:
    x = _norm_tensor(image)
    pair = torch.cat([x, x.flip(-1)])
    pair = F.pad(pair, (0, padded[1] - image.shape[1], 0, padded[0] - image.shape[0]))
    h, w = (image.shape[0] + 3) // 4, (image.shape[1] + 3) // 4
    with torch.no_grad():
        edge, disp = net(pair)
    boundary = torch.sigmoid((edge[0, 0, :h, :w] + edge[1, 0, :h, :w].flip(-1)) / 2)
    return boundary.numpy(), disp[0, :, :h, :w].numpy()


def test_boundary_displacement_matches_padded_hand_computation(irnet: IRNet) -> None:
    image = _image(45, 38, seed=7)
    irnet.mean_displacement.copy_(torch.tensor([0.25, -1.5]))
    try:
        boundary, disp = infer_boundary_displacement(irnet, image, pad_size=64)
    finally:
        irnet.mean_displacement.zero_()
    assert boundary.shape == (12, 10) and disp.shape == (2, 12, 10)
    assert boundary.dtype == np.float32 and disp.dtype == np.float32
    assert boundary.min() >= 0.0 and boundary.max() <= 1.0
    want_boundary, raw = _hand_boundary_displacement(irnet, image, (64, 64))
    np.testing.assert_allclose(boundary, want_boundary, rtol=1e-5, atol=1e-6)
    # Mean subtraction: dy - 0.25, dx + 1.5.
    np.testing.assert_allclose(disp[0], raw[0] - 0.25, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(disp[1], raw[1] + 1.5, rtol=1e-5, atol=1e-5)


def test_images_larger_than_pad_size_are_padded_to_16_not_cropped(irnet: IRNet) -> None:
    image = _image(50, 20, seed=8)  # taller than pad_size=32, narrower
    boundary, disp = infer_boundary_displacement(irnet, image, pad_size=32)
    assert boundary.shape == (13, 5) and disp.shape == (2, 13, 5)
    want_boundary, want_disp = _hand_boundary_displacement(irnet, image, (64, 32))
    np.testing.assert_allclose(boundary, want_boundary, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(disp, want_disp, rtol=1e-5, atol=1e-5)


# --- mean_displacement ----------------------------------------------------------------------------


def test_mean_displacement_equals_hand_computation(irnet: IRNet) -> None:
    images = [_image(20, 30, seed=10), _image(40, 24, seed=11), _image(32, 32, seed=12)]
    mu = mean_displacement(irnet, iter(images), pad_size=32, batch_size=2)
    assert mu.shape == (2,) and mu.dtype == np.float64

    def fitted(image: np.ndarray) -> torch.Tensor:
        canvas = torch.zeros(1, 3, 32, 32)
        x = _norm_tensor(image)[:, :, :32, :32]  # the 40-row image is cropped to 32 rows
        canvas[:, :, : x.shape[2], : x.shape[3]] = x
        return canvas

    with torch.no_grad():
        _, d = irnet(torch.cat([fitted(image) for image in images]))
    expected = d.double().mean(dim=(0, 2, 3))  # every image weighs the same, whatever the batches
    np.testing.assert_allclose(mu, expected.numpy(), rtol=1e-5, atol=1e-7)
    assert not np.allclose(mu, 0.0)


def test_mean_displacement_weighs_images_not_batches(irnet: IRNet) -> None:
    # Averaging batch means would give the last image of five, alone in its batch of 2, the weight of two
    # images. Per image, CPU kernels may round differently for other batch sizes (about 1e-6), which is why the
    # workflow makes the batch size of this pass a result setting (irnet.calibration.batch_size).
    images = [_image(20 + 3 * i, 30 - 2 * i, seed=20 + i) for i in range(5)]
    images[4] = np.full_like(images[4], 255)  # an outlier that a wrong weighting would over- or under-count
    results = [mean_displacement(irnet, images, pad_size=32, batch_size=b) for b in (1, 2, 3, 5, 8)]
    for mu in results[1:]:
        np.testing.assert_allclose(mu, results[0], rtol=0, atol=1e-6)


def test_mean_displacement_ignores_current_calibration_and_needs_images(irnet: IRNet) -> None:
    images = [_image(16, 16, seed=13)]
    base = mean_displacement(irnet, images, pad_size=16)
    irnet.mean_displacement.fill_(5.0)
    try:
        np.testing.assert_allclose(mean_displacement(irnet, images, pad_size=16), base, rtol=1e-6)
    finally:
        irnet.mean_displacement.zero_()
    with pytest.raises(ValueError, match="images"):
        mean_displacement(irnet, [], pad_size=16)
