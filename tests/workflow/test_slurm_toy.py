"""Self-test of the SLURM harness and profiles/slurm: a toy workflow through a real sbatch.

Proves three things: every job went through sbatch (SLURM's own records, its per-job logs, and the job
id each rule saw inside its allocation all agree), the profile maps `threads`/`mem_mb`/`runtime`/`gpu`
onto the right sbatch options, and the results equal a local run's. A second test checks that SLURM
commands inside a job use the test cluster's configuration even without SLURM_CONF, as the Snakemake
jobstep plugin runs them, whatever /etc/slurm/slurm.conf holds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cluster.fixtures import (
    run_snakemake_on_slurm,
    slurm_cluster,  # noqa: F401  (fixture, used by name)
    slurm_job_record,
    slurm_log_files,
)

REPO = Path(__file__).resolve().parents[2]

TOY = REPO / "tests" / "cluster" / "toy"
LOCAL_PROFILE = REPO / "profiles" / "local"
# Rule and wildcards of each SLURM job, as the plugin writes them into sbatch --comment.
EXPECTED_JOBS = {
    "rule_make_input_wildcards_a",
    "rule_make_input_wildcards_b",
    "rule_square_wildcards_a",
    "rule_square_wildcards_b",
    "rule_gpu_probe",
    "rule_summarize",
}
RULE_LOGS = [
    "logs/make_input/a.log",
    "logs/make_input/b.log",
    "logs/square/a.log",
    "logs/square/b.log",
    "logs/gpu_probe.log",
    "logs/summarize.log",
]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _probe(log: Path) -> dict[str, str]:
    """The KEY=VALUE line that the toy's ENV_PROBE writes into each rule log."""
    return dict(field.split("=", 1) for field in log.read_text().split() if "=" in field)


@pytest.mark.slurm
@pytest.mark.workflow
def test_toy_workflow_runs_through_sbatch(slurm_cluster, tmp_path):  # noqa: F811
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    shutil.copytree(TOY, on_slurm)
    shutil.copytree(TOY, local)

    # Status checks every 10 s instead of the profile's 20 (growing by 10 s per round in which no job
    # finished): the toy's jobs take 5-16 s per DAG layer, so each layer is seen done one round
    # earlier. Still squeue (MinJobAge 3600 >= 3 x 10). No retries: a retry would hide a job that
    # failed once.
    proc, job_ids = run_snakemake_on_slurm(
        on_slurm,
        on_slurm / "Snakefile",
        ["all"],
        extra_args=["--slurm-init-seconds-before-status-checks", "10", "--retries", "0"],
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-8000:]
    # Rule `all` has no shell and runs locally; the six others are one sbatch each.
    assert len(job_ids) == len(set(job_ids)) == len(EXPECTED_JOBS), proc.stdout[-8000:]

    # SLURM's view (kept for MinJobAge = 3600 s after the end of each job).
    records = {job_id: slurm_job_record(job_id) for job_id in job_ids}
    assert {r.get("JobState") for r in records.values()} == {"COMPLETED"}, records
    by_job = {r["Comment"]: r for r in records.values()}
    assert set(by_job) == EXPECTED_JOBS
    for record in records.values():
        assert record["JobName"].startswith("irnet_")  # slurm-jobname-prefix of the profile
        assert record["Partition"] == "debug"  # default-resources slurm_partition
    for sample in ("a", "b"):
        square = by_job[f"rule_square_wildcards_{sample}"]
        # threads: 2 -> --cpus-per-task=2 (a cpus_per_task default would have made it 1).
        assert (square["NumCPUs"], square["MinMemoryNode"], square["TimeLimit"]) == ("2", "300M", "00:05:00")
    assert by_job["rule_gpu_probe"].get("TresPerJob") == "gres:gpu:1"  # resources gpu=1 -> --gpus=1

    # One SLURM log per job id (slurm-keep-successful-logs in the profile).
    assert set(slurm_log_files(on_slurm)) == set(job_ids)

    # Each rule ran inside one of these allocations and saw what it asked for.
    probes = {name: _probe(on_slurm / name) for name in RULE_LOGS}
    assert {p["SLURM_JOB_ID"] for p in probes.values()} == set(job_ids), probes
    assert probes["logs/square/a.log"]["SLURM_CPUS_PER_TASK"] == "2"
    if (slurm_cluster.state_dir / "dev" / "fakegpu0").is_char_device():
        # Only a device-file GPU is handed out through CUDA_VISIBLE_DEVICES (see slurm_cluster.sh).
        assert probes["logs/gpu_probe.log"]["CUDA_VISIBLE_DEVICES"] == "0"

    # Same results as a local run with the local profile.
    local_run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", str(LOCAL_PROFILE), "--cores", "2", "all"],
        cwd=local,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert local_run.returncode == 0, local_run.stderr[-8000:]
    assert _files(on_slurm / "results") == _files(local / "results")
    assert len(_files(local / "results")) == 6


# The batch script of test_job_commands_use_the_test_cluster_config. The variable filter is the one the
# Snakemake jobstep plugin (0.6) applies to the environment of the srun that runs each rule.
STRIPPED_JOB = textwrap.dedent(
    """\
    #!/bin/bash
    for var in $(compgen -e); do
        case $var in
            SLURM_JOB_ID | SLURM_JOBID | SLURM_CLUSTER_NAME | SLURM_SUBMIT_DIR | SLURM_SUBMIT_HOST) ;;
            SLURM_ARRAY_*) ;;
            SLURM_* | SRUN_* | SBATCH_*) unset "$var" ;;
        esac
    done
    echo "SLURM_CONF=${SLURM_CONF:-unset}"
    # What a client without SLURM_CONF reads (the default file, as this job sees it), and which srun runs.
    echo "default_conf=$(cksum < /etc/slurm/slurm.conf 2>/dev/null || echo missing)"
    echo "srun=$(command -v srun)"
    srun -n1 --nodes=1 --gpus=1 sh -c 'echo step CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-none}'
    echo "srun exit status $?"
    """
)


@pytest.mark.slurm
def test_job_commands_use_the_test_cluster_config(slurm_cluster, tmp_path):  # noqa: F811
    """Inside a job, srun without SLURM_CONF (as the jobstep plugin runs it) falls back to
    /etc/slurm/slurm.conf; on a machine with a site's file there, the rule's srun failed with "Invalid generic
    resource (gres) specification". The harness makes that default file the test cluster's for its jobs
    (namespace isolation) or puts an srun that sets SLURM_CONF first in their PATH (path isolation)."""
    script = tmp_path / "job.sh"
    script.write_text(STRIPPED_JOB)
    output = tmp_path / "job.out"
    submit = subprocess.run(
        ["sbatch", "--wait", "--parsable", "--export=ALL", "--gpus=1", "--time=2", "--mem=100",
         f"--output={output}", str(script)],
        cwd=tmp_path,
        env=slurm_cluster.env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    text = output.read_text() if output.exists() else ""
    assert submit.returncode == 0, (submit.stderr, text)
    seen = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and " " not in line.split("=")[0])
    assert seen["SLURM_CONF"] == "unset", text  # the filter worked: the fallback is what is tested
    ours = subprocess.run(["cksum"], input=slurm_cluster.conf.read_bytes(), capture_output=True, check=True).stdout
    # The client's config, by Slurm's rule: the default file if SLURM_CONF is unset, unless srun is our wrapper.
    assert seen["default_conf"] == ours.decode().strip() or seen["srun"] == str(
        slurm_cluster.state_dir / "bin" / "srun"
    ), text
    # And what failed on that machine: srun's --gpus checked against its configuration's GresTypes.
    assert "srun exit status 0" in text, text
    if (slurm_cluster.state_dir / "dev" / "fakegpu0").is_char_device():
        assert "step CUDA_VISIBLE_DEVICES=0" in text, text
