"""GPU requests come from the configuration, not from the host that builds the plan.

Dry runs through profiles/slurm on this machine (which has no GPU): with `compute.device: cuda` every rule that
uses CUDA requests one GPU; with `cpu` none does; with the shipped `auto` the run either requests the GPUs the
run declares or stops with one line naming compute.device. The rules that use CUDA are read from the workflow
scripts (those that resolve a torch device), so a new CUDA rule without a GPU declaration fails here.
"""

from __future__ import annotations

import re

import pytest

from tests.workflow.harness import REPO, make_workdir, snakemake

pytestmark = pytest.mark.workflow


def cuda_rules() -> set[str]:
    """Rules whose script resolves a torch device (a workflow script calling compute_device; the val list runs
    through the shard rules, as their `val` part)."""
    # compute_device itself, or the job adapters of the trainings and predictions that call it.
    resolves_device = re.compile(
        r"\b(compute_device|training_job|final_model_training|final_model_prediction)\(snakemake"
    )
    cuda_scripts = {
        path.name for path in (REPO / "workflow_scripts").glob("*.py") if resolves_device.search(path.read_text())
    }
    rules = set()
    for smk in (REPO / "rules").glob("*.smk"):
        for rule, body in re.findall(r"^\s*rule (\w+):(.*?)(?=^\s*rule \w+:|\Z)", smk.read_text(), re.S | re.M):
            script = re.search(r'script:\s*"\.\./workflow_scripts/([\w.]+)"', body)
            if script and script.group(1) in cuda_scripts:
                rules.add(rule)
    return rules


def planned_gpus(workdir, *args) -> dict[str, set[int]]:
    """{rule: the gpu counts its planned jobs request} from a forced dry run through the SLURM profile."""
    result = snakemake(workdir, "-n", "-F", "--profile", str(REPO / "profiles/slurm"), *args, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    plan: dict[str, set[int]] = {}
    rule = None
    for line in (result.stdout + result.stderr).splitlines():
        if match := re.match(r"^rule (\w+):", line):
            rule = match.group(1)
            plan.setdefault(rule, set())
        elif rule and line.strip().startswith("resources:"):
            gpu = re.search(r"\bgpu=(\d+)", line)
            plan[rule].add(int(gpu.group(1)) if gpu else 0)
    return plan


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("gpu"), n_images=4, n_labelled=2, n_val=2)  # final stages too


def test_the_scripts_name_the_cuda_rules():
    assert {"train_cam", "infer_cam", "evaluate_cam_untrained", "train_irnet", "infer_irnet"} <= cuda_rules()
    assert {"train_instance_model", "train_semantic_model", "predict_semantic"} <= cuda_rules()
    assert "mine_relations" not in cuda_rules()  # the dense CRF runs on the CPU


def test_cuda_requests_a_gpu_for_every_rule_that_uses_it_and_cpu_none(workdir):
    # One self-training round, so that its rules (predict_train_instances) are planned too.
    plan = planned_gpus(workdir, "--config", "compute={device: cuda}", "self_training={rounds: 1}")
    for rule in cuda_rules():
        assert plan.get(rule) == {1}, (rule, plan.get(rule))
    assert all(gpus == {0} for rule, gpus in plan.items() if rule not in cuda_rules())
    plan = planned_gpus(workdir, "--config", "compute={device: cpu}")
    assert all(gpus == {0} for gpus in plan.values()), plan


def test_auto_requests_the_declared_gpus_or_stops_with_one_line(workdir):
    plan = planned_gpus(workdir, "--config", "compute={device: auto}", "--resources", "gpu=4")
    assert all(plan[rule] == {1} for rule in cuda_rules() if rule in plan)
    result = snakemake(workdir, "-n", "-F", "--profile", str(REPO / "profiles/slurm"), "--config",
                       "compute={device: auto}", check=False)  # fmt: skip
    assert result.returncode != 0
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("Error: config key compute.device: 'auto' cannot tell"), last
