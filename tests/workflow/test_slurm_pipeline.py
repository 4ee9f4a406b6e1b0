"""The tiny pipeline through a real single-node SLURM (tests/cluster): every job goes through sbatch with the
resources its rule declares, and the results equal a local run's.

Skipped, with the reason, only where the machine cannot run SLURM (tests/cluster/slurm_cluster.sh exits 77:
not root, no apt-get, packages not installable) or IRNET_SKIP_SLURM is set; a cluster that should come up but
does not fails the test. The node has the machine's cores (2 on the CI runners): `--max-threads 2` caps the
training rules' `threads: 8`, so no job waits for CPUs that do not exist; train_cam is also given the node's
fake GPU (`--set-resources train_cam:gpu=1`) to check that a GPU request of a pipeline rule is scheduled.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from irnet_core.store import ShardReader  # noqa: E402
from tests.cluster.fixtures import (  # noqa: E402
    run_snakemake_on_slurm,
    slurm_cluster,  # noqa: F401  (fixture, used by name)
    slurm_job_record,
    slurm_log_files,
)
from tests.workflow.harness import make_workdir, snakemake  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.workflow, pytest.mark.slow]

TARGET = "results/summary.json"
CPUS = 2
# Same thread cap in both runs: CPU results depend on each job's torch thread count (docs/scaling.md).
SLURM_ARGS = [
    "--configfile", "tiny.yaml",
    "--max-threads", str(CPUS),
    "--set-resources", "train_cam:gpu=1",
    "--retries", "0",  # a retried job would hide a failure
    "--slurm-init-seconds-before-status-checks", "5",  # <= MinJobAge 3600 / 3, so squeue stays the status command
]  # fmt: skip
STAGES = ("cam", "relations", "irnet", "semantic", "instances")
SHARDS = range(yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text())["compute"]["shards"])


def submitted_jobs(output: str) -> dict[str, dict]:
    """{SLURM job id: the job as Snakemake printed it before submitting it (rule, threads, resources)}."""
    jobs: dict[str, dict] = {}  # by Snakemake's job id
    for block in re.split(r"\n(?=rule \w+:\n)", output):
        header = re.match(r"rule (\w+):\n", block)
        if not header:
            continue
        threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
        resources = dict(re.findall(r"(\w+)=([^,\s]+)", re.search(r"^\s+resources: (.+)$", block, re.M).group(1)))
        jobs[re.search(r"^\s+jobid: (\d+)$", block, re.M).group(1)] = {
            "rule": header.group(1),
            "threads": int(threads.group(1)) if threads else 1,
            "mem_mb": int(resources["mem_mb"]),
            "runtime": int(resources["runtime"]),
            "gpu": int(resources.get("gpu", 0)),
        }
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", output)
    return {slurm_id: jobs[job_id] for job_id, slurm_id in submitted}


def planned_jobs(workdir: Path, target: str) -> dict[str, int]:
    """{rule: jobs} of a dry run for `target` (harness.planned_jobs puts its arguments where targets do not fit)."""
    result = snakemake(workdir, target, "-n", "--quiet", "rules")
    counts, in_table = {}, False
    for line in (result.stdout + result.stderr).splitlines():
        if re.match(r"^job\s+count", line):
            in_table = True
        elif in_table and (match := re.match(r"^(\w+)\s+(\d+)$", line.strip())):
            if match.group(1) == "total":
                break
            counts[match.group(1)] = int(match.group(2))
    return counts


def slurm_minutes(limit: str) -> int:
    """SLURM's TimeLimit ([D-]HH:MM:SS) in minutes."""
    days, _, clock = limit.rpartition("-")
    hours, minutes, seconds = (int(x) for x in clock.split(":"))
    return int(days or 0) * 1440 + hours * 60 + minutes + (seconds > 0)


def slurm_mb(memory: str) -> int:
    value, unit = float(memory[:-1]), memory[-1]
    return round(value * {"M": 1, "G": 1024, "T": 1024**2}[unit])


@pytest.fixture(scope="module")
def runs(slurm_cluster, tiny_run, tmp_path_factory):  # noqa: F811
    """(SLURM work folder, local work folder, plan {rule: jobs}, submitted job ids, SLURM's records, Snakemake's output)."""
    on_slurm = make_workdir(tmp_path_factory.mktemp("slurm"))
    plan = planned_jobs(on_slurm, TARGET)  # before the run starts
    proc, job_ids = run_snakemake_on_slurm(
        on_slurm, on_slurm / "Snakefile", [TARGET], extra_args=SLURM_ARGS, timeout=1200
    )
    assert proc.returncode == 0, proc.stdout[-8000:]
    # Right away: slurmctld forgets finished jobs after MinJobAge (3600 s in the harness).
    records = {job_id: slurm_job_record(job_id) for job_id in job_ids}

    # The shared tiny run is the local reference: same config, and `--cores 2` caps every job's threads at CPUS.
    return on_slurm, tiny_run, plan, job_ids, records, proc.stdout


def test_every_job_went_through_sbatch(runs, capsys):
    on_slurm, _, plan, job_ids, records, output = runs
    with capsys.disabled():  # the scheduler's job ids in the test log
        print(f"\nSLURM job ids of the tiny pipeline ({len(job_ids)} jobs):")
        for job_id in job_ids:
            record = records[job_id]
            print(f"  {job_id:>6}  {record.get('JobState', '?'):<10} {record.get('Comment', '?')}")
    assert len(job_ids) == len(set(job_ids)) == sum(plan.values()) > 15, (job_ids, plan)
    assert {r.get("JobState") for r in records.values()} == {"COMPLETED"}, records
    # One sbatch per planned job, no more: SLURM's comment is rule_<rule>[_wildcards_<values>].
    comments = [r["Comment"] for r in records.values()]
    assert len(set(comments)) == len(comments)
    assert Counter(c.removeprefix("rule_").split("_wildcards_")[0] for c in comments) == Counter(plan)
    for record in records.values():
        assert (
            record["Partition"] == "debug"
            and record["JobName"].startswith("irnet_")
            and record["NodeList"] == "localhost"
        )
    assert "has been submitted with SLURM jobid" in output
    # SLURM's own per-job log of every job (slurm-keep-successful-logs), each naming its rule.
    logs = slurm_log_files(on_slurm)
    assert set(logs) == set(job_ids)
    for job_id in job_ids:
        rule = records[job_id]["Comment"].removeprefix("rule_").split("_wildcards_")[0]
        text = logs[job_id].read_text()  # the job step's Snakemake, run by SLURM on the node, ran that one job
        assert f"\nrule {rule}:\n" in text and "--target-jobs " + rule in text and "Finished jobid" in text, logs[
            job_id
        ]


def test_sbatch_requests_match_the_rules_resources(runs):
    on_slurm, _, _, job_ids, records, output = runs
    jobs = submitted_jobs(output)
    assert set(jobs) == set(job_ids)
    for job_id, job in jobs.items():
        record = records[job_id]
        assert record["Comment"].startswith(f"rule_{job['rule']}")
        assert int(record["NumCPUs"]) == job["threads"] <= CPUS, (job_id, record["NumCPUs"], job)
        assert slurm_mb(record["MinMemoryNode"]) == job["mem_mb"], (job_id, record["MinMemoryNode"], job)
        assert slurm_minutes(record["TimeLimit"]) == job["runtime"], (job_id, record["TimeLimit"], job)
        assert (record.get("TresPerJob") == "gres:gpu:1") == (job["gpu"] == 1), (job_id, record.get("TresPerJob"), job)
    by_rule = {job["rule"]: job for job in jobs.values()}
    # What the rules declare arrives: threads 8 capped at the node's 2, the training rules' memory and runtime,
    # train_cam's GPU (set for this test), and 1 CPU for a shard job.
    assert by_rule["train_cam"]["threads"] == by_rule["train_irnet"]["threads"] == CPUS
    assert by_rule["train_cam"]["gpu"] == 1 and by_rule["infer_cam"]["threads"] == 1
    assert by_rule["train_irnet"]["mem_mb"] >= 8000 and by_rule["train_irnet"]["runtime"] >= 60
    # Inside the allocation the job used the CPUs SLURM granted: the rule log's first line names its threads.
    first_line = (on_slurm / "logs/train_cam/train_cam.log").read_text().splitlines()[0]
    assert f"rule train_cam, {CPUS} thread(s)" in first_line


def _history(path: Path) -> list[dict]:
    with open(path) as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def _json(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("timings", None)
    return data


def test_results_equal_a_local_run(runs):
    on_slurm, local, *_ = runs
    for workdir in (on_slurm, local):  # the precondition of bitwise equality on CPU: the same torch threads per job
        for rule in ("train_cam", "train_irnet"):
            assert f"rule {rule}, {CPUS} thread(s)" in (workdir / f"logs/{rule}/{rule}.log").read_text().splitlines()[0]
    for name in ("cam/model.pt", "irnet/model.pt"):
        a = torch.load(on_slurm / "results" / name, map_location="cpu", weights_only=True)["model"]
        b = torch.load(local / "results" / name, map_location="cpu", weights_only=True)["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    for name in ("cam/train_log.csv", "irnet/train_log.csv"):
        assert _history(on_slurm / "results" / name) == _history(local / "results" / name), name
    for stage in STAGES:
        for k in SHARDS:
            left, right = (
                ShardReader(on_slurm / f"results/{stage}/shard-{k}.zarr"),
                ShardReader(local / f"results/{stage}/shard-{k}.zarr"),
            )
            assert left.attrs == right.attrs and left.image_ids
            for image_id in left.image_ids:
                (arrays_a, attrs_a), (arrays_b, attrs_b) = left.read(image_id), right.read(image_id)
                assert attrs_a == attrs_b and arrays_a.keys() == arrays_b.keys(), (stage, k, image_id)
                for key in arrays_a:
                    assert np.array_equal(arrays_a[key], arrays_b[key]), (stage, k, image_id, key)
    for name in ("dataset/labels.json", "irnet/calibration.json", "eval/cam_untrained.json", "eval/cam.json",
                 "eval/semantic.json", "eval/instances.json", "summary.json"):  # fmt: skip
        assert _json(on_slurm / "results" / name) == _json(local / "results" / name), name
    exports = sorted(
        p.relative_to(local) for p in (local / "results/pseudo_labels").rglob("*") if p.is_file() and p.name[0] != "."
    )
    assert len(exports) == 7  # instances.json + 6 PNGs
    for path in exports:
        assert (on_slurm / path).read_bytes() == (local / path).read_bytes(), path
