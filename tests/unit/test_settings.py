"""Typed settings: built from validated config sections, exact keys, no defaults of their own."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from irnet_core import settings as S
from irnet_core.config import validate_config

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
