"""The one tiny real run that the workflow tests share (session scope: it is the expensive part).

Tests that only read the run use `tiny_run` directly; tests that edit lists, settings or files work on a copy
(`shutil.copytree(tiny_run, ...)`), so that the shared run stays as it was built.

Under pytest-xdist (`make test` runs two workers) the first worker to ask builds it in the directory that the
workers' temporary folders share, under a file lock; every worker then works on its own copy, so that one
worker's dry runs (which write Snakemake's logs) never race another's copying.
"""

from __future__ import annotations

import fcntl
import shutil

import pytest

from tests.workflow.harness import make_workdir, snakemake


def _build(path):
    workdir = make_workdir(path)
    snakemake(workdir)
    return workdir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, worker_id):
    if worker_id == "master":  # not under xdist
        return _build(tmp_path_factory.mktemp("tiny"))
    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, above every worker's own
    built, done = shared / "tiny", shared / "tiny.done"
    with open(shared / "tiny.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _build(built)
            done.touch()
        workdir = tmp_path_factory.mktemp("tiny") / "run"
        shutil.copytree(built, workdir, symlinks=True)
    return workdir
