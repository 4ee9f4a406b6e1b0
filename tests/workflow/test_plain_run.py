"""The workflow as users type it: a plain `snakemake --cores 2 --configfile tiny.yaml`, no profile, no extra flag.

- Settings: the plain run gets the workflow profile (profiles/default: rerun-incomplete, show-failed-logs, the
  workstation's GPU pool); `--profile profiles/slurm` keeps its own executor, jobs, keep-going and resources (a
  site's GPU pool included), `--profile profiles/local` its GPU pool, and `--workflow-profile none` turns the
  workflow profile off. Read from Snakemake's own argument parsing, and from a real dry run through the SLURM profile.
- Crashes: the plain command killed with SIGKILL twice (Snakemake and every job, like a power loss; once while
  train_cam is between epochs, once at a random moment) and interrupted with Ctrl-C once at a random moment, then
  `--unlock` where Snakemake asks for it and the same plain command: it finishes, train_cam resumes from its
  checkpoint, and every product equals the uninterrupted tiny run's (the `tiny_run` fixture, built by the same
  plain command).
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.workflow.harness import SNAKEMAKE, make_workdir
from tests.workflow.outputs import snapshot
from tests.workflow.processes import ENV, RUN_TIMEOUT_S, Snakemake, checkpoint_epoch

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.workflow]

PLAIN = ["--configfile", "tiny.yaml", "--cores", "2"]
EVAL_FILES = ("cam_untrained.json", "cam.json", "semantic.json", "instances.json", "calibration.json")

# Snakemake's own command-line parsing (profiles included), run where a user runs Snakemake; prints the settings
# that the profiles decide.
PARSE = """
import json, sys
from snakemake.cli import parse_args

_, args = parse_args(sys.argv[1:])
value = lambda r: getattr(r, "value", r)
print(json.dumps({
    "executor": args.executor,
    "jobs": args.jobs,
    "keep_going": args.keep_going,
    "rerun_incomplete": args.rerun_incomplete,
    "show_failed_logs": args.show_failed_logs,
    "resources": {k: value(v) for k, v in (args.resources or {}).items()},
    "default_resources": sorted(args.default_resources or {}),
}))
"""


def effective_settings(workdir: Path, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PARSE, *args], cwd=workdir, capture_output=True, text=True, env=ENV, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory) -> Path:
    """The workflow with the tiny dataset and tiny.yaml, nothing run."""
    return make_workdir(tmp_path_factory.mktemp("workflow"))


def test_plain_run_gets_the_workflow_profile(workflow_copy):
    settings = effective_settings(workflow_copy, *PLAIN)
    assert settings["executor"] is None  # jobs run here
    assert settings["rerun_incomplete"] and settings["show_failed_logs"]
    assert settings["resources"] == {"gpu": 1}  # two CUDA jobs never share one GPU
    assert settings["keep_going"] is False


def test_command_line_overrides_the_workstation_gpu_pool(workflow_copy):
    assert effective_settings(workflow_copy, *PLAIN, "--resources", "gpu=2")["resources"] == {"gpu": 2}


def test_workflow_profile_none_turns_it_off(workflow_copy):
    settings = effective_settings(workflow_copy, *PLAIN, "--workflow-profile", "none")
    assert not settings["rerun_incomplete"] and not settings["show_failed_logs"]
    assert settings["resources"] == {}


def test_slurm_profile_keeps_its_own_settings(workflow_copy):
    settings = effective_settings(workflow_copy, "--configfile", "tiny.yaml", "--profile", "profiles/slurm")
    assert settings["executor"] == "slurm"
    assert settings["jobs"] == 100
    assert settings["keep_going"] is True
    # No workstation GPU pool: on a cluster it would cap the run at one GPU job and make compute.device auto
    # request GPUs that nobody declared.
    assert settings["resources"] == {}
    assert {"slurm_partition", "runtime", "mem_mb"} <= set(settings["default_resources"])
    # What is right on every machine still comes from the workflow profile.
    assert settings["rerun_incomplete"] and settings["show_failed_logs"]


def test_a_sites_gpu_pool_in_the_slurm_profile_is_kept(workflow_copy, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(workflow_copy / "profiles/slurm", site)
    with open(site / "config.yaml", "a") as profile:
        profile.write("\nresources:\n  gpu: 8\n")
    for flag in (["--profile", str(site)], [f"--profile={site}"]):
        settings = effective_settings(workflow_copy, "--configfile", "tiny.yaml", *flag)
        assert settings["resources"] == {"gpu": 8}, flag
        assert settings["executor"] == "slurm"


def test_local_profile_keeps_its_gpu_pool(workflow_copy):
    settings = effective_settings(workflow_copy, "--configfile", "tiny.yaml", "--profile", "profiles/local")
    assert settings["resources"] == {"gpu": 1}
    assert settings["executor"] is None and settings["rerun_incomplete"]


def test_slurm_dry_run_shows_the_slurm_settings(workflow_copy):
    """What a user sees: every planned job carries the SLURM profile's partition; the plain run's none."""

    def dry_run(*args: str) -> str:
        result = subprocess.run(
            [*SNAKEMAKE, "-n", "--configfile", "tiny.yaml", *args, "--config", "compute={device: cpu}"],
            cwd=workflow_copy,
            capture_output=True,
            text=True,
            env=ENV,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout + result.stderr

    slurm = dry_run("--profile", "profiles/slurm")
    assert "Using profiles profiles/slurm and workflow specific profile profiles/default" in slurm
    resources = [line for line in slurm.splitlines() if line.strip().startswith("resources:")]
    assert len(resources) > 10 and all("slurm_partition=debug" in line for line in resources)

    plain = dry_run("--cores", "2")
    assert "Using workflow specific profile profiles/default" in plain
    assert "slurm_partition" not in plain


# ---- crashes: SIGKILL twice, Ctrl-C once, then the same plain command -------------------------------------------


@dataclass
class Interrupted:
    workdir: Path
    seed: int
    events: list[str] = field(default_factory=list)
    asked_to_unlock: list[bool] = field(default_factory=list)
    cam_killed_after_epoch: int = -1
    final_output: str = ""


def _start(workdir: Path, name: str, seen: Interrupted) -> Snakemake:
    """The plain command; where Snakemake refuses because a crashed run left its lock, `--unlock` as it asks."""
    run = Snakemake(workdir, *PLAIN, name=name)
    run.wait_until(lambda: run.proc.poll() is not None or "jobid:" in run.output(), f"{name}: the first job")
    asked = run.proc.poll() not in (None, 0) and "--unlock" in run.output()
    seen.asked_to_unlock.append(asked)
    if asked:
        unlock = subprocess.run(
            [*SNAKEMAKE, *PLAIN, "--unlock"], cwd=workdir, capture_output=True, text=True, env=ENV, timeout=120
        )
        assert unlock.returncode == 0, unlock.stderr[-3000:]
        run = Snakemake(workdir, *PLAIN, name=f"{name}-after-unlock")
    return run


def _at_a_random_moment(run: Snakemake, rng: random.Random, seen: Interrupted) -> None:
    """Wait for 1 to 5 more finished jobs and up to 1.5 s more: a moment inside the run on any machine."""
    jobs, delay = rng.randint(1, 5), rng.uniform(0.0, 1.5)
    seen.events.append(f"after {jobs} finished jobs + {delay:.2f} s")
    run.wait_until(lambda: run.finished_jobs() >= jobs, f"{jobs} finished jobs (seed {seen.seed})")
    time.sleep(delay)
    assert run.proc.poll() is None, f"the run ended before the random moment (seed {seen.seed})"


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Interrupted:
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    seen = Interrupted(make_workdir(tmp_path_factory.mktemp("plain")), seed)
    workdir = seen.workdir
    checkpoint = workdir / "results/checkpoints/train_cam/last.pt"

    # 1. SIGKILL of everything while train_cam is between epochs, so that the rerun has a checkpoint to resume.
    run = Snakemake(workdir, *PLAIN, name="1")
    [script] = run.wait_until(lambda: checkpoint.exists() and run.scripts("train_cam"), "the first CAM checkpoint")
    script.send_signal(signal.SIGSTOP)  # hold it where it is while the checkpoint is read
    seen.cam_killed_after_epoch = checkpoint_epoch(workdir, "train_cam")
    run.kill_all()
    seen.events.append(f"SIGKILL in train_cam after epoch {seen.cam_killed_after_epoch}")

    # 2. The same command; SIGKILL of everything at a random moment.
    run = _start(workdir, "2", seen)
    _at_a_random_moment(run, rng, seen)
    run.kill_all()

    # 3. The same command; Ctrl-C at a random moment, and Snakemake ends by itself.
    run = _start(workdir, "3", seen)
    _at_a_random_moment(run, rng, seen)
    run.interrupt()
    assert run.finish(timeout=180) != 0

    # 4. The same command, to the end.
    run = _start(workdir, "4", seen)
    assert run.finish(timeout=RUN_TIMEOUT_S) == 0, f"seed {seed}, {seen.events}:\n{run.output()[-5000:]}"
    seen.final_output = run.output()
    return seen


@pytest.mark.slow
def test_snakemake_asks_for_unlock_after_a_kill_only(interrupted):
    # After each SIGKILL the lock stays and Snakemake says to run --unlock; after Ctrl-C it cleans up by itself.
    assert interrupted.asked_to_unlock == [True, True, False], (interrupted.seed, interrupted.events)


@pytest.mark.slow
def test_training_resumed_from_its_checkpoint(interrupted):
    assert interrupted.cam_killed_after_epoch == 0
    log = (interrupted.workdir / "logs/train_cam/train_cam.log").read_text()
    assert "resuming from results/checkpoints/train_cam/last.pt after epoch" in log, (interrupted.seed, log[-2000:])
    assert not (interrupted.workdir / "results/checkpoints/train_cam/last.pt").exists()  # finished: cleared


@pytest.mark.slow
def test_outputs_equal_an_uninterrupted_run(interrupted, tiny_run):
    run, reference = interrupted.workdir, tiny_run
    context = f"seed {interrupted.seed}, {interrupted.events}"
    for name in EVAL_FILES:
        assert (run / "results/eval" / name).read_bytes() == (reference / "results/eval" / name).read_bytes(), (
            name,
            context,
        )
    before, after = snapshot(reference), snapshot(run)
    assert [k for k in before if before[k] != after[k]] == [], context
    summary = [json.loads((d / "results/summary.json").read_text()) for d in (run, reference)]
    for data in summary:
        data.pop("timings", None)
    assert summary[0] == summary[1], context
