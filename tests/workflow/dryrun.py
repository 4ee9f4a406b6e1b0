"""Driving the workflow from outside (tests, benchmarks): copying it, and reading the plan of a dry run.

Snakemake-specific on purpose, so it lives with the tests, not in `irnet_core`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path


def job_counts(dry_run_output: str) -> dict[str, int]:
    """{rule: jobs} from the 'job count' table of `snakemake -n`; {} when there is nothing to be done."""
    counts: dict[str, int] = {}
    in_table = False
    for line in dry_run_output.splitlines():
        if re.match(r"^job\s+count", line):
            in_table = True
            continue
        if in_table:
            match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if match and match.group(1) != "total":
                counts[match.group(1)] = int(match.group(2))
            elif line.strip().startswith("total"):
                break
    return counts


# What a copy of the workflow needs besides `irnet_core` (imported from the checkout).
WORKFLOW_FILES = (
    "Snakefile", "rules", "workflow_scripts", "config.yaml", "configs", "report", "environment.yml", "profiles",
)  # fmt: skip


def copy_workflow(source: Path, destination: Path, names: tuple[str, ...] = WORKFLOW_FILES) -> None:
    """Copy the named workflow files and folders of a checkout into ``destination`` (missing names are skipped)."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in names:
        item = source / name
        if item.is_dir():
            shutil.copytree(item, destination / name, dirs_exist_ok=True)
        elif item.exists():
            shutil.copy2(item, destination / name)
