"""The one tiny real run that the workflow tests share (session scope: it is the expensive part).

Tests that only read the run use `tiny_run` directly; tests that edit lists, settings or files work on a copy
(`shutil.copytree(tiny_run, ...)`), so that the shared run stays as it was built.

Under pytest-xdist (`make test` runs two workers) every worker asks for it; the first one builds it in the
directory that the workers' temporary folders share, the others wait on a file lock and reuse it.
"""

from __future__ import annotations

import fcntl

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
    workdir, done = shared / "tiny", shared / "tiny.done"
    with open(shared / "tiny.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _build(workdir)
            done.touch()
    return workdir
