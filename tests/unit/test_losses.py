"""IRNet pair labels and losses (spec §2.9) on tiny hand-made inputs."""

from __future__ import annotations

import math

import pytest
import torch

from irnet_core.losses import EPS, irnet_loss, pair_labels
from irnet_core.path_index import build_path_index, get_path_index

# Radius 2 on a 3×4 grid (see test_path_index): directions (0,1), (1,0), (1,-1), (1,1);
# sources (0,1), (0,2), (1,1), (1,2).
INDEX = build_path_index(2, 3, 4)
LABELS = torch.tensor(
    [
        [0, 0, 1, 1],
        [0, 255, 1, 2],
        [0, 0, 2, 2],
    ],
    dtype=torch.uint8,
)
# By hand, rows = directions, columns = sources:
#   source (0,1) label 0:  (0,2)=1 neg | (1,1)=255 -  | (1,0)=0 bg   | (1,2)=1 neg
#   source (0,2) label 1:  (0,3)=1 fg  | (1,2)=1 fg   | (1,1)=255 -  | (1,3)=2 neg
#   source (1,1) ignore:   all invalid
#   source (1,2) label 1:  (1,3)=2 neg | (2,2)=2 neg  | (2,1)=0 neg  | (2,3)=2 neg
POS_BG = [[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
POS_FG = [[0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
NEG = [[1, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1], [1, 1, 0, 1]]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.int32])
def test_pair_labels_by_hand(dtype: torch.dtype) -> None:
    pos_bg, pos_fg, neg = pair_labels(LABELS[None].to(dtype), INDEX)
    for got in (pos_bg, pos_fg, neg):
        assert got.shape == (1, 4, 4) and got.dtype == torch.float32
    assert pos_bg[0].tolist() == POS_BG
    assert pos_fg[0].tolist() == POS_FG
    assert neg[0].tolist() == NEG
    assert (float(pos_bg.sum()), float(pos_fg.sum()), float(neg.sum())) == (1.0, 2.0, 7.0)


def test_pair_labels_work_beyond_21_classes() -> None:
    # The official code's "< 21" would drop classes >= 21; only 255 is ignored here.
    labels = torch.full((1, 3, 4), 40, dtype=torch.int64)
    labels[0, 0, 3] = 255
    pos_bg, pos_fg, neg = pair_labels(labels, INDEX)
    assert float(pos_bg.sum()) == 0 and float(neg.sum()) == 0
    assert float(pos_fg.sum()) == 16 - 1  # only the pair (0,2)→(0,3) touches the ignored cell


def test_pair_labels_batch_and_type_checks() -> None:
    batch = torch.stack([LABELS, torch.zeros_like(LABELS)]).long()
    pos_bg, pos_fg, neg = pair_labels(batch, INDEX)
    assert pos_bg[0].tolist() == POS_BG
    assert float(pos_bg[1].sum()) == 16 and float(pos_fg[1].sum()) == 0 and float(neg[1].sum()) == 0
    with pytest.raises(TypeError):
        pair_labels(batch.float(), INDEX)
    with pytest.raises(ValueError, match="shape"):
        pair_labels(batch[:, :, :3], INDEX)


def _inputs(displacement: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    edge = torch.zeros(1, 1, 3, 4)  # sigmoid(0) = 0.5 everywhere → every affinity is 0.5
    disp = torch.zeros(1, 2, 3, 4) if displacement is None else displacement
    pos_bg, pos_fg, neg = pair_labels(LABELS[None], INDEX)
    return edge, disp, pos_bg, pos_fg, neg


def test_loss_values_by_hand_with_half_affinities() -> None:
    losses = irnet_loss(*_inputs(), INDEX)
    ell = -math.log(0.5 + EPS)  # −log(a + ε) = −log(1 + ε − a) when a = 0.5
    expected_bg = 1 * ell / (1 + EPS)
    expected_fg = 2 * ell / (2 + EPS)
    expected_neg = 7 * ell / (7 + EPS)
    # Zero displacement: fg pairs (0,2)→(0,3) and (0,2)→(1,2) each cost |δ|₁ = 1; bg pairs cost 0.
    expected_dfg = (1 + 1) / (2 * 2 + EPS)
    expected_total = ((expected_bg + expected_fg) / 2 + expected_neg) / 2 + (expected_dfg + 0) / 2
    assert set(losses) == {"pos_bg", "pos_fg", "neg", "disp_fg", "disp_bg", "total"}
    for key, value in (
        ("pos_bg", expected_bg),
        ("pos_fg", expected_fg),
        ("neg", expected_neg),
        ("disp_fg", expected_dfg),
        ("disp_bg", 0.0),
        ("total", expected_total),
    ):
        assert losses[key].shape == ()
        assert float(losses[key]) == pytest.approx(value, rel=1e-6, abs=1e-7), key


def test_background_displacement_differences_are_penalised() -> None:
    # The only bg pair is (0,1)→(1,0) along (1,-1). With D(1,0) = (3, -1): Δ = D(0,1) − D(1,0) = (-3, 1).
    disp = torch.zeros(1, 2, 3, 4)
    disp[0, 0, 1, 0] = 3.0
    disp[0, 1, 1, 0] = -1.0
    losses = irnet_loss(*_inputs(disp), INDEX)
    assert float(losses["disp_bg"]) == pytest.approx((3 + 1) / (2 * 1 + EPS))


def test_displacements_pointing_at_one_centre_cost_nothing() -> None:
    # One object (label 1) on an 8×10 grid; every object pixel points at the centre (3.5, 4.25): x + D(x) = c.
    # Background pixels share one displacement. Both displacement losses must vanish, and flipping the
    # sign (pointing away from the centre) must not.
    index = get_path_index(3, 8, 10)
    labels = torch.zeros(1, 8, 10, dtype=torch.int64)
    labels[0, 1:7, 2:8] = 1
    labels[0, 0, 0] = 255
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(10.0), indexing="ij")
    towards = torch.stack([3.5 - ys, 4.25 - xs])
    obj = labels[0] == 1
    disp = torch.where(obj, towards, torch.tensor([0.3, -0.7]).view(2, 1, 1))[None]
    pos_bg, pos_fg, neg = pair_labels(labels, index)
    assert float(pos_fg.sum()) > 0 and float(pos_bg.sum()) > 0
    edge = torch.zeros(1, 1, 8, 10)
    losses = irnet_loss(edge, disp, pos_bg, pos_fg, neg, index)
    assert float(losses["disp_fg"]) == pytest.approx(0.0, abs=1e-6)
    assert float(losses["disp_bg"]) == pytest.approx(0.0, abs=1e-6)
    away = torch.where(obj, -towards, torch.tensor([0.3, -0.7]).view(2, 1, 1))[None]
    assert float(irnet_loss(edge, away, pos_bg, pos_fg, neg, index)["disp_fg"]) > 1.0


def test_confident_correct_boundaries_give_small_affinity_losses() -> None:
    # Radius 3 on a 4×7 grid: background in columns 0-2, an ignored boundary column 3 predicted as boundary,
    # class 1 in columns 4-6. Positive pairs stay on one side; negative pairs (dx = ±2) cross column 3.
    index = get_path_index(3, 4, 7)
    labels = torch.tensor([[0, 0, 0, 255, 1, 1, 1]]).expand(4, 7)[None]
    edge = torch.full((1, 1, 4, 7), -30.0)
    edge[0, 0, :, 3] = 30.0
    pos_bg, pos_fg, neg = pair_labels(labels, index)
    assert min(float(pos_bg.sum()), float(pos_fg.sum()), float(neg.sum())) > 0
    losses = irnet_loss(edge, torch.zeros(1, 2, 4, 7), pos_bg, pos_fg, neg, index)
    for key in ("pos_bg", "pos_fg", "neg"):
        # a ≈ 1 gives −log(1 + ε) ≈ −1e-5: slightly below 0 by the spec's formula.
        assert abs(float(losses[key])) < 1e-4, key
    # Predicting no boundary at all costs about −log(ε) per negative pair.
    losses = irnet_loss(torch.full_like(edge, -30.0), torch.zeros(1, 2, 4, 7), pos_bg, pos_fg, neg, index)
    assert float(losses["neg"]) == pytest.approx(-math.log(EPS), rel=1e-3)


def test_all_ignored_gives_zero_and_gradients_flow() -> None:
    # No valid pair at all: every term is 0 / ε = 0, not NaN.
    labels = torch.full((2, 3, 4), 255, dtype=torch.uint8)
    pos_bg, pos_fg, neg = pair_labels(labels, INDEX)
    edge = torch.randn(2, 1, 3, 4, requires_grad=True)
    disp = torch.randn(2, 2, 3, 4, requires_grad=True)
    losses = irnet_loss(edge, disp, pos_bg, pos_fg, neg, INDEX)
    assert float(losses["total"].detach()) == 0.0
    losses = irnet_loss(edge, disp, *pair_labels(LABELS[None].expand(2, -1, -1), INDEX), INDEX)
    losses["total"].backward()
    assert edge.grad is not None and float(edge.grad.abs().sum()) > 0
    assert disp.grad is not None and float(disp.grad.abs().sum()) > 0


def test_shape_mismatch_is_reported() -> None:
    edge, disp, pos_bg, pos_fg, neg = _inputs()
    with pytest.raises(ValueError, match="displacement"):
        irnet_loss(edge, disp[:, :1], pos_bg, pos_fg, neg, INDEX)
    with pytest.raises(ValueError, match="neg"):
        irnet_loss(edge, disp, pos_bg, pos_fg, neg[:, :2], INDEX)
