"""Pytest fixtures and helpers for running Snakemake on the real single-node SLURM of slurm_cluster.sh.

Use from a test module or conftest::

    from tests.cluster.fixtures import slurm_cluster, run_snakemake_on_slurm  # noqa: F401

    @pytest.mark.slurm
    def test_x(slurm_cluster, tmp_path):
        proc, job_ids = run_snakemake_on_slurm(tmp_path, snakefile, ["all"])

`slurm_cluster` skips the test where this machine cannot run SLURM (not root, no apt-get, packages not
installable) and fails it where SLURM should run but does not come up.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "tests" / "cluster" / "slurm_cluster.sh"
SLURM_PROFILE = REPO / "profiles" / "slurm"

# slurm_cluster.sh exit status for "this machine cannot run SLURM" (automake's "skipped").
_EX_SKIP = 77
# First start may install packages; apt on a slow mirror takes minutes, not hours.
_START_TIMEOUT_S = 900
_STOP_TIMEOUT_S = 120
# The plugin's own progress line; its number is the id sbatch returned.
_SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")


@dataclass(frozen=True)
class SlurmCluster:
    """The running cluster, as the `slurm_cluster` fixture hands it out."""

    conf: Path
    state_dir: Path
    started_here: bool

    def env(self) -> dict[str, str]:
        """Environment for SLURM client commands here; SLURM_CONF makes them independent of /etc/slurm.

        Inside jobs the harness sees to that itself (the jobstep plugin drops SLURM_CONF there).
        """
        return {**os.environ, "SLURM_CONF": str(self.conf)}


def _harness(command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(HARNESS), command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@functools.cache
def _harness_env() -> dict[str, str]:
    """The harness's `env` lines (`export NAME=value`) as a dict; the script owns the defaults and checks
    the state folder before it answers."""
    proc = _harness("env", timeout=30)
    if proc.returncode != 0:
        pytest.fail(f"slurm_cluster.sh env failed (rc {proc.returncode}): {_tail(proc.stderr, 3)}", pytrace=False)
    pairs = (line.removeprefix("export ").partition("=") for line in proc.stdout.splitlines())
    return {name: value for name, _, value in pairs if value}


def slurm_conf() -> Path:
    """Path of the test cluster's slurm.conf."""
    return Path(_harness_env()["SLURM_CONF"])


def slurm_state_dir() -> Path:
    """The harness's state folder (IRNET_SLURM_DIR, resolved)."""
    return Path(_harness_env()["IRNET_SLURM_DIR"])


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A usable single-node SLURM for the whole test session.

    Starts it through the harness if it is not up, and stops it at the end only in that case, so that a
    cluster a developer started by hand survives the test run.
    """
    if os.environ.get("IRNET_SKIP_SLURM"):
        pytest.skip("IRNET_SKIP_SLURM is set")
    was_up = _harness("status", timeout=60).returncode == 0
    start = _harness("start", timeout=_START_TIMEOUT_S)
    if start.returncode == _EX_SKIP:
        pytest.skip(f"this machine cannot run SLURM: {_tail(start.stderr, 3)}")
    if start.returncode != 0:
        pytest.fail(
            f"slurm_cluster.sh start failed (rc {start.returncode}):\n{_tail(start.stderr)}",
            pytrace=False,
        )
    cluster = SlurmCluster(conf=slurm_conf(), state_dir=slurm_state_dir(), started_here=not was_up)
    yield cluster
    if cluster.started_here:
        stop = _harness("stop", timeout=_STOP_TIMEOUT_S)
        assert stop.returncode == 0, f"slurm_cluster.sh stop failed:\n{_tail(stop.stderr)}"


def scancel(job_ids: Sequence[str]) -> None:
    """Cancel jobs (finished ones are ignored by SLURM), so that a failed test leaves no queue behind."""
    if job_ids:
        subprocess.run(
            ["scancel", *job_ids],
            env={**os.environ, "SLURM_CONF": str(slurm_conf())},
            capture_output=True,
            check=False,
            timeout=60,
        )


def run_snakemake_on_slurm(
    workdir: Path,
    snakefile: Path,
    targets: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    timeout: float = 900,
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run Snakemake in `workdir` with profiles/slurm, so that every job goes through sbatch.

    Needs the `slurm_cluster` fixture to be active. `extra_args` come after the profile and so override
    it (e.g. `["--retries", "0"]`, `["--configfile", "..."]`). Returns the finished process (stdout and
    stderr merged into `.stdout`) and the SLURM job ids, in submission order, that the plugin reported;
    the caller asserts on both. On timeout, Snakemake and its jobs are cancelled and the test fails with
    the output so far.
    """
    cmd = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(snakefile),
        "--profile", str(SLURM_PROFILE),
        *extra_args,
        *targets,
    ]  # fmt: skip
    env = {**os.environ, "SLURM_CONF": str(slurm_conf())}
    # Own session: on timeout the whole tree (snakemake and its sbatch/squeue children) is signalled.
    with subprocess.Popen(
        cmd,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGTERM lets Snakemake scancel its jobs and release its lock; SIGKILL only if it hangs
            # (the squeue-less status hang of snakemake-notes.md needs it).
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                output, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                output, _ = proc.communicate()
            job_ids = _SUBMITTED.findall(output)
            scancel(job_ids)
            pytest.fail(
                f"snakemake on SLURM did not finish within {timeout} s; jobs {job_ids} cancelled.\n{_tail(output, 80)}",
                pytrace=False,
            )
    completed = subprocess.CompletedProcess(cmd, proc.returncode, stdout=output, stderr=None)
    return completed, _SUBMITTED.findall(output)


def slurm_job_record(job_id: str) -> dict[str, str]:
    """`scontrol show job` as a dict (JobState, NumCPUs, MinMemoryNode, TimeLimit, TresPerJob, ...).

    slurmctld keeps finished jobs for MinJobAge (3600 s in the harness), so call it soon after the run.
    Returns {} for an unknown job.
    """
    proc = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", job_id],
        env={**os.environ, "SLURM_CONF": str(slurm_conf())},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        return {}
    # Fields are space-separated KEY=VALUE; no value used here contains a space.
    return dict(field.split("=", 1) for field in proc.stdout.split() if "=" in field)


def slurm_log_files(workdir: Path) -> dict[str, Path]:
    """SLURM's per-job logs of a run, by job id: .snakemake/slurm_logs/rule_<rule>/<wildcards>/<id>.log.

    Only complete with slurm-keep-successful-logs (set in profiles/slurm); the plugin otherwise deletes
    the logs of successful jobs.
    """
    logs = Path(workdir) / ".snakemake" / "slurm_logs"
    return {p.stem: p for p in logs.rglob("*.log") if p.stem.isdigit()}
