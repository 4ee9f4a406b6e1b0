"""Relation-label mining (stage D) on synthetic images whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from irnet_core.errors import InputError
from irnet_core.relations import CRFParams, crf_refine_labels, mine_relation_labels

GREEN, GREY, RED, BLUE = (30, 90, 30), (120, 120, 120), (220, 40, 40), (40, 40, 220)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """96x96: uniform green background, a grey ring [20, 76) and a red object square [36, 60).

    The CAM is 1 on the object, 0.15 on the ring (above conf_bg = 0.05, below conf_fg = 0.30) and 0 outside.
    """
    image = np.full((96, 96, 3), GREEN, np.uint8)
    image[20:76, 20:76] = GREY
    image[36:60, 36:60] = RED
    cam = np.zeros((1, 96, 96), np.float32)
    cam[0, 20:76, 20:76] = 0.15
    cam[0, 36:60, 36:60] = 1.0
    return image, cam


def test_fg_inside_unsure_band_background_outside() -> None:
    image, cam = _scene()
    labels = mine_relation_labels(image, cam, [6], crf=CRFParams())
    assert labels.dtype == np.uint8 and labels.shape == (96, 96)
    expected = np.zeros((96, 96), np.uint8)
    expected[20:76, 20:76] = 255
    expected[36:60, 36:60] = 7  # class 6 (0-based) -> label 7
    np.testing.assert_array_equal(labels, expected)


def test_two_classes_keep_their_labels() -> None:
    image = np.full((64, 96, 3), GREEN, np.uint8)
    image[16:48, 8:40] = RED
    image[16:48, 56:88] = BLUE
    cam = np.zeros((2, 64, 96), np.float32)
    cam[0, 16:48, 8:40] = 0.9
    cam[1, 16:48, 56:88] = 0.8
    labels = mine_relation_labels(image, cam, [2, 14])
    expected = np.zeros((64, 96), np.uint8)
    expected[16:48, 8:40] = 3
    expected[16:48, 56:88] = 15
    np.testing.assert_array_equal(labels, expected)


def test_no_image_level_label_is_all_background() -> None:
    image, _ = _scene()
    labels = mine_relation_labels(image, np.zeros((0, 96, 96), np.float32), [])
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.zeros((96, 96), np.uint8))


def test_crf_with_a_single_label_returns_labels_unchanged() -> None:
    image, _ = _scene()
    labels = np.zeros((96, 96), np.int64)
    np.testing.assert_array_equal(crf_refine_labels(image, labels, 1), labels)


def test_crf_removes_a_speck_that_disagrees_with_colour() -> None:
    # A 2x2 speck of label 1 inside a uniform region of label 0 is smoothed away; the coloured square stays.
    image = np.full((48, 48, 3), GREEN, np.uint8)
    image[12:36, 12:36] = RED
    labels = np.zeros((48, 48), np.int64)
    labels[12:36, 12:36] = 1
    labels[2:4, 2:4] = 1
    refined = crf_refine_labels(image, labels, 2, CRFParams())
    expected = np.zeros((48, 48), np.int64)
    expected[12:36, 12:36] = 1
    np.testing.assert_array_equal(refined, expected)


def test_crf_params_from_dict() -> None:
    params = CRFParams.from_dict({"gt_prob": 0.8, "iterations": 5})
    assert params == CRFParams(gt_prob=0.8, iterations=5)
    assert CRFParams.from_dict(None) == CRFParams()
    assert (CRFParams().bilateral_sxy, CRFParams().bilateral_srgb, CRFParams().bilateral_compat) == (50, 5, 10)
    with pytest.raises(InputError, match="unknown"):
        CRFParams.from_dict({"gt_probability": 0.8})
    with pytest.raises(InputError, match="gt_prob"):
        CRFParams.from_dict({"gt_prob": 1.0})
    with pytest.raises(InputError, match="iterations"):
        CRFParams.from_dict({"iterations": 2.5})


def test_bad_inputs_raise_input_error() -> None:
    image, cam = _scene()
    with pytest.raises(InputError, match="keys"):
        mine_relation_labels(image, cam, [1, 2])
    with pytest.raises(InputError, match="does not match"):
        mine_relation_labels(image, cam[:, :50], [1])
    with pytest.raises(InputError, match="uint8"):
        mine_relation_labels(image.astype(np.float32), cam, [1])
