"""Typed settings: built from validated config sections, exact keys, no defaults of their own."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from irnet_core import settings as S
from irnet_core.config import fingerprint, validate_config

SECTIONS = {
    S.BackboneSettings: ("backbone",),
    S.OptimizerSettings: ("cam", "paper_recipe"),
    S.CamTrainSettings: ("cam", "train"),
    S.CamInferSettings: ("cam", "infer"),
    S.RelationSettings: ("relations",),
    S.IRNetTrainSettings: ("irnet", "train"),
    S.CalibrationSettings: ("irnet", "calibration"),
    S.RandomWalkSettings: ("random_walk",),
    S.InstanceSettings: ("instances",),
}


def section(config, path):
    for key in path:
        config = config[key]
    return config


@pytest.mark.parametrize("cls", list(SECTIONS), ids=lambda c: c.__name__)
def test_every_settings_class_matches_its_schema_section(cls):
    config = validate_config({})
    built = S.from_section(cls, section(config, SECTIONS[cls]))
    assert S.as_plain(built) == section(config, SECTIONS[cls])
    # Defaults live in the schema only.
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(cls))


def test_lists_become_tuples_and_nested_sections_dataclasses():
    relations = S.from_section(S.RelationSettings, validate_config({})["relations"])
    assert isinstance(relations.crf, S.CRFSettings) and relations.crf.iterations == 10
    train = S.from_section(S.CamTrainSettings, validate_config({})["cam"]["train"])
    assert train.resize_long == (320, 640) and hash(train)
    with pytest.raises(dataclasses.FrozenInstanceError):
        train.epochs = 3


def test_missing_or_extra_keys_are_programming_errors():
    train = dict(validate_config({})["irnet"]["train"])
    del train["radius"]
    with pytest.raises(ValueError, match=r"irnet.train: .*missing \['radius'\]"):
        S.from_section(S.IRNetTrainSettings, train, "irnet.train")
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        S.from_section(S.BackboneSettings, {"arch": "resnet18", "weights": "none", "extra": 1})


def test_type_hints_resolve():
    for cls in SECTIONS:
        typing.get_type_hints(cls)


def test_a_local_weights_file_enters_the_fingerprints_by_content(tmp_path):
    from irnet_core.provenance import backbone_digest

    path = tmp_path / "w.pth"
    path.write_bytes(b"first")
    first = backbone_digest(S.BackboneSettings("resnet18", str(path)))
    path.write_bytes(b"other")
    assert backbone_digest(S.BackboneSettings("resnet18", str(path))) != first
    assert backbone_digest(S.BackboneSettings("resnet18", "imagenet")) == {"arch": "resnet18", "weights": "imagenet"}


# Digests of the default settings, computed before the three JSON conversions became as_plain: a change here
# changes every checkpoint fingerprint and reruns every user's cached trainings.
PINNED_FINGERPRINTS = {
    S.BackboneSettings: "df79eb58cf41238f",
    S.OptimizerSettings: "c762c22eaf04b47c",
    S.CamTrainSettings: "548a78e95a4d613d",
    S.CamInferSettings: "5af09aa0caac55d8",
    S.RelationSettings: "00a3574ea463ada5",
    S.IRNetTrainSettings: "567d63e24f822357",
    S.CalibrationSettings: "abff6e0e6f549601",
    S.RandomWalkSettings: "dcebfab0aba457a6",
    S.InstanceSettings: "ffbfb6cd51750bad",
}


@pytest.mark.parametrize("cls", list(PINNED_FINGERPRINTS), ids=lambda c: c.__name__)
def test_fingerprints_of_the_default_settings_stay_the_same(cls):
    config = validate_config({})
    built = S.from_section(cls, section(config, SECTIONS[cls]))
    assert fingerprint(S.as_plain(built)) == PINNED_FINGERPRINTS[cls]


def test_the_cam_training_fingerprint_stays_the_same():
    config = validate_config({})
    train = S.from_section(S.CamTrainSettings, config["cam"]["train"])
    recipe = S.from_section(S.OptimizerSettings, config["cam"]["paper_recipe"])
    digest = fingerprint(S.as_plain(train), S.as_plain(recipe), ["aeroplane", "bicycle"], ["2007_000032"])
    assert digest == "3a053b8eaa0daefd"


@pytest.mark.parametrize(("name", "expected"), [("instance", "cfbea36662945d53"), ("semantic", "7f97c74ccf212141")])
def test_final_model_fingerprints_stay_the_same(name, expected):
    cls = {"instance": S.InstanceModelSettings, "semantic": S.SemanticModelSettings}[name]
    settings = S.from_section(cls, validate_config({})["final_models"][name])
    # As the final models' trainings see them: without the prediction settings.
    assert fingerprint({k: v for k, v in S.as_plain(settings).items() if k != "infer"}) == expected


def test_as_plain_converts_results_and_store_attributes():
    import numpy as np
    import torch

    value = {1: (np.int64(2), np.float32(0.5)), "array": np.arange(4).reshape(2, 2), "loss": torch.tensor(0.25)}
    assert S.as_plain(value) == {"1": [2, 0.5], "array": [[0, 1], [2, 3]], "loss": 0.25}
    assert S.as_plain(S.BackboneSettings("resnet18", "none")) == {"arch": "resnet18", "weights": "none"}
    # Result files are strict JSON; fingerprints and attributes keep non-finite floats.
    assert S.as_plain([float("nan"), np.float64(np.inf), 1.0], finite=True) == [None, None, 1.0]
    kept = S.as_plain([float("nan"), np.float32(-np.inf)])
    assert np.isnan(kept[0]) and kept[1] == float("-inf")
