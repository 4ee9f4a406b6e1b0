"""Sparse random walk vs the dense reference, hand-computed walks, walls, upsampling and semantic labels."""

from __future__ import annotations

import pytest
import torch

from irnet_core.random_walk import (
    dense_transition,
    labels_from_scores,
    propagate,
    propagate_dense,
    semantic_scores,
    upsample_scores,
)
from tests.defaults import WALK, walk

# The walk's keyword arguments with the schema's values.
DEFAULT_WALK = {"beta": WALK.beta, "exp_times": WALK.exp_times, "radius": WALK.radius}


def semantic_labels(cam, keys, boundary, size, **changes) -> torch.Tensor:
    """Semantic labels of one image as the pseudo-label stage makes them: the walk (the schema's settings but
    ``changes``), then the background threshold (0.25, the paper's)."""
    return labels_from_scores(semantic_scores(cam, keys, boundary, size, walk(**changes)), keys, 0.25)


def _random_case(h: int, w: int, r: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.rand(r, h, w, generator=gen)
    # Mostly low boundary with a few strong cells, like a real boundary map.
    boundary = torch.rand(h, w, generator=gen) * 0.3
    boundary[torch.rand(h, w, generator=gen) < 0.15] = 0.9
    return scores, boundary


def _labels(y: torch.Tensor) -> torch.Tensor:
    """Argmax with a 0.25 background channel after global-max normalisation, as semantic labels do."""
    s = y / y.max()
    return torch.cat([torch.full_like(s[:1], 0.25), s]).argmax(0)


@pytest.mark.parametrize(
    ("h", "w", "radius", "exp_times"),
    [(9, 11, 5, 4), (9, 11, 5, 8), (12, 7, 3, 4), (12, 7, 3, 8), (12, 7, 5, 5), (4, 3, 5, 6), (1, 1, 5, 3)],
)
def test_sparse_equals_dense(h: int, w: int, radius: int, exp_times: int) -> None:
    scores, boundary = _random_case(h, w, 3, seed=h * 100 + w + radius + exp_times)
    sparse = propagate(scores, boundary, beta=10.0, exp_times=exp_times, radius=radius)
    dense = propagate_dense(scores, boundary, beta=10.0, exp_times=exp_times, radius=radius)
    assert sparse.shape == dense.shape == (3, h, w) and sparse.dtype == torch.float32
    torch.testing.assert_close(sparse, dense, rtol=1e-4, atol=1e-5 * float(dense.abs().max()))
    assert torch.equal(_labels(sparse), _labels(dense))
    # In float64 both routes agree to rounding: the same graph, border pairs included.
    sparse64 = propagate(scores.double(), boundary, beta=10.0, exp_times=exp_times, radius=radius)
    dense64 = propagate_dense(scores.double(), boundary, beta=10.0, exp_times=exp_times, radius=radius)
    assert sparse64.dtype == torch.float64
    torch.testing.assert_close(sparse64, dense64, rtol=1e-11, atol=1e-13)


def test_two_cells_by_hand() -> None:
    # 1×2 grid, B = [0, 0.5], β = 1: A = [[1, .5], [.5, 1]], columns sum to 1.5, T = [[2/3, 1/3], [1/3, 2/3]],
    # T² = [[5/9, 4/9], [4/9, 5/9]]; seeds x = 1 ⊙ (1 − B) = [1, 0.5]; Y = x·T² = [7/9, 6.5/9].
    scores = torch.ones(1, 1, 2, dtype=torch.float64)
    boundary = torch.tensor([[0.0, 0.5]], dtype=torch.float64)
    expected = torch.tensor([[[7 / 9, 6.5 / 9]]], dtype=torch.float64)
    for fn in (propagate, propagate_dense):
        torch.testing.assert_close(fn(scores, boundary, beta=1.0, exp_times=1, radius=2), expected)
    t = dense_transition(boundary, beta=1.0, radius=2)
    torch.testing.assert_close(t, torch.tensor([[2 / 3, 1 / 3], [1 / 3, 2 / 3]], dtype=torch.float64))


def test_beta_sharpens_the_transition() -> None:
    # Same pair with β = 3: A^β = [[1, 1/8], [1/8, 1]] → T = [[8/9, 1/9], [1/9, 8/9]]; one step (exp_times = 0).
    scores = torch.tensor([[[1.0, 0.0]]], dtype=torch.float64)
    boundary = torch.tensor([[0.0, 0.5]], dtype=torch.float64)
    got = propagate(scores, boundary, beta=3.0, exp_times=0, radius=2)
    torch.testing.assert_close(got, torch.tensor([[[8 / 9, 1 / 9]]], dtype=torch.float64))


def test_constant_field_without_boundaries_stays_constant() -> None:
    # Columns of T sum to 1, so y_j ← Σ_i y_i T[i, j] keeps a constant field constant.
    out = propagate(torch.full((2, 10, 13), 0.7), torch.zeros(10, 13), **DEFAULT_WALK | {"exp_times": 6})
    torch.testing.assert_close(out, torch.full((2, 10, 13), 0.7))


def test_mass_does_not_cross_a_closed_wall() -> None:
    # A closed one-cell ring of B = 1 (rows/cols 4..11 of a 16×16 grid): every path from inside to outside meets
    # the ring, so the affinity is exactly 0 and nothing leaks, however many steps (64 here) the walk takes.
    boundary = torch.zeros(16, 16)
    boundary[4, 4:12] = boundary[11, 4:12] = boundary[4:12, 4] = boundary[4:12, 11] = 1.0
    inside = torch.zeros(16, 16, dtype=torch.bool)
    inside[5:11, 5:11] = True
    scores = torch.zeros(1, 16, 16)
    scores[0, 6, 7] = 1.0
    out = propagate(scores, boundary, **DEFAULT_WALK | {"exp_times": 6})[0]
    assert torch.all(out[~inside] == 0)
    assert float(out[inside].min()) > 0  # the inside is connected and the walk spreads over it
    # Seeds on the outside stay outside as well.
    scores = torch.zeros(1, 16, 16)
    scores[0, 1, 1] = 1.0
    out = propagate(scores, boundary, **DEFAULT_WALK | {"exp_times": 6})[0]
    assert torch.all(out[inside] == 0) and float(out[0, 15]) > 0


def test_large_grid_never_builds_a_dense_matrix() -> None:
    # n = 38,400: a dense n×n float32 matrix would need 5.5 GiB; the sparse walk needs a few MiB.
    out = propagate(torch.rand(1, 160, 240), torch.rand(160, 240) * 0.5, **DEFAULT_WALK | {"exp_times": 1})
    assert out.shape == (1, 160, 240) and bool(torch.isfinite(out).all())


def test_empty_inputs_and_validation() -> None:
    assert propagate(torch.zeros(0, 5, 6), torch.zeros(5, 6), **DEFAULT_WALK).shape == (0, 5, 6)
    with pytest.raises(ValueError, match="boundary"):
        propagate(torch.zeros(1, 5, 6), torch.zeros(5, 7), **DEFAULT_WALK)
    with pytest.raises(ValueError, match="scores"):
        propagate(torch.zeros(5, 6), torch.zeros(5, 6), **DEFAULT_WALK)
    with pytest.raises(ValueError, match="exp_times"):
        propagate(torch.zeros(1, 5, 6), torch.zeros(5, 6), **DEFAULT_WALK | {"exp_times": -1})


def test_upsample_scores_by_hand() -> None:
    # One row [0, 4] at ×4, align_corners=False: source x = (x + 0.5)/4 − 0.5, clamped at the ends →
    # [0, 0, 0.5, 1.5, 2.5, 3.5, 4, 4]; divided by the global max 4.
    y = torch.tensor([[[0.0, 4.0]]])
    out = upsample_scores(y, (3, 8))
    row = torch.tensor([0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1])
    torch.testing.assert_close(out, row.expand(1, 3, 8))
    # Crop to the image size; the max is global over all maps.
    two = torch.stack([torch.ones(2, 2), 2 * torch.ones(2, 2)])
    out = upsample_scores(two, (7, 5))
    assert out.shape == (2, 7, 5)
    torch.testing.assert_close(out[0], torch.full((7, 5), 0.5))
    torch.testing.assert_close(out[1], torch.ones(7, 5))
    # All zero: no division, no NaN.
    assert torch.equal(upsample_scores(torch.zeros(1, 2, 2), (8, 8)), torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="cover"):
        upsample_scores(torch.zeros(1, 2, 2), (9, 8))


def test_semantic_labels_by_hand() -> None:
    # A full boundary column 3 splits a 6×7 grid. CAM of class 3 is 1 on the left, CAM of class 7 is 0.6 on the
    # right; constant fields inside walled regions stay constant, so after the global max (1) the left reads
    # 1 → label 4 and the right 0.6 > 0.25 → label 8. Pixels near the wall blend with it and are not checked.
    boundary = torch.zeros(6, 7)
    boundary[:, 3] = 1.0
    cam = torch.zeros(2, 6, 7)
    cam[0, :, :3] = 1.0
    cam[1, :, 4:] = 0.6
    labels = semantic_labels(cam, [3, 7], boundary, (24, 26), exp_times=5)
    assert labels.dtype == torch.uint8 and labels.shape == (24, 26)
    assert bool((labels[:, :8] == 4).all())
    assert bool((labels[:, 20:] == 8).all())
    assert set(labels.unique().tolist()) <= {0, 4, 8}
    # A weak right-hand CAM (0.2 < 0.25 after normalisation) loses to the background.
    cam[1, :, 4:] = 0.2
    labels = semantic_labels(cam, torch.tensor([3, 7]), boundary, (24, 26), exp_times=5)
    assert bool((labels[:, 20:] == 0).all()) and bool((labels[:, :8] == 4).all())


def test_semantic_labels_without_classes_is_background() -> None:
    labels = semantic_labels(torch.zeros(0, 4, 5), [], torch.zeros(4, 5), (13, 17))
    assert labels.dtype == torch.uint8 and labels.shape == (13, 17) and int(labels.max()) == 0
    with pytest.raises(ValueError, match="keys"):
        semantic_labels(torch.zeros(2, 4, 5), [1], torch.zeros(4, 5), (13, 17))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    scores, boundary = _random_case(24, 31, 4, seed=7)
    cpu = propagate(scores, boundary, **DEFAULT_WALK)
    gpu = propagate(scores.cuda(), boundary.cuda(), **DEFAULT_WALK)
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-6)
    dense = propagate_dense(scores.cuda(), boundary.cuda(), **DEFAULT_WALK)
    torch.testing.assert_close(dense.cpu(), cpu, rtol=1e-4, atol=1e-5 * float(cpu.abs().max()))
    keys = [2, 5, 9, 11]
    labels = semantic_labels(scores.cuda(), keys, boundary.cuda(), (93, 121))
    assert labels.is_cuda
    assert torch.equal(labels.cpu(), semantic_labels(scores, keys, boundary, (93, 121)))


def test_the_cam_veto_keeps_a_class_out_of_background_its_cam_is_sure_of():
    from irnet_core.random_walk import labels_from_scores, semantic_scores, veto_by_cam

    # One class whose CAM covers a 6x6 square of a 16x16 grid, and no boundary anywhere: the walk spreads the
    # class's score over the whole image, as across a boundary the map missed.
    h = w = 16
    cam = torch.zeros(1, h, w)
    cam[0, 5:11, 5:11] = 1.0
    cam[0, 4:12, 4:12] += 0.3  # a weak rim: unsure, the walk may decide it
    boundary = torch.zeros(h, w)
    scores = semantic_scores(cam, [2], boundary, (4 * h, 4 * w), walk(exp_times=6))
    walked = labels_from_scores(scores, [2], 0.25)
    assert (walked == 3).float().mean() > 0.9  # flooded
    high_res = torch.nn.functional.interpolate(cam[None], size=(4 * h, 4 * w), mode="nearest")[0]
    vetoed = labels_from_scores(veto_by_cam(scores, high_res, 0.2), [2], 0.25)
    assert ((vetoed == 3) == (high_res[0] >= 0.2)).all()  # the square and its rim, nothing beyond
    # Another class may still take a vetoed pixel; a shape mismatch is an error.
    two = veto_by_cam(
        torch.stack([scores[0], torch.full_like(scores[0], 0.5)]),
        torch.stack([high_res[0], torch.ones_like(high_res[0])]),
        0.2,
    )
    assert (labels_from_scores(two, [2, 4], 0.25)[high_res[0] < 0.2] == 5).all()
    with pytest.raises(ValueError, match="differ in shape"):
        veto_by_cam(scores, high_res[:, :8], 0.2)
