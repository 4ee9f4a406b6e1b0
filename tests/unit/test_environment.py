"""environment.yml (the rules' conda environment) holds the runtime dependencies of pyproject.toml and nothing that
only works from the checkout: Snakemake builds it from a copy under .snakemake/conda/."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parents[2]
# Conda's names for the packages that PyPI names otherwise.
CONDA_NAMES = {"torch": "pytorch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ]", requirement, maxsplit=1)[0].strip().lower()


def test_the_conda_environment_has_the_runtime_dependencies_only():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    runtime = {CONDA_NAMES.get(_name(r), _name(r)) for r in pyproject["project"]["dependencies"]}
    entries = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    conda = {_name(e) for e in entries if isinstance(e, str)} - {"python", "pip"}
    pip_entries = [p for e in entries if isinstance(e, dict) for p in e["pip"]]
    pip = {_name(p) for p in pip_entries}
    assert conda | pip == runtime
    assert not conda & pip
    # No editable install: in Snakemake's copy of this file `.` is .snakemake/conda/, not the checkout.
    assert not any(p.startswith("-e") or p.strip() == "." for p in pip_entries)
