"""Per-stage quality measures of bench/diagnostics.py (irnet_core.diagnostics) on hand-made maps."""

from __future__ import annotations

import numpy as np

from irnet_core.diagnostics import (
    boundary_precision_recall,
    class_borders,
    endpoint_errors,
    relation_label_counts,
)


def square_scene():
    class_gt = np.zeros((64, 64), np.uint8)
    class_gt[16:48, 16:48] = 2
    return class_gt


def test_a_boundary_map_on_the_borders_has_full_precision_and_recall_and_an_empty_one_has_none():
    class_gt = square_scene()
    borders = class_borders(class_gt, (16, 16))
    tp_p, predicted, tp_r, border = boundary_precision_recall(borders.astype(np.float32), class_gt)
    assert predicted == border > 0 and tp_p == predicted and tp_r == border
    empty = boundary_precision_recall(np.zeros((16, 16), np.float32), class_gt)
    assert empty[1] == 0 and empty[2] == 0
    everywhere = boundary_precision_recall(np.ones((16, 16), np.float32), class_gt)
    assert everywhere[0] < everywhere[1]  # cells far from any border are false positives


def test_relation_counts_separate_right_wrong_and_unsure_pixels():
    class_gt = square_scene()
    relations = class_gt.copy()
    relations[16:20] = 255  # unsure band
    relations[40:48, 16:48] = 3  # wrong class
    counts = relation_label_counts(relations, class_gt)
    assert counts["bg"] == counts["bg_correct"] == (class_gt[20:] == 0).sum() + (class_gt[:16] == 0).sum()
    assert counts["fg"] == 28 * 32 and counts["fg_correct"] == 20 * 32
    assert counts["gt_fg"] == 32 * 32 and counts["gt_fg_confident"] == 20 * 32


def test_endpoint_error_is_zero_for_a_field_pointing_at_the_centre_and_positive_for_none():
    object_gt = np.zeros((64, 64), np.uint8)
    object_gt[16:48, 16:48] = 1
    ys, xs = np.mgrid[0:16, 0:16].astype(np.float32)
    centre = 7.5  # grid cells 4..11 hold the object
    towards = np.stack([centre - ys, centre - xs])
    assert endpoint_errors(towards, object_gt)[0] < 0.75
    assert endpoint_errors(np.zeros((2, 16, 16), np.float32), object_gt)[0] > 2
