"""Per-stage quality measures of bench/diagnostics.py (irnet_core.diagnostics) on hand-made maps."""

from __future__ import annotations

import numpy as np

from irnet_core.diagnostics import (
    boundary_precision_recall,
    class_borders,
    endpoint_errors,
    relation_label_counts,
    same_class_merges,
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


def test_same_class_merges_counts_touching_and_apart_pairs_that_meet_in_one_point():
    # Three squares of one class on a 24 x 24 grid (96 px): A and B touch, C lies apart; a fourth of another class.
    object_gt = np.zeros((96, 96), np.uint8)
    object_gt[8:32, 8:32] = 1  # A: cells 2..7
    object_gt[8:32, 32:56] = 2  # B: cells 2..7 x 8..13, touching A
    object_gt[64:88, 64:88] = 3  # C: apart
    object_gt[64:88, 8:32] = 4  # D: another class
    classes = np.array([1, 1, 1, 2])
    ys, xs = np.mgrid[0:24, 0:24].astype(np.float32)
    cells = object_gt[::4, ::4]

    def field(targets):  # every object's cells point at its target cell (y, x)
        out = np.zeros((2, 24, 24), np.float32)
        for instance_id, (ty, tx) in targets.items():
            mask = cells == instance_id
            out[0][mask], out[1][mask] = (ty - ys)[mask], (tx - xs)[mask]
        return out

    own = field({1: (4.5, 4.5), 2: (4.5, 10.5), 3: (18.5, 18.5), 4: (18.5, 4.5)})
    assert same_class_merges(own, object_gt, classes) == {
        "touching": 1,
        "touching_merged": 0,
        "apart": 2,
        "apart_merged": 0,
    }
    shared = field({1: (4.5, 7.5), 2: (4.5, 7.5), 3: (4.5, 7.5), 4: (4.5, 7.5)})
    assert same_class_merges(shared, object_gt, classes) == {
        "touching": 1,
        "touching_merged": 1,
        "apart": 2,
        "apart_merged": 2,
    }
