"""Configuration: schema validation with defaults, and type coercion of command-line overrides.

The schema (`irnet_core/config.schema.yaml`) is the user contract. :func:`validate_config` fills its defaults,
turns strings from ``--config`` (Snakemake parses nested values with YAML's BaseLoader, so ``beta: 8`` arrives
as ``"8"``) into the schema's types, and reports the first problem as one line naming the key.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from .atomic import atomic_write_text
from .errors import InputError

# Package data: found beside this module in a checkout and in an installed wheel alike.
SCHEMA_PATH = Path(__file__).resolve().parent / "config.schema.yaml"


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def _filling_validator(root: dict):
    """A validator of ``root`` that writes each property's `default` into the instance before descending into it
    (a default may also sit on the target of a property's `$ref`)."""
    validate_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                subschema = _resolve(root, subschema)
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(Draft202012Validator, {"properties": set_defaults})(root)


def _resolve(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    if ref and ref.startswith("#/"):
        target: Any = schema
        for part in ref[2:].split("/"):
            target = target[part]
        merged = dict(target)
        merged.update({k: v for k, v in node.items() if k != "$ref"})
        return merged
    return node


def _coerce_scalar(value: Any, types: set[str]) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if "boolean" in types and text.lower() in {"true", "false"}:
        return text.lower() == "true"
    if types & {"integer", "number"}:
        # An integer literal stays an int even for `number`, so `beta: 10` on the command line equals the
        # file's `beta: 10` (params are compared by repr: 10.0 would look like a change and rerun stages).
        try:
            return int(text)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(text)
        except ValueError:
            pass
    if "null" in types and text.lower() in {"null", "none", "~"}:
        return None
    return value


def _types(schema: dict, node: dict) -> set[str]:
    """The JSON types a node allows, its alternatives' (anyOf, e.g. `auto` or a number) included."""
    kind = node.get("type")
    types = set(kind) if isinstance(kind, list) else {kind} if kind else set()
    for alternative in node.get("anyOf", []):
        types |= _types(schema, _resolve(schema, alternative))
    return types


def coerce_types(config: Any, schema: dict, node: dict | None = None) -> Any:
    """Convert strings to the schema's numeric/boolean types, recursively (a copy is returned)."""
    node = _resolve(schema, schema if node is None else node)
    types = _types(schema, node)
    if isinstance(config, str) and types & {"object", "array"}:
        # A whole section given on the command line as a YAML string.
        try:
            parsed = yaml.safe_load(config)
        except yaml.YAMLError:
            return config
        if isinstance(parsed, (dict, list)):
            config = parsed
    if isinstance(config, dict) and "properties" in node:
        return {
            key: coerce_types(value, schema, node["properties"][key]) if key in node["properties"] else value
            for key, value in config.items()
        }
    if isinstance(config, list) and "items" in node:
        return [coerce_types(item, schema, node["items"]) for item in config]
    return _coerce_scalar(config, types)


def validate_config(config: Mapping, schema: dict | None = None) -> dict:
    """Return a validated copy of ``config`` with defaults filled and string overrides coerced.

    Raises :class:`InputError` naming the first offending key (``config key a.b.c: <problem>``).
    """
    schema = load_schema() if schema is None else schema
    result = coerce_types(copy.deepcopy(dict(config)), schema)
    validator = _filling_validator(schema)
    errors = sorted(
        validator.iter_errors(result), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path)))
    )
    if errors:
        error = errors[0]
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        message = error.message.replace("\n", " ")
        if error.validator == "anyOf" and {"const": "auto"} in error.validator_value:
            message = f"{error.instance!r} is neither auto nor a number in [0, 1]"
        if len(message) > 200:
            message = message[:200] + "..."
        raise InputError(f"config key {key}", message)
    _check_consistency(result)
    return result


def _check_consistency(config: dict) -> None:
    """Cross-key rules that a JSON schema cannot express."""
    demo = config.get("demo", {})
    if demo and demo.get("min_size", 0) > demo.get("max_size", 0):
        raise InputError("config key demo.min_size", "must not exceed demo.max_size")
    if demo and demo.get("n_labelled", 0) > demo.get("n_images", 0):
        raise InputError("config key demo.n_labelled", "must not exceed demo.n_images")
    relations = config.get("relations", {})
    fixed = [relations.get(key) for key in ("conf_bg", "conf_fg")]
    if all(isinstance(value, (int, float)) for value in fixed) and fixed[0] > fixed[1]:
        raise InputError("config key relations.conf_bg", "must not exceed relations.conf_fg")
    for key in ("cam.train.resize_long", "irnet.train.scale_range"):
        section, sub, leaf = key.split(".")
        lo, hi = config[section][sub][leaf]
        if lo > hi:
            raise InputError(f"config key {key}", f"lower bound {lo} exceeds upper bound {hi}")


EFFECTIVE_CONFIG_HEADER = (
    "# The validated configuration of the last Snakemake invocation (dry runs included): every layer applied,\n"
    "# every default filled. Written for reading; editing it changes nothing.\n"
)


def effective_config_text(config: Mapping) -> str:
    return EFFECTIVE_CONFIG_HEADER + yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=None)


def write_effective_config(config: Mapping, path: str | Path) -> None:
    """Write the effective configuration as YAML, atomically and only when it differs from what is there
    (cluster jobs re-read the Snakefile and would otherwise all rewrite it)."""
    path = Path(path)
    text = effective_config_text(config)
    if path.is_file() and path.read_text() == text:
        return
    atomic_write_text(path, text)


def fingerprint(*parts: Any) -> str:
    """A short, order-insensitive digest of JSON-able values (used to match checkpoints to settings)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
