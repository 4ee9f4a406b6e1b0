"""The one tiny real run that the workflow tests share (session scope: it is the expensive part).

Tests that only read the run use `tiny_run` directly; tests that edit lists, settings or files work on a copy
(`shutil.copytree(tiny_run, ...)`), so that the shared run stays as it was built.
"""

from __future__ import annotations

import pytest

from tests.workflow.harness import make_workdir, snakemake


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("tiny"))
    snakemake(workdir)
    return workdir
