"""Semantic IoU and VOC instance AP on hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from irnet_core.metrics import (
    ConfusionMatrix,
    average_precision,
    mask_iou,
    semantic_report,
    voc_instance_ap,
)
from tests.scoring import instance_report


def _confusion() -> ConfusionMatrix:
    conf = ConfusionMatrix(3)
    gt = np.array([[0, 0, 1], [1, 255, 2]], np.uint8)
    pred = np.array([[0, 1, 1], [1, 2, 0]], np.uint8)
    conf.update(gt, pred)  # counted pairs (gt, pred): (0,0) (0,1) (1,1) (1,1) (2,0); the 255 pixel is ignored
    return conf


def test_confusion_matrix_counts_and_ignores_255() -> None:
    conf = _confusion()
    np.testing.assert_array_equal(conf.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    # IoU = TP / (GT + Pred - TP): class 0: 1/(2+2-1), class 1: 2/(2+3-2), class 2: 0/(1+0-0)
    np.testing.assert_allclose(conf.iou(), [1 / 3, 2 / 3, 0.0])
    assert conf.miou() == pytest.approx(1 / 3)
    assert conf.pixel_accuracy() == pytest.approx(3 / 5)


def test_classes_absent_everywhere_are_nan_and_skipped_by_the_mean() -> None:
    conf = ConfusionMatrix(4)
    conf.update(np.array([[0, 0, 1], [1, 255, 2]]), np.array([[0, 1, 1], [1, 2, 0]]))
    iou = conf.iou()
    np.testing.assert_allclose(iou[:3], [1 / 3, 2 / 3, 0.0])
    assert math.isnan(iou[3])
    assert conf.miou() == pytest.approx(1 / 3)
    assert math.isnan(ConfusionMatrix(2).miou())


def test_confusion_matrix_accumulates_over_images() -> None:
    conf = _confusion()
    conf.update(np.array([[2, 2]]), np.array([[2, 2]]))
    np.testing.assert_allclose(conf.iou(), [1 / 3, 2 / 3, 2 / 3])


def test_out_of_range_predictions_are_rejected() -> None:
    conf = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="prediction"):
        conf.update(np.zeros((2, 2), np.uint8), np.full((2, 2), 3, np.uint8))
    with pytest.raises(ValueError, match="prediction"):
        conf.update(np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8))
    with pytest.raises(ValueError, match="ground-truth"):
        conf.update(np.full((2, 2), 7, np.uint8), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        conf.update(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))


def test_semantic_report_is_json_friendly() -> None:
    conf = ConfusionMatrix(4)
    conf.update(np.array([[0, 0, 1], [1, 255, 2]]), np.array([[0, 1, 1], [1, 2, 0]]))
    report = semantic_report(conf, ["cat", "dog", "cow"])
    assert list(report["per_class"]) == ["background", "cat", "dog", "cow"]
    assert report["per_class"]["cow"] is None
    assert report["per_class"]["cat"] == pytest.approx(2 / 3)
    assert report["miou"] == pytest.approx(1 / 3)
    assert report["pixel_accuracy"] == pytest.approx(3 / 5)
    json.loads(json.dumps(report, allow_nan=False))
    assert semantic_report(conf, ["background", "cat", "dog", "cow"]) == report
    with pytest.raises(ValueError):
        semantic_report(conf, ["cat"])


# --------------------------------------------------------------------------------------------------------------


def _box(y0: int, y1: int, x0: int, x1: int, shape: tuple[int, int] = (10, 10)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


A = _box(0, 5, 0, 4)  # 20 px
B = _box(0, 5, 4, 8)  # 20 px, disjoint from A
FAR = _box(7, 10, 7, 10)


def _ap(
    preds: list[tuple[np.ndarray, int, float]],
    gts: list[tuple[np.ndarray, int]],
    n_classes: int = 1,
    iou_threshold: float = 0.5,
) -> tuple[np.ndarray, float]:
    """Single-image helper."""
    return voc_instance_ap(
        [np.stack([p[0] for p in preds]) if preds else np.zeros((0, 10, 10), bool)],
        [np.array([p[1] for p in preds], np.int64)],
        [np.array([p[2] for p in preds], np.float32)],
        [np.stack([g[0] for g in gts]) if gts else np.zeros((0, 10, 10), bool)],
        [np.array([g[1] for g in gts], np.int64)],
        n_classes,
        iou_threshold,
    )


def test_mask_iou() -> None:
    np.testing.assert_allclose(mask_iou(np.stack([A, A | B]), np.stack([A, B])), [[1.0, 0.0], [0.5, 0.5]])


def test_perfect_prediction_has_ap_one() -> None:
    ap, mean = _ap([(A, 0, 0.9), (B, 0, 0.4)], [(A, 0), (B, 0)])
    np.testing.assert_allclose(ap, [1.0])
    assert mean == 1.0


def test_false_positive_ranked_in_the_middle() -> None:
    # Ranked TP (0.9), FP (0.8), TP (0.7) with 2 GT: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    # Envelope: 1 up to recall 1/2, then 2/3 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    ap, mean = _ap([(A, 0, 0.9), (FAR, 0, 0.8), (B, 0, 0.7)], [(A, 0), (B, 0)])
    assert ap[0] == pytest.approx(5 / 6)
    assert mean == pytest.approx(5 / 6)


def test_duplicate_detection_is_a_false_positive() -> None:
    # The second copy of A finds A already taken: TP, FP, TP -> 5/6 as above.
    ap, _ = _ap([(A, 0, 0.9), (A, 0, 0.8), (B, 0, 0.7)], [(A, 0), (B, 0)])
    assert ap[0] == pytest.approx(5 / 6)


def test_no_fall_back_to_the_second_best_ground_truth() -> None:
    # A|B has IoU 0.5 with A and with B; its best (first) match A is taken, so it is a FP even though B is free.
    ap, _ = _ap([(A, 0, 0.9), (A | B, 0, 0.8), (B, 0, 0.7)], [(A, 0), (B, 0)])
    assert ap[0] == pytest.approx(5 / 6)


def test_predictions_are_ranked_over_the_whole_dataset() -> None:
    # Image 1: one GT, a TP scored 0.6. Image 2: one GT, a FP scored 0.9 and a TP scored 0.3.
    # Global ranking FP, TP, TP: precision 0, 1/2, 2/3 at recall 0, 1/2, 1 -> envelope 2/3 everywhere -> AP 2/3.
    ap, mean = voc_instance_ap(
        [A[None], np.stack([FAR, B])],
        [np.array([0]), np.array([0, 0])],
        [np.array([0.6]), np.array([0.9, 0.3])],
        [A[None], B[None]],
        [np.array([0]), np.array([0])],
        n_classes=1,
    )
    assert ap[0] == pytest.approx(2 / 3)
    assert mean == pytest.approx(2 / 3)


def test_classes_without_ground_truth_are_nan_and_missed_classes_zero() -> None:
    # class 0 perfect, class 1 has GT but no prediction (AP 0), class 2 has only a prediction (NaN).
    ap, mean = _ap([(A, 0, 0.9), (FAR, 2, 0.5)], [(A, 0), (B, 1)], n_classes=3)
    assert ap[0] == 1.0 and ap[1] == 0.0 and math.isnan(ap[2])
    assert mean == pytest.approx(0.5)


def test_average_precision_envelope() -> None:
    assert average_precision(np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])) == pytest.approx(5 / 6)
    assert average_precision(np.zeros(0), np.zeros(0)) == 0.0


def test_instance_report_thresholds_and_void_pixels() -> None:
    # GT A (20 px); the prediction also covers 20 void pixels (part of no GT mask): IoU = 20 / 40 = 0.5.
    pred = A | B
    report = instance_report([(pred[None], np.array([1]), np.array([0.8]), A[None], np.array([1]))], ["cat", "dog"])
    assert report["map25"] == 1.0 and report["map50"] == 1.0 and report["map75"] == 0.0
    assert report["per_class"]["cat"] == {"ap25": None, "ap50": None, "ap75": None}
    assert report["per_class"]["dog"] == {"ap25": 1.0, "ap50": 1.0, "ap75": 0.0}
    json.loads(json.dumps(report, allow_nan=False))


def test_mismatched_inputs_raise() -> None:
    with pytest.raises(ValueError):
        voc_instance_ap([A[None]], [np.array([0, 0])], [np.array([0.5])], [A[None]], [np.array([0])], 1)
    with pytest.raises(ValueError):
        voc_instance_ap([A[None]], [np.array([3])], [np.array([0.5])], [A[None]], [np.array([0])], 1)


def test_internal_checks_are_ordinary_errors_not_user_input_errors():
    # InputError names a user's file or key; a wrong call inside the library is a bug and must say so.
    from irnet_core.errors import InputError

    with pytest.raises(ValueError) as info:
        ConfusionMatrix(3).update(np.zeros((2, 2)), np.zeros((2, 3)))
    assert not isinstance(info.value, InputError)


def test_merged_accumulators_give_the_ap_of_all_their_images():
    from irnet_core.metrics import InstanceAP

    rng = np.random.default_rng(0)
    images = []
    for _ in range(5):
        gt = rng.random((3, 12, 12)) > 0.6
        pred = np.concatenate([gt[:2], rng.random((2, 12, 12)) > 0.5])
        images.append((pred, rng.integers(0, 2, 4), rng.random(4), gt, rng.integers(0, 2, 3)))
    whole = InstanceAP(2, (0.5, 0.75))
    parts = []
    for image in images:
        whole.add(*image)
        parts.append(InstanceAP(2, (0.5, 0.75)))
        parts[-1].add(*image)
    merged = InstanceAP.merged(parts).result()
    for threshold, (ap, mean) in whole.result().items():
        np.testing.assert_array_equal(merged[threshold][0], ap)
        assert merged[threshold][1] == mean
    with pytest.raises(ValueError, match="other classes"):
        InstanceAP.merged([InstanceAP(2), InstanceAP(3)])


def test_coverage_counts_recalled_and_merged_objects_per_class():
    from irnet_core.metrics import InstanceCoverage

    def box(y0, x0, y1, x1):
        mask = np.zeros((20, 20), bool)
        mask[y0:y1, x0:x1] = True
        return mask

    # Class 0: two touching objects predicted as one instance (both merged, neither recalled at IoU 0.5: each
    # is less than half the prediction); class 1: one object found, one missed.
    gt = np.stack([box(0, 0, 10, 5), box(0, 5, 10, 10), box(12, 0, 20, 8), box(12, 10, 20, 18)])
    gt_labels = np.array([0, 0, 1, 1])
    pred = np.stack([box(0, 0, 10, 11), box(12, 0, 20, 8)])  # IoU 50 / 110 with each of the touching pair
    coverage = InstanceCoverage(3)
    coverage.add(pred, np.array([0, 1]), gt, gt_labels)
    result = coverage.result()
    np.testing.assert_array_equal(result["recall50"][:2], [0.0, 0.5])
    np.testing.assert_array_equal(result["merged"][:2], [1.0, 0.0])
    assert math.isnan(result["recall50"][2]) and result["recall50_all"] == 0.25 and result["merged_all"] == 0.5
