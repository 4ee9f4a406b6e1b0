"""Config schema: the shipped configs validate, defaults are filled, bad values fail with one line naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from irnet_core.config import coerce_types, fingerprint, load_schema, validate_config
from irnet_core.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "configs/demo.yaml", "configs/voc12.yaml", "tests/configs/tiny.yaml"])
def test_shipped_configs_validate(name):
    config = validate_config(load(name))
    assert config["random_walk"]["exp_times"] >= 0 and config["compute"]["shards"] >= 1


def test_the_mobilenet_layer_changes_only_the_backbone_and_cam_lr_of_the_demo():
    from tests.workflow.harness import deep_update

    demo = validate_config(load("configs/demo.yaml"))
    layered = validate_config(deep_update(load("configs/demo.yaml"), load("configs/mobilenet_v2.yaml")))
    assert layered["backbone"] == {"arch": "mobilenet_v2", "weights": "imagenet"}
    assert layered["cam"]["paper_recipe"]["lr"] == 0.01
    demo["backbone"], demo["cam"]["paper_recipe"]["lr"] = layered["backbone"], 0.01
    assert layered == demo


def test_the_top_level_config_sets_nothing():
    # Snakemake always loads config.yaml under every other layer: anything in it would leak into every run.
    assert load("config.yaml") == {}


def test_every_key_has_a_documented_default_the_papers():
    config = validate_config({})
    assert config["dataset"]["root"] == "data/VOCdevkit/VOC2012" and config["dataset"]["format"] == "voc"
    assert config["dataset"]["classes"] is None  # the format's own: the 20 VOC classes
    assert config["backbone"] == {"arch": "resnet50", "weights": "imagenet"}
    assert config["cam"]["train"]["epochs"] == 5 and config["cam"]["train"]["crop_size"] == 512
    assert (
        config["cam"]["paper_recipe"]["optimizer"] == "sgd" and config["cam"]["scratch_recipe"]["optimizer"] == "adamw"
    )
    # Thresholds default to auto (calibrated, or label-free rules); the paper's numbers are in configs/voc12.yaml.
    assert (config["relations"]["conf_fg"], config["relations"]["conf_bg"]) == ("auto", "auto")
    assert config["random_walk"] == {
        "beta": 10,
        "exp_times": 8,
        "radius": 5,
        "sem_bg_threshold": "auto",
        "cam_veto": True,
    }
    paper = validate_config(load("configs/voc12.yaml"))
    assert (paper["relations"]["conf_fg"], paper["relations"]["conf_bg"]) == (0.30, 0.05)
    assert paper["random_walk"]["sem_bg_threshold"] == paper["instances"]["bg_threshold"] == 0.25
    assert paper["random_walk"]["cam_veto"] is False  # the paper's walk; the veto goes beyond it
    assert config["irnet"]["train"]["crop_size"] == 512 and config["compute"]["device"] == "auto"
    assert config["relations"]["crf"]["bilateral_srgb"] == 5


def test_a_partial_recipe_keeps_its_own_recipes_defaults():
    config = validate_config({"cam": {"scratch_recipe": {"lr": 0.01}}})
    assert config["cam"]["scratch_recipe"] == validate_config({})["cam"]["scratch_recipe"] | {"lr": 0.01}


def test_the_demo_layer_only_adds_to_the_defaults():
    demo = validate_config(load("configs/demo.yaml"))
    assert demo["cam"]["train"]["crop_size"] == 128 and demo["backbone"]["arch"] == "resnet18"
    assert validate_config({"dataset": load("configs/demo.yaml")["dataset"]})["cam"]["train"]["crop_size"] == 512


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("cam", "train", "epochs"), "x", "config key cam.train.epochs: 'x' is not of type 'integer'"),
        (("relations", "conf_fg"), 1.5, "config key relations.conf_fg: 1.5 is neither auto nor a number in [0, 1]"),
        (("backbone", "arch"), "vgg16", "config key backbone.arch: 'vgg16' is not one of"),
        (("compute", "device"), "tpu", "config key compute.device: 'tpu' does not match"),
        (("random_walk", "beta"), 0, "config key random_walk.beta: 0 is less than or equal to the minimum of 0"),
        (("irnet", "train", "crop_size"), 100, "config key irnet.train.crop_size: 100 is not a multiple of 16"),
    ],
)
def test_bad_values_are_rejected_with_the_key(path, value, message):
    config = load("configs/demo.yaml")
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(InputError) as info:
        validate_config(config)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_unknown_keys_are_rejected():
    config = load("configs/demo.yaml")
    config["relations"]["conf_fgg"] = 0.3
    with pytest.raises(InputError, match=r"config key relations: .*'conf_fgg' was unexpected"):
        validate_config(config)


def test_cross_key_rules():
    config = load("configs/demo.yaml")
    config["relations"].update(conf_fg=0.2, conf_bg=0.3)
    with pytest.raises(InputError, match="relations.conf_bg"):
        validate_config(config)


def test_command_line_strings_are_coerced_to_schema_types():
    schema = load_schema()
    config = load("configs/demo.yaml")
    # What Snakemake's --config makes of random_walk='{beta: 8}' and cam='{infer: {scales: [1, 0.5]}}'.
    config["random_walk"] = copy.deepcopy(config["random_walk"]) | {"beta": "8", "sem_bg_threshold": "0.3"}
    config["cam"]["infer"]["scales"] = ["1", "0.5"]
    coerced = coerce_types(config, schema)
    assert coerced["random_walk"]["beta"] == 8 and isinstance(coerced["random_walk"]["beta"], int)
    assert coerced["random_walk"]["sem_bg_threshold"] == 0.3
    assert coerced["cam"]["infer"]["scales"] == [1, 0.5]
    whole = validate_config({**load("configs/demo.yaml"), "random_walk": "{beta: 8}"})
    assert whole["random_walk"]["beta"] == 8 and whole["random_walk"]["exp_times"] == 8


def test_fingerprint_ignores_key_order_but_not_values():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1, "b": 2}) != fingerprint({"a": 2, "b": 1})
