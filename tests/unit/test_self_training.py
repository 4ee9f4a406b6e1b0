"""Self-training rounds: the rule that combines a model's predictions with the previous targets, on masks built
by hand, and its file-level entry point against the rule applied image by image."""

from __future__ import annotations

import json

import numpy as np
import pytest

from irnet_core.coco_instances import decode_instances, read_coco_instances
from irnet_core.config import validate_config
from irnet_core.data.voc import VOCDataset
from irnet_core.errors import InputError
from irnet_core.export import CocoWriter
from irnet_core.instances import Instances
from irnet_core.pipeline.pseudo_labels import score_instance_file
from irnet_core.pipeline.self_training import combine_round_set, evaluate_round
from irnet_core.self_training import RoundChanges, combine_round, confident_predictions
from irnet_core.settings import SelfTrainingSettings, from_section
from irnet_core.tools.demo_generator import demo_split_ids, generate_demo_dataset

CLASSES = ("disc", "square", "triangle", "star", "ring", "cross")
SIZE = (20, 30)


def box(top, left, bottom, right, size=SIZE):
    mask = np.zeros(size, bool)
    mask[top:bottom, left:right] = True
    return mask


def instances(*items):
    """Instances from (mask, class, score) triples."""
    if not items:
        return Instances.empty(SIZE)
    masks, classes, scores = zip(*items, strict=True)
    return Instances(np.stack(masks), np.array(classes), np.array(scores))


def combine(previous, predicted, labels=(0, 1), score_threshold=0.5, cover=0.5):
    return combine_round(previous, predicted, labels, score_threshold=score_threshold, cover=cover)


def test_schema_defaults_build_the_settings():
    section = validate_config({})["self_training"]
    assert section["rounds"] == 0  # no rounds: the paper's pipeline, today's results
    settings = from_section(SelfTrainingSettings, {k: v for k, v in section.items() if k != "rounds"}, "self_training")
    assert 0 < settings.score_threshold < 1 and 0 < settings.cover <= 1


def test_confident_predictions_need_score_an_image_label_and_pixels():
    predicted = instances(
        (box(0, 0, 5, 5), 0, 0.9),  # kept
        (box(0, 0, 5, 5), 0, 0.4),  # score below the threshold
        (box(0, 0, 5, 5), 2, 0.95),  # a class the image is not labelled with
        (np.zeros(SIZE, bool), 1, 0.99),  # empty mask
        (box(5, 5, 9, 9), 1, 0.5),  # at the threshold: kept
        (box(0, 0, 5, 6), 0, 0.8),  # the first one again (IoU 0.83): a duplicate
        (box(0, 3, 5, 8), 0, 0.7),  # overlaps it at IoU 0.25: another object
    )
    kept = confident_predictions(predicted, [0, 1], 0.5)
    assert kept.classes.tolist() == [0, 0, 1]  # highest score first
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7, 0.5])


def test_a_target_holding_two_predictions_is_split_along_its_own_outline():
    left, right = box(2, 2, 10, 12), box(2, 12, 10, 22)
    merged = left | right
    merged[10, 2:22] = True  # a row of the target that neither prediction covers
    previous = instances((merged, 0, 0.6))  # IRNet's one mask over two touching objects
    predicted = instances((box(3, 3, 9, 11), 0, 0.9), (box(3, 13, 9, 21), 0, 0.8))  # smaller, coarser
    targets, changes = combine(previous, predicted)
    assert (changes.split, changes.parts, changes.added) == (1, 2, 0)
    assert len(targets) == 2 and targets.scores.tolist() == pytest.approx([0.6, 0.6])  # the target's score
    assert (
        np.array_equal(targets.masks[0] | targets.masks[1], merged) and not (targets.masks[0] & targets.masks[1]).any()
    )
    assert targets.masks[0][2:11, 2:12].all() and targets.masks[1][2:11, 12:22].all()  # each pixel to the nearest


def test_a_missed_object_is_added_and_targets_without_two_predictions_stay():
    lone = box(12, 0, 18, 6)  # one prediction inside: not split
    missed = box(0, 24, 6, 30)  # a prediction with no target of its class: a new object
    other_class = box(12, 20, 18, 28)  # two predictions inside, but of another class
    previous = instances((lone, 0, 0.3), (other_class, 1, 0.6))
    predicted = instances(
        (box(13, 1, 17, 5), 0, 0.9),
        (missed, 0, 0.8),
        (box(12, 20, 18, 23), 0, 0.9),
        (box(12, 24, 18, 28), 0, 0.9),
        (box(12, 20, 18, 24), 1, 0.55),  # half inside `other_class`, no second one: it stays whole
    )
    targets, changes = combine(previous, predicted)
    assert (changes.split, changes.parts, changes.added) == (0, 0, 3)  # `missed` and the two class-0 boxes
    assert np.array_equal(targets.masks[0], lone) and np.array_equal(targets.masks[1], other_class)
    assert targets.scores[:2].tolist() == pytest.approx([0.3, 0.6])
    assert any(np.array_equal(mask, missed) for mask in targets.masks[2:])
    # A prediction mostly inside a target of its class is no new object, whatever its score.
    _, changes = combine(previous, instances((box(12, 0, 18, 5), 0, 0.99)))
    assert changes.added == 0


def test_without_confident_predictions_the_targets_are_unchanged():
    previous = instances((box(0, 0, 5, 5), 0, 1.0), (box(6, 6, 12, 12), 1, 0.5))
    predicted = instances((box(0, 0, 5, 5), 0, 0.2), (box(0, 0, 5, 2), 0, 0.3))
    targets, changes = combine(previous, predicted)
    assert changes == RoundChanges()
    assert np.array_equal(targets.masks, previous.masks) and targets.classes.tolist() == [0, 1]
    targets, _ = combine(instances(), instances())
    assert len(targets) == 0 and targets.masks.shape == (0, *SIZE)


def test_a_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match="targets are"):
        combine(instances((box(0, 0, 5, 5), 0, 1.0)), Instances.empty((10, 10)))


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("rounds")
    generate_demo_dataset(root / "VOC", n_images=4, n_labelled=4, seed=3, min_size=64, max_size=80)
    dataset = VOCDataset(root / "VOC", classes=list(CLASSES), exif="ignore")
    ids = demo_split_ids(4, 4)["train_aug"]
    labels = root / "labels.json"
    labels.write_text(json.dumps({"labels": {i: dataset.image_labels(i) for i in ids}}))
    return {"root": root, "dataset": dataset, "ids": ids, "labels": str(labels)}


def _write(path, dataset, ids, make):
    with CocoWriter(path, dataset.classes) as coco:
        for image_id in ids:
            masks, classes, _ = dataset.instance_gt(image_id)
            coco.add(image_id, f"{image_id}.jpg", masks.shape[1:], make(masks, classes))


def test_round_files_follow_the_rule_image_by_image(voc):
    """Previous targets: every ground-truth object of an image merged per class (score 1); predictions: the
    objects themselves (0.9), one of another class than labelled (0.99) and one weak (0.1). The round's file
    holds, per image, exactly what combine_round makes of the two: the merged targets split into the objects."""
    dataset, ids, root = voc["dataset"], voc["ids"], voc["root"]

    def merged(masks, classes):
        labels = np.unique(classes)
        return Instances(np.stack([masks[classes == c].any(axis=0) for c in labels]), labels, np.ones(len(labels)))

    def predicted(masks, classes):
        wrong = (classes[0] + 1) % len(CLASSES)
        while wrong in classes:
            wrong = (wrong + 1) % len(CLASSES)
        return Instances(np.concatenate([masks, masks[:1], masks[:1]]), np.concatenate([classes, [wrong, classes[0]]]),
                         np.concatenate([np.full(len(classes), 0.9), [0.99, 0.1]]))  # fmt: skip

    _write(root / "previous.json", dataset, ids, merged)
    _write(root / "predictions.json", dataset, ids, predicted)
    settings = SelfTrainingSettings(score_threshold=0.5, cover=0.5)
    counts = combine_round_set(previous_coco=str(root / "previous.json"), predictions_coco=str(root / "predictions.json"),
                               dataset=dataset, image_ids=ids, labels_path=voc["labels"], settings=settings,
                               out_coco=str(root / "round-1.json"))  # fmt: skip
    written = read_coco_instances(root / "round-1.json", CLASSES)
    previous = read_coco_instances(root / "previous.json", CLASSES)
    predictions = read_coco_instances(root / "predictions.json", CLASSES)
    n_objects = n_split = n_parts = 0
    for image_id in ids:
        per_class = np.bincount(dataset.instance_gt(image_id)[1])
        n_split, n_parts = n_split + int((per_class >= 2).sum()), n_parts + int(per_class[per_class >= 2].sum())
        expected, _ = combine_round(decode_instances(previous[image_id]), decode_instances(predictions[image_id]),
                                    dataset.image_labels(image_id), score_threshold=0.5, cover=0.5)  # fmt: skip
        got = decode_instances(written[image_id])
        assert np.array_equal(got.masks, expected.masks) and got.classes.tolist() == expected.classes.tolist()
        n_objects += len(dataset.instance_gt(image_id)[1])
    assert counts == {"images": len(ids), "previous": counts["previous"], "targets": n_objects, "split": n_split,
                      "parts": n_parts, "added": 0}  # fmt: skip
    # The merged targets miss objects wherever a class has two; split, they are the objects themselves.
    before = score_instance_file(dataset, ids, str(root / "previous.json"))
    after = score_instance_file(dataset, ids, str(root / "round-1.json"))
    assert after["map50"] == pytest.approx(1.0) and after["recall50"] == 1.0 and after["merged"] == 0.0
    assert any(np.bincount(dataset.instance_gt(i)[1]).max() >= 2 for i in ids)  # the data has such a class
    assert before["merged"] > 0 and before["map50"] < 1.0

    result = evaluate_round(targets_coco=str(root / "round-1.json"), dataset=dataset, eval_ids=ids, round_index=1,
                            out_path=str(root / "eval.json"), val_predictions_coco=str(root / "predictions.json"),
                            val_ids=ids[:2])  # fmt: skip
    assert json.loads((root / "eval.json").read_text())["round"] == 1
    assert result["targets"]["map50"] == after["map50"] and result["val_model"]["n_images"] == 2


def test_an_image_missing_from_a_round_file_is_named(voc):
    dataset, ids, root = voc["dataset"], voc["ids"], voc["root"]
    _write(root / "short.json", dataset, ids[:-1], lambda m, c: Instances(m, c, np.ones(len(c))))
    settings = SelfTrainingSettings(score_threshold=0.5, cover=0.5)
    with pytest.raises(InputError, match=rf"short.json.*{ids[-1]}"):
        combine_round_set(previous_coco=str(root / "short.json"), predictions_coco=str(root / "short.json"),
                          dataset=dataset, image_ids=ids, labels_path=voc["labels"], settings=settings,
                          out_coco=str(root / "never.json"))  # fmt: skip
    assert not (root / "never.json").exists()
