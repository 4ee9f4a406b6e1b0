"""The rules behind `auto` thresholds (irnet_core.thresholds) and the calibration stage functions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from irnet_core import thresholds as T
from irnet_core.config import validate_config
from irnet_core.errors import InputError
from irnet_core.instances import extract_instances, instance_scores, instances_from_scores
from irnet_core.random_walk import labels_from_scores, semantic_scores
from tests.defaults import WEAK_THRESHOLD, instances, walk


def test_relation_rule_reproduces_the_papers_thresholds_at_its_cam_threshold():
    config = validate_config({})
    offsets = config["calibration"]["relation_logit_offsets"]
    assert T.relation_thresholds(0.15, offsets["fg"], offsets["bg"]) == pytest.approx((0.30, 0.05), abs=1e-3)
    fg, bg = T.relation_thresholds(0.7, offsets["fg"], offsets["bg"])
    assert bg < 0.7 < fg < 1  # the same spacing in log-odds stays inside (0, 1) for wide CAMs
    assert T.relation_thresholds(0.999, offsets["fg"], offsets["bg"])[0] < 1


def test_edge_alignment_picks_the_threshold_whose_border_lies_on_the_objects_outline():
    from irnet_core.evaluation import cam_label_map

    # A bright disc of radius 20 on a dark background, and a CAM wider than the disc: a cone that falls
    # from 1 at the centre to 0.5 on the disc's outline and further outside.
    ys, xs = np.mgrid[0:96, 0:96]
    radius = np.hypot(ys - 48, xs - 48)
    image = np.where(radius <= 20, 200, 30).astype(np.uint8)[..., None].repeat(3, axis=2)
    cam = np.clip(1 - radius / 40, 0, 1)[None].astype(np.float32)
    edges = T.EdgeAlignment([round(0.1 * k, 1) for k in range(1, 10)])
    edges.update(T.gradient_magnitude(image), lambda t: cam_label_map(cam, [0], t))
    assert edges.best() == 0.5
    assert edges.mass[0.1] < edges.mass[0.5] and edges.mass[0.9] < edges.mass[0.5]


def test_best_of_takes_the_middle_of_a_tied_run_and_skips_undefined_scores():
    assert T.best_of({0.1: 0.2, 0.2: 0.5, 0.3: 0.5, 0.4: 0.5, 0.5: 0.1}) == 0.3
    assert T.best_of({0.1: None, 0.2: 0.4, 0.3: float("nan")}) == 0.2
    with pytest.raises(ValueError):
        T.best_of({0.1: None})


def test_resolve_replaces_auto_only_and_names_a_missing_value(tmp_path):
    path = tmp_path / "cam.json"
    path.write_text(json.dumps({"thresholds": {"conf_fg": {"value": 0.8}, "conf_bg": {"value": 0.4}}}))
    section = {"conf_fg": "auto", "conf_bg": 0.1, "crf": {}}
    assert T.resolve(section, ("relations",), [path]) == {"conf_fg": 0.8, "conf_bg": 0.1, "crf": {}}
    assert T.resolve({"conf_fg": 0.5, "conf_bg": 0.1}, ("relations",), []) == {"conf_fg": 0.5, "conf_bg": 0.1}
    with pytest.raises(ValueError, match="random_walk.sem_bg_threshold is auto"):
        T.resolve({"sem_bg_threshold": "auto"}, ("random_walk",), [path])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="bad.json"):
        T.resolve(section, ("relations",), [tmp_path / "bad.json"])


def test_every_threshold_key_defaults_to_auto_and_takes_numbers():
    config = validate_config({})
    for key_path in T.CALIBRATED_NAME:
        assert T.is_auto(config, key_path), key_path
    given = validate_config({"random_walk": {"sem_bg_threshold": "0.35"}, "instances": {"bg_threshold": 0.4}})
    assert given["random_walk"]["sem_bg_threshold"] == 0.35 and given["instances"]["bg_threshold"] == 0.4
    with pytest.raises(InputError, match=r"config key random_walk.sem_bg_threshold: 'often' is neither auto"):
        validate_config({"random_walk": {"sem_bg_threshold": "often"}})


def test_label_free_sample_is_stable_and_prefers_training_images_of_the_infer_list():
    train = [f"im{i}" for i in range(50)]
    infer = train[10:40] + ["other"]
    sample = T.label_free_sample(train, infer, 12)
    assert len(sample) == 12 and set(sample) <= set(train[10:40])
    assert T.label_free_sample(train, infer + ["later"], 12) == sample
    # COCO-like lists (nothing labelled is trained on): training images stand in.
    disjoint = T.label_free_sample(train, ["other"], 12)
    assert len(disjoint) == 12 and set(disjoint) <= set(train)
    assert len(T.label_free_sample(train, infer, 45)) == 45 and T.label_free_sample(train, infer, 45)[
        :30
    ] == T.label_free_sample(train, infer, 30)


def _maps(seed=0, keys=(1, 3)):
    rng = np.random.default_rng(seed)
    h, w = 12, 15
    cam = torch.from_numpy(rng.random((len(keys), h, w)).astype(np.float32))
    boundary = torch.from_numpy(rng.random((h, w)).astype(np.float32) * 0.5)
    displacement = rng.normal(0, 1, (2, h, w)).astype(np.float32)
    return cam, list(keys), boundary, displacement, (45, 58)


def test_one_walk_gives_the_labels_of_a_walk_per_threshold():
    cam, keys, boundary, _, size = _maps()
    scores = semantic_scores(cam, keys, boundary, size, walk(exp_times=3))
    for threshold in (0.1, 0.3, 0.6):
        direct = labels_from_scores(semantic_scores(cam, keys, boundary, size, walk(exp_times=3)), keys, threshold)
        assert torch.equal(labels_from_scores(scores, keys, threshold), direct)
    assert set(torch.unique(labels_from_scores(scores, keys, 0.3)).tolist()) <= {0, 2, 4}


def test_instance_scores_then_instances_equal_extract_instances():
    cam, keys, boundary, displacement, size = _maps(1)
    rows = instance_scores(cam, keys, boundary, displacement, size, walk(exp_times=3), centroid_iterations=20,
                          weak_threshold=WEAK_THRESHOLD)  # fmt: skip
    for threshold in (0.2, 0.5):
        direct = extract_instances(
            cam,
            keys,
            boundary,
            displacement,
            size,
            walk(exp_times=3),
            instances(centroid_iterations=20, bg_threshold=threshold),
        )
        swept = instances_from_scores(rows, threshold, 0.01)
        assert np.array_equal(direct.masks, swept.masks) and np.array_equal(direct.scores, swept.scores)
        assert np.array_equal(direct.classes, swept.classes)


def test_edge_alignment_takes_the_middle_of_the_run_within_tolerance_of_the_peak():
    edges = T.EdgeAlignment([0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    edges.mass.update({0.4: 0.70, 0.5: 0.985, 0.6: 0.99, 0.7: 1.0, 0.8: 0.95, 0.9: 0.99})
    assert edges.best() == 0.6  # run 0.5-0.7 around the peak; 0.9 is within tolerance but not in the run
    edges.tolerance = 0.0
    assert edges.best() == 0.7


def test_edge_band_counts_an_edge_within_half_a_score_cell_of_the_border():
    # A vertical step edge at column 20; label borders 2 px outside it (columns 22/23) and 4 px outside.
    image = np.zeros((32, 48, 3), np.uint8)
    image[:, :20] = 200
    gradient = T.gradient_magnitude(image)

    def label_map(right_edge):
        labels = np.zeros((32, 48), np.uint8)
        labels[:, :right_edge] = 1
        return labels

    near, far = {}, {}
    for band, out in ((0, near), (2, far)):
        edges = T.EdgeAlignment([0.5, 0.6], band=band)
        edges.update(gradient, lambda t: label_map(23 if t == 0.5 else 25))
        out.update(edges.mass)
    assert near[0.5] == 0 and near[0.6] == 0  # without the band both borders miss the edge
    assert far[0.5] > 0 and far[0.6] == 0  # with it, the border 2 px off counts; 4 px off does not


def test_smoothing_averages_each_threshold_with_its_grid_neighbours():
    curve = {0.1: 0.2, 0.2: 0.9, 0.3: 0.4, 0.4: None, 0.5: 0.6}
    smooth = T.smoothed(curve)
    assert smooth[0.1] == pytest.approx(0.55) and smooth[0.2] == pytest.approx(0.5)
    assert smooth[0.3] == pytest.approx(0.65) and smooth[0.4] is None and smooth[0.5] == pytest.approx(0.6)


def test_a_spike_on_few_images_does_not_beat_the_label_free_threshold():
    # One threshold spikes (0.3) between poor neighbours; the label-free 0.6 sits on a broad plateau.
    curve = {0.2: 0.50, 0.3: 0.70, 0.4: 0.50, 0.5: 0.60, 0.6: 0.62, 0.7: 0.61, 0.8: 0.55}
    assert T.best_of(curve) == 0.3
    # Smoothed, the spike scores 0.567 and the plateau's middle 0.61: the peak is the label-free threshold.
    assert T.robust_choice(curve, label_free=0.6, min_gain=0.01) == (
        0.6,
        "smoothed peak, +0.0 points over the label-free 0.6",
    )
    # From a label-free 0.7 (smoothed 0.593), the smoothed peak gains 1.7 points: taken at min_gain 0.01, not 0.02.
    assert T.robust_choice(curve, label_free=0.7, min_gain=0.01)[0] == 0.6
    value, how = T.robust_choice(curve, label_free=0.7, min_gain=0.02)
    assert value == 0.7 and how == "label-free 0.7 kept: the smoothed peak 0.6 is only +1.7 points"


def test_a_clearly_better_calibrated_run_of_thresholds_replaces_the_label_free_one():
    curve = {0.2: 0.40, 0.3: 0.45, 0.4: 0.60, 0.5: 0.62, 0.6: 0.61, 0.7: 0.45}
    value, how = T.robust_choice(curve, label_free=0.3, min_gain=0.01)
    assert value == 0.5 and how == "smoothed peak, +12.7 points over the label-free 0.3"
    # A gain below min_gain keeps the label-free value; min_gain 0 always takes the smoothed peak.
    assert T.robust_choice(curve, label_free=0.4, min_gain=0.06)[0] == 0.4  # gain 5.3 points
    assert T.robust_choice(curve, label_free=0.4, min_gain=0.0)[0] == 0.5


def test_a_long_calibration_list_takes_the_sweeps_peak_and_a_short_one_the_robust_choice():
    curve = {0.2: 0.50, 0.3: 0.70, 0.4: 0.50, 0.5: 0.60, 0.6: 0.62, 0.7: 0.61, 0.8: 0.55}
    assert T.calibrated_choice(curve, 0.7, n_images=30, min_images=30, min_gain=0.02) == (0.3, "the sweep's peak")
    value, how = T.calibrated_choice(curve, 0.7, n_images=29, min_images=30, min_gain=0.02)
    assert value == 0.7 and how.endswith("; fewer than 30 images")


def test_each_threshold_rule_chooses_from_its_own_evidence():
    from irnet_core.thresholds import THRESHOLD_RULES, threshold_rule

    curve = {0.1: 0.2, 0.2: 0.6, 0.3: 0.5}
    assert THRESHOLD_RULES["calibrated"].choose(curve, 0.3, 40, 30, 0.0) == (0.2, "the sweep's peak")
    assert THRESHOLD_RULES["label-free"].choose(None, 0.3, 40, 30, 0.0) == (0.3, "label-free rule")
    assert threshold_rule("auto", True).name == "calibrated" and threshold_rule("auto", False).name == "label-free"
    assert threshold_rule("label-free", True).name == "label-free"
