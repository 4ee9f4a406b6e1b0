"""Instance extraction (stage G), the CAM-components baseline and the id-map storage form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from irnet_core.instances import (
    Instances,
    cam_component_instances,
    cluster_centroids,
    extract_instances,
    find_centroids,
    instance_scores,
    instances_to_map,
    map_to_instances,
)
from tests.defaults import CENTROID_ITERATIONS, INSTANCES, WALK, WEAK_THRESHOLD

GRID = (16, 24)  # stride-4 grid of a 64 x 96 image
SIZE = (64, 96)
CENTRES = ((5, 5), (10, 19))  # |d1|^2 - |d2|^2 is odd everywhere, so no pixel is equidistant


def _two_centre_field() -> tuple[np.ndarray, np.ndarray]:
    """Displacement pointing half-way to the nearest centre, and the index (0/1) of that centre per pixel."""
    ys, xs = np.mgrid[0 : GRID[0], 0 : GRID[1]].astype(np.float64)
    dist = np.stack([(ys - cy) ** 2 + (xs - cx) ** 2 for cy, cx in CENTRES])
    nearest = dist.argmin(axis=0)
    cy = np.choose(nearest, [c[0] for c in CENTRES])
    cx = np.choose(nearest, [c[1] for c in CENTRES])
    return np.stack([0.5 * (cy - ys), 0.5 * (cx - xs)]), nearest


def test_centroid_walk_converges_to_the_two_centres() -> None:
    field, nearest = _two_centre_field()
    centroids = find_centroids(field, iterations=300)
    assert centroids.shape == (2, *GRID) and np.issubdtype(centroids.dtype, np.integer)
    expected_y = np.choose(nearest, [c[0] for c in CENTRES])
    expected_x = np.choose(nearest, [c[1] for c in CENTRES])
    np.testing.assert_array_equal(centroids[0], expected_y)
    np.testing.assert_array_equal(centroids[1], expected_x)


def test_centroid_walk_interpolates_bilinearly() -> None:
    # Row 0 of dx is [0.5, 2.1, 0, 0, 0]. From x=0: step 1 -> 0.5; step 2 adds 0.5*0.5 + 0.5*2.1 = 1.3 -> 1.8 -> 2.
    # (Nearest-floor sampling would end at 1, nearest-ceil at 3.) From x=1: 1 + 2.1 = 3.1, then 0 -> 3.
    field = np.zeros((2, 1, 5))
    field[1, 0, :2] = (0.5, 2.1)
    centroids = find_centroids(field, iterations=2)
    np.testing.assert_array_equal(centroids[1, 0], [2, 3, 2, 3, 4])
    np.testing.assert_array_equal(centroids[0, 0], [0, 0, 0, 0, 0])


def test_centroid_walk_clips_to_the_grid() -> None:
    field = np.zeros((2, 3, 3))
    field[0], field[1] = 0.5, -0.25  # four steps move by (+2, -1)
    centroids = find_centroids(field, iterations=4)
    np.testing.assert_array_equal(centroids[0], [[2, 2, 2]] * 3)
    np.testing.assert_array_equal(centroids[1], [[0, 0, 1]] * 3)


def test_clustering_separates_the_two_centres() -> None:
    field, nearest = _two_centre_field()
    clusters = cluster_centroids(find_centroids(field, CENTROID_ITERATIONS), field, WEAK_THRESHOLD)
    # Weak regions (|D| < 2.5, i.e. within distance 5 of a centre) are two disks; the upper-left one is
    # labelled first in raster order, so it is cluster 0.
    np.testing.assert_array_equal(clusters, nearest)


def test_walks_ending_outside_weak_regions_form_one_extra_cluster() -> None:
    field = np.zeros((2, 1, 6))
    field[1, 0, 3:] = 3.0  # strong displacement on x >= 3: not weak
    centroids = np.array([[[0] * 6], [[0, 1, 2, 5, 5, 4]]])  # the last three end on x = 4, 5 (not weak)
    clusters = cluster_centroids(centroids, field, WEAK_THRESHOLD)
    np.testing.assert_array_equal(clusters, [[1, 1, 1, 0, 0, 0]])


def _identity_propagate(scores: torch.Tensor, boundary: torch.Tensor, **_: object) -> torch.Tensor:
    """Stand-in random walk: keeps the seeds, damped by (1 - B) as the real one does before walking."""
    return scores * (1 - boundary)


def _nearest_upsample(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Stand-in for upsample_scores: x4 nearest, crop, divide by the global maximum."""
    up = scores.repeat_interleave(4, dim=1).repeat_interleave(4, dim=2)[:, : size[0], : size[1]]
    return up / up.max()


def _two_object_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    field, _ = _two_centre_field()
    cam = np.zeros((1, *GRID), np.float32)
    cam[0, 3:8, 3:8] = 1.0  # object around centre (5, 5)
    cam[0, 8:13, 17:22] = 0.8  # object around centre (10, 19)
    return cam, np.zeros(GRID, np.float32), field


def _extract_with_stand_ins(cam, keys, boundary, field):
    """extract_instances with the identity walk and nearest upsampling: the scores are the CAMs per cluster."""
    return extract_instances(cam, keys, boundary, field, SIZE, WALK, INSTANCES, propagate_fn=_identity_propagate,
                             upsample_fn=_nearest_upsample)  # fmt: skip


def test_extract_instances_finds_two_objects_of_the_right_class() -> None:
    cam, boundary, field = _two_object_scene()
    inst = _extract_with_stand_ins(cam, [14], boundary, field)
    assert len(inst) == 2
    assert inst.masks.dtype == bool and inst.masks.shape == (2, *SIZE)
    assert inst.classes.dtype == np.int64 and inst.classes.tolist() == [14, 14]
    assert inst.scores.dtype == np.float32
    np.testing.assert_allclose(inst.scores, [1.0, 0.8])
    first = np.zeros(SIZE, bool)
    first[12:32, 12:32] = True
    second = np.zeros(SIZE, bool)
    second[32:52, 68:88] = True
    np.testing.assert_array_equal(inst.masks[0], first)
    np.testing.assert_array_equal(inst.masks[1], second)


def test_small_fragments_are_kept_with_score_zero_and_rows_are_class_major() -> None:
    cam = np.zeros((2, *GRID), np.float32)
    cam[0, 3:8, 3:8] = 1.0
    cam[1, 8:13, 17:22] = 0.9
    cam[1, 9, 14] = 0.7  # one grid cell = 16 px < 1 % of 64*96 = 61.44 px; same cluster, separate fragment
    _, boundary, field = _two_object_scene()
    inst = _extract_with_stand_ins(cam, [3, 11], boundary, field)
    assert inst.classes.tolist() == [3, 11, 11]
    # Both class-11 fragments are in row 1*N + 1; they come in raster order of their first pixels:
    # the big one starts at (32, 68), the small one at (36, 56).
    np.testing.assert_allclose(inst.scores, [1.0, 0.9, 0.0])
    assert inst.masks.sum(axis=(1, 2)).tolist() == [400, 400, 16]
    assert inst.masks[2][36:40, 56:60].all()


def test_no_image_level_label_gives_no_instances() -> None:
    _, boundary, field = _two_object_scene()
    inst = extract_instances(np.zeros((0, *GRID), np.float32), [], boundary, field, SIZE, WALK, INSTANCES)
    assert len(inst) == 0 and inst.masks.shape == (0, *SIZE)


def test_extract_instances_rejects_a_grid_that_does_not_fit_the_image() -> None:
    cam, boundary, field = _two_object_scene()
    with pytest.raises(ValueError, match="cam must be"):
        extract_instances(cam, [1], boundary, field, (80, 96), WALK, INSTANCES, propagate_fn=_identity_propagate)


def test_extract_instances_with_the_real_random_walk() -> None:
    cam, _, field = _two_object_scene()
    # Closed boundary rings (B = 1) around both objects: the walk cannot cross them, and ring seeds are damped
    # to 0, so each instance CAM stays exactly uniform (1 and 0.8) inside its ring and 0 elsewhere.
    boundary = np.zeros(GRID, np.float32)
    boundary[2:9, 2:9] = 1.0
    boundary[3:8, 3:8] = 0.0
    boundary[7:14, 16:23] = 1.0
    boundary[8:13, 17:22] = 0.0
    inst = extract_instances(cam, [14], boundary, field, SIZE, WALK, INSTANCES)
    assert inst.classes.tolist() == [14, 14]
    # Scores are the mean of the row over the mask: the two objects have the same shape and their rows the
    # values 1 and 0.8, so the scores keep that ratio; the bilinear rim inside each mask pulls both below 1.
    assert 0.75 < inst.scores[0] < 0.95
    np.testing.assert_allclose(inst.scores[1] / inst.scores[0], 0.8, rtol=1e-5)
    rows = instance_scores(cam, [14], boundary, field, SIZE, WALK, centroid_iterations=CENTROID_ITERATIONS,
                           weak_threshold=WEAK_THRESHOLD)  # fmt: skip
    winner = rows.scores.argmax(axis=0)
    for mask, score in zip(inst.masks, inst.scores):
        np.testing.assert_allclose(score, rows.scores[winner[mask][0]][mask].mean(), rtol=1e-6)
    first, second = inst.masks
    # x4 bilinear: grid cell c is centred on pixel 4c + 1.5, so between ring cell 2 and object cell 3 the value
    # at pixel p is (p - 9.5) / 4: 0.125 at p = 10 (background), 0.375 at p = 11 (object).
    assert first[21, 11] and not first[21, 10] and first[11, 21] and not first[10, 21]
    assert first[14:30, 14:30].all() and not first[:, 33:].any() and not first[33:].any()
    # Second object, scaled by 0.8: 0.8 * (p - 29.5) / 4 > 0.25 from p = 31 on, 0.8 * (53.5 - p) / 4 up to p = 52.
    assert second[31, 78] and not second[30, 78] and second[52, 78] and not second[53, 78]
    assert second[34:50, 70:86].all() and not second[:, :67].any() and not second[:31].any()


def test_cam_component_baseline() -> None:
    high_res = np.zeros((2, 6, 8), np.float32)
    high_res[0, 0:2, 0:2] = [[0.5, 0.9], [0.6, 0.4]]  # component A of class 4, max 0.9
    high_res[0, 4:6, 0:3] = 0.3  # component B of class 4, max 0.3
    high_res[1, 0:3, 5:8] = 0.7  # class 7
    high_res[1, 0, 5] = 0.2  # below the 0.25 background -> not part of the component
    inst = cam_component_instances(high_res, [4, 7], bg_threshold=0.25)
    assert inst.classes.tolist() == [4, 4, 7]
    np.testing.assert_allclose(inst.scores, [0.9, 0.3, 0.7])
    assert inst.masks.sum(axis=(1, 2)).tolist() == [4, 6, 8]
    assert not inst.masks[2][0, 5]
    empty = cam_component_instances(np.zeros((0, 6, 8), np.float32), [], 0.25)
    assert empty.masks.shape == (0, 6, 8)


def test_id_map_round_trip_is_lossless() -> None:
    masks = np.zeros((3, 4, 5), bool)
    masks[0, 0, :2] = True
    masks[1, 2:, 3:] = True  # masks[2] stays empty
    inst = Instances(masks, [2, 5, 5], [0.75, 0.5, 0.0])
    id_map, classes, scores = instances_to_map(inst)
    assert id_map.dtype == np.int32
    np.testing.assert_array_equal(id_map, [[1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 2, 2], [0, 0, 0, 2, 2]])
    back = map_to_instances(id_map, classes, scores)
    np.testing.assert_array_equal(back.masks, masks)
    assert back.classes.dtype == np.int64 and back.classes.tolist() == [2, 5, 5]
    assert back.scores.dtype == np.float32 and back.scores.tolist() == [0.75, 0.5, 0.0]


def test_overlapping_masks_cannot_be_stored_as_a_map() -> None:
    masks = np.ones((2, 3, 3), bool)
    with pytest.raises(ValueError, match="overlap"):
        instances_to_map(Instances(masks, [0, 1], [1.0, 1.0]))
    with pytest.raises(ValueError, match="0..1"):
        map_to_instances(np.full((2, 2), 2, np.int32), [0], [1.0])
