"""The schema's defaults as the library's typed settings, for tests that call library functions directly: the
library itself has no defaults (irnet_core/config.schema.yaml is the one place that knows them)."""

from __future__ import annotations

import dataclasses

from irnet_core.config import validate_config
from irnet_core.settings import InstanceSettings, WalkSettings, from_section

_DEFAULTS = validate_config({})
_WALK_KEYS = {field.name for field in dataclasses.fields(WalkSettings)}

# random_walk: beta 10, exp_times 8, radius 5 (the paper's).
WALK = from_section(WalkSettings, {k: v for k, v in _DEFAULTS["random_walk"].items() if k in _WALK_KEYS})
# instances, with the paper's instance threshold 0.25 in place of `auto`.
INSTANCES = from_section(InstanceSettings, {**_DEFAULTS["instances"], "bg_threshold": 0.25})
CENTROID_ITERATIONS = INSTANCES.centroid_iterations
WEAK_THRESHOLD = INSTANCES.weak_threshold


def walk(**changes) -> WalkSettings:
    """The default walk with some settings changed (e.g. fewer steps for a small test image)."""
    return dataclasses.replace(WALK, **changes)


def instances(**changes) -> InstanceSettings:
    return dataclasses.replace(INSTANCES, **changes)
