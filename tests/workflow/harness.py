"""Run the real workflow in a temporary copy (the snakemake-wrappers test pattern).

The copy holds the workflow files only; `irnet_core` is imported from this checkout (installed in editable
mode). A tiny VOC-layout dataset is generated on disk, so the tests can edit its lists like a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.workflow.dryrun import copy_workflow, job_counts

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def make_workdir(
    path: Path, config_overrides: dict | None = None, *, n_images: int = 16, n_labelled: int = 6, n_val: int = 0
) -> Path:
    """Copy the workflow into ``path``, generate the tiny dataset and write ``tiny.yaml`` (with ``n_val`` > 0 a
    val list too, which adds the final models' stages)."""
    from irnet_core.tools.demo_generator import generate_demo_dataset

    copy_workflow(REPO, path)
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    deep_update(config, config_overrides or {})
    demo = config["demo"]
    generate_demo_dataset(
        path / config["dataset"]["root"],
        n_images=n_images,
        n_labelled=n_labelled,
        seed=demo["seed"],
        min_size=demo["min_size"],
        max_size=demo["max_size"],
        n_val=n_val,
    )
    if n_val:
        config["dataset"]["val_list"] = "ImageSets/Segmentation/val.txt"
    (path / "tiny.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def deep_update(base: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--configfile", "tiny.yaml", "--cores", "2", *args]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log"))[-5:])
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-6000:]}\n{logs}"
        )
    return result


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Dry run; returns {rule: job count} of what Snakemake would run (empty when nothing is to be done)."""
    result = snakemake(workdir, *args, "-n", "--quiet", "rules")
    return job_counts(result.stdout + result.stderr)
