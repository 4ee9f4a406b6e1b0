"""Faults and determinism of the real workflow (tiny configuration, CPU):

- kill -9 of a training job in epoch k: the same command resumes from the last saved epoch and ends with the
  same weights, bit for bit, as an uninterrupted run;
- kill -9 of everything (Snakemake and a shard job: a crashed head node) in the middle of a shard: the half-
  written store is never taken as complete (Snakemake's incomplete marker, and the store's own `complete`
  flag), and the rerun redoes that shard only;
- several shard jobs side by side (--cores 2) give the same results as one job at a time (--cores 1), and a
  second run with the same seed reproduces the first.

Two full runs serve all tests: an uninterrupted reference with --cores 2, and a --cores 1 run that is killed
three times on its way (train_cam in epoch 2, infer_cam in the middle of its second shard, train_irnet in
epoch 2) and finished by rerunning. The torch thread count of every job is pinned to 1 in both (--set-threads):
--cores 1 would clamp it to 1 anyway, and CPU results depend on it (docs/scaling.md). About 3 minutes on 2 cores.
"""

from __future__ import annotations

import csv
import json
import re
import signal
import struct
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from irnet_core.errors import InputError
from irnet_core.store import ShardReader
from tests.workflow.dryrun import job_counts
from tests.workflow.harness import SNAKEMAKE, make_workdir
from tests.workflow.processes import ENV, RUN_TIMEOUT_S, Snakemake, checkpoint_epoch

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

CAM_EPOCHS = 3
IRNET_EPOCHS = 3
CONFIG = {"cam": {"train": {"epochs": CAM_EPOCHS}}, "irnet": {"train": {"epochs": IRNET_EPOCHS}}}
TARGET = "results/summary.json"  # every stage; the report assets are left out (they add nothing here)
STAGES = ("cam", "relations", "irnet", "semantic", "instances")
SHARDED_RULES = ("infer_cam", "mine_relations", "infer_irnet", "propagate_semantic", "extract_instances")
SHARDS = [str(k) for k in range(yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text())["compute"]["shards"])]


def pinned_threads() -> list[str]:
    """`--set-threads rule=1` for every rule of rules/*.smk that declares more than one thread."""
    pins = []
    for path in sorted((REPO / "rules").glob("*.smk")):
        rule = None
        for line in path.read_text().splitlines():
            if match := re.match(r"\s*rule (\w+):", line):
                rule = match.group(1)
            elif (match := re.match(r"\s*threads:\s*(.+?)\s*$", line)) and rule and match.group(1) != "1":
                pins.append(f"{rule}=1")
    assert "train_cam=1" in pins and "train_irnet=1" in pins, pins
    return ["--set-threads", *pins]


# --rerun-incomplete is also in the workflow profile (profiles/default), which these runs read; written out here
# so that the runs do not depend on it.
ARGS = ["--configfile", "tiny.yaml", "--rerun-incomplete", *pinned_threads()]


# ---- running Snakemake ---------------------------------------------------------------------------------------


def snakemake_now(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True, env=ENV, timeout=RUN_TIMEOUT_S
    )


def complete(store: Path) -> bool:
    """A store's writer finished: its one file was renamed into place (the default zip layout)."""
    return (store / "store.zip").is_file()


def written_groups(store: Path) -> list[str]:
    """Image groups already in a store that is being written (or was killed while being written), read from the
    local headers of its ``store.zip.partial`` without zarr or zipfile (which need the central directory that
    only a finished zip has). Entries are stored uncompressed with their sizes in the header (zipfile.writestr)."""
    try:
        data = (store / "store.zip.partial").read_bytes()
    except OSError:
        return []
    groups, pos = [], 0
    while data[pos : pos + 4] == b"PK\x03\x04" and pos + 30 <= len(data):
        size, name_length, extra_length = struct.unpack_from("<I2H", data, pos + 22)
        name = data[pos + 30 : pos + 30 + name_length].decode()
        if name.count("/") == 1 and name.endswith("/zarr.json"):
            groups.append(name.split("/")[0])
        pos += 30 + name_length + extra_length + size
    return sorted(groups)


# ---- the two runs ---------------------------------------------------------------------------------------------


@dataclass
class FaultyRun:
    """What the killed-and-rerun --cores 1 run saw along the way."""

    workdir: Path
    cam_killed_after_epoch: int = -1
    cam_kill_output: str = ""
    killed_shard: str = ""
    finished_shard: str = ""
    finished_shard_stamp: tuple = ()
    files_at_kill: list = field(default_factory=list)
    groups_at_kill: list = field(default_factory=list)
    reader_error: str = ""
    dry_run_without_flag: subprocess.CompletedProcess | None = None
    plan_after_crash: dict = field(default_factory=dict)
    irnet_killed_after_epoch: int = -1
    irnet_kill_output: str = ""
    logs: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """Uninterrupted, several shard jobs side by side."""
    workdir = make_workdir(tmp_path_factory.mktemp("reference"), CONFIG)
    run = Snakemake(workdir, *ARGS, "--cores", "2", TARGET, name="reference")
    assert run.finish() == 0, run.output()[-5000:]
    return workdir


@pytest.fixture(scope="module")
def faulty(tmp_path_factory, reference) -> FaultyRun:  # after the reference: one pipeline at a time
    workdir = make_workdir(tmp_path_factory.mktemp("faulty"), CONFIG)
    seen = FaultyRun(workdir)
    command = [*ARGS, "--cores", "1", TARGET]

    # 1. kill -9 of the train_cam job once the checkpoint of epoch 1 exists (Snakemake itself survives).
    run = Snakemake(workdir, *command, name="1-cam-killed")
    cam_checkpoint = workdir / "results/checkpoints/train_cam/last.pt"
    [script] = run.wait_until(lambda: cam_checkpoint.exists() and run.scripts("train_cam"), "the first CAM checkpoint")
    script.send_signal(signal.SIGSTOP)
    seen.cam_killed_after_epoch = checkpoint_epoch(workdir, "train_cam")
    script.send_signal(signal.SIGKILL)
    assert run.finish() != 0
    seen.cam_kill_output = run.output()

    # 2. The same command: train_cam resumes. Then kill -9 of everything while infer_cam writes its second shard.
    run = Snakemake(workdir, *command, name="2-shard-crash")
    stores = {k: workdir / f"results/cam/shard-{k}.zarr" for k in SHARDS}

    def second_shard_half_written():
        done = [k for k, store in stores.items() if complete(store)]
        open_ = [k for k, store in stores.items() if not complete(store) and written_groups(store)]
        return (done[0], open_[0]) if done and len(open_) == 1 and run.scripts("infer_cam") else None

    seen.finished_shard, seen.killed_shard = run.wait_until(
        second_shard_half_written, "a half-written second CAM shard"
    )
    run.kill_all()
    seen.logs["train_cam"] = (workdir / "logs/train_cam/train_cam.log").read_text()
    killed = stores[seen.killed_shard]
    seen.files_at_kill, seen.groups_at_kill = sorted(p.name for p in killed.iterdir()), written_groups(killed)
    finished_zip = stores[seen.finished_shard] / "store.zip"
    seen.finished_shard_stamp = (finished_zip.stat().st_ino, finished_zip.stat().st_mtime_ns)
    try:
        ShardReader(killed)
    except InputError as exc:
        seen.reader_error = str(exc)
    # A crashed Snakemake leaves its lock behind: --unlock, as Snakemake's message says; then look before rerunning.
    assert snakemake_now(workdir, *ARGS, "--unlock").returncode == 0
    # Without the flag and without the workflow profile that sets it, Snakemake refuses to go on.
    no_flag = [*(a for a in ARGS if a != "--rerun-incomplete"), "--workflow-profile", "none"]
    seen.dry_run_without_flag = snakemake_now(workdir, *no_flag, "--cores", "1", "-n", TARGET)
    dry = snakemake_now(workdir, *command, "-n", "--quiet", "rules")
    assert dry.returncode == 0, dry.stderr[-3000:]
    seen.plan_after_crash = job_counts(dry.stdout + dry.stderr)

    # 3. The same command: the killed shard is redone; then kill -9 of train_irnet once epoch 1 is saved.
    run = Snakemake(workdir, *command, name="3-irnet-killed")
    irnet_checkpoint = workdir / "results/checkpoints/train_irnet/last.pt"
    [script] = run.wait_until(
        lambda: irnet_checkpoint.exists() and run.scripts("train_irnet"), "the first IRNet checkpoint"
    )
    script.send_signal(signal.SIGSTOP)
    seen.irnet_killed_after_epoch = checkpoint_epoch(workdir, "train_irnet")
    script.send_signal(signal.SIGKILL)
    assert run.finish() != 0
    seen.irnet_kill_output = run.output()

    # 4. The same command, to the end.
    run = Snakemake(workdir, *command, name="4-finish")
    assert run.finish() == 0, run.output()[-5000:]
    seen.logs["train_irnet"] = (workdir / "logs/train_irnet/train_irnet.log").read_text()
    seen.logs["infer_cam"] = (workdir / f"logs/infer_cam/shard-{seen.killed_shard}.log").read_text()
    return seen


# ---- comparisons -----------------------------------------------------------------------------------------------


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = state_dict(a), state_dict(b)
    assert left.keys() == right.keys()
    differ = [k for k in left if left[k].dtype != right[k].dtype or not torch.equal(left[k], right[k])]
    assert not differ, f"{len(differ)} of {len(left)} tensors differ, e.g. {differ[:3]}"


def history(path: Path) -> list[dict]:
    """train_log.csv without its wall-time column."""
    with open(path) as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def assert_same_store(a: Path, b: Path) -> int:
    left, right = ShardReader(a), ShardReader(b)
    assert left.attrs == right.attrs
    for image_id in left.image_ids:
        arrays_a, attrs_a = left.read(image_id)
        arrays_b, attrs_b = right.read(image_id)
        assert attrs_a == attrs_b, (a, image_id)
        assert arrays_a.keys() == arrays_b.keys(), (a, image_id)
        for name in arrays_a:
            assert arrays_a[name].dtype == arrays_b[name].dtype, (a, image_id, name)
            assert np.array_equal(arrays_a[name], arrays_b[name]), f"{a}: {image_id}/{name} differs"
    return len(left.image_ids)


def json_of(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("timings", None)  # summary.json: wall time and memory of the jobs
    return data


def job_intervals(workdir: Path, rule: str) -> list[tuple[datetime, datetime]]:
    """Start and end of each shard job of `rule`, from the first and last time stamps of its log."""
    intervals = []
    for log in sorted((workdir / "logs" / rule).glob("shard-*.log")):
        stamps = [
            datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            for line in log.read_text().splitlines()
            if line[:2] == "20"
        ]
        intervals.append((stamps[0], stamps[-1]))
    return intervals


def overlapping(intervals: list[tuple[datetime, datetime]]) -> bool:
    return any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(intervals) for b in intervals[i + 1 :])


# ---- training: kill -9 in epoch k, resume, same weights ----------------------------------------------------------


def test_train_cam_resumes_after_kill_with_identical_weights(faulty, reference):
    # Killed after epoch 1 of 3 was saved, before the last one: the resume had epochs left to train.
    assert 0 <= faulty.cam_killed_after_epoch < CAM_EPOCHS - 1
    assert "Error in rule train_cam" in faulty.cam_kill_output
    resumed_from = faulty.cam_killed_after_epoch
    assert f"resuming from results/checkpoints/train_cam/last.pt after epoch {resumed_from}" in faulty.logs["train_cam"]
    assert faulty.logs["train_cam"].count(" epoch {'epoch'") == CAM_EPOCHS - resumed_from - 1
    assert_same_weights(faulty.workdir / "results/cam/model.pt", reference / "results/cam/model.pt")
    assert history(faulty.workdir / "results/cam/train_log.csv") == history(reference / "results/cam/train_log.csv")
    assert len(history(reference / "results/cam/train_log.csv")) == CAM_EPOCHS


def test_train_irnet_resumes_after_kill_with_identical_weights(faulty, reference):
    assert 0 <= faulty.irnet_killed_after_epoch < IRNET_EPOCHS - 1
    assert "Error in rule train_irnet" in faulty.irnet_kill_output
    resumed_from = faulty.irnet_killed_after_epoch
    assert (
        f"resuming from results/checkpoints/train_irnet/last.pt after epoch {resumed_from}"
        in faulty.logs["train_irnet"]
    )
    assert_same_weights(faulty.workdir / "results/irnet/model.pt", reference / "results/irnet/model.pt")
    assert history(faulty.workdir / "results/irnet/train_log.csv") == history(reference / "results/irnet/train_log.csv")
    assert len(history(reference / "results/irnet/train_log.csv")) == IRNET_EPOCHS


# ---- inference: kill -9 mid-shard, never use the half-written store, redo that shard only ----------------------


def test_half_written_store_is_never_taken_as_complete(faulty):
    # The store really was half-written: some image groups, not all, in a zip that was never closed.
    expected = ShardReader(faulty.workdir / f"results/cam/shard-{faulty.killed_shard}.zarr").image_ids
    assert faulty.files_at_kill == ["store.zip.partial"]
    assert 1 <= len(faulty.groups_at_kill) < len(expected), (faulty.groups_at_kill, expected)
    assert set(faulty.groups_at_kill) < set(expected)
    # The store layer refuses it on its own (so would every downstream job).
    assert "store is incomplete" in faulty.reader_error and f"shard-{faulty.killed_shard}.zarr" in faulty.reader_error
    # Snakemake refuses it too: without --rerun-incomplete (and without profiles/default, which sets it) it will not
    # go on from an incomplete output.
    dry = faulty.dry_run_without_flag
    assert dry.returncode != 0
    text = dry.stdout + dry.stderr
    assert "IncompleteFilesException" in text and "--rerun-incomplete" in text, text[-3000:]
    assert text.split("Incomplete files:")[-1].split() == [f"results/cam/shard-{faulty.killed_shard}.zarr"], text[
        -3000:
    ]


def test_rerun_redoes_the_killed_shard_only(faulty):
    plan = faulty.plan_after_crash
    assert plan.get("infer_cam") == 1, plan  # the killed shard; the finished one stays
    assert "train_cam" not in plan and "prepare_dataset" not in plan, plan
    # The finished shard's store was not rewritten by the rerun (same file, same mtime).
    finished_zip = faulty.workdir / f"results/cam/shard-{faulty.finished_shard}.zarr/store.zip"
    assert (finished_zip.stat().st_ino, finished_zip.stat().st_mtime_ns) == faulty.finished_shard_stamp
    # The shard stages' wildcard is the part: shard-K, or val for the val list.
    assert f"wildcards {{'part': 'shard-{faulty.killed_shard}'}}" in faulty.logs["infer_cam"]
    assert "wrote CAMs of" in faulty.logs["infer_cam"]


# ---- parallel = sequential, and run-to-run reproducibility ----------------------------------------------------


def test_reference_ran_shard_jobs_side_by_side(reference):
    overlaps = [rule for rule in SHARDED_RULES if overlapping(job_intervals(reference, rule))]
    assert overlaps, "no two shard jobs of the --cores 2 run overlapped in time"


def test_parallel_run_equals_killed_sequential_run(faulty, reference):
    """--cores 2 (uninterrupted) and --cores 1 (killed three times): every result is identical."""
    run = faulty.workdir
    for stage in STAGES:
        for k in SHARDS:
            assert (
                assert_same_store(
                    run / f"results/{stage}/shard-{k}.zarr", reference / f"results/{stage}/shard-{k}.zarr"
                )
                > 0
            )
    assert_same_weights(run / "results/irnet/model.pt", reference / "results/irnet/model.pt")
    for name in ("dataset/labels.json", "irnet/calibration.json", "eval/cam_untrained.json", "eval/cam.json",
                 "eval/semantic.json", "eval/instances.json", "summary.json"):  # fmt: skip
        assert json_of(run / "results" / name) == json_of(reference / "results" / name), name
    assert (run / "results/pseudo_labels/instances.json").read_bytes() == (
        reference / "results/pseudo_labels/instances.json"
    ).read_bytes()
    pngs = sorted(p.name for p in (reference / "results/pseudo_labels/SegmentationClass").glob("*.png"))
    assert len(pngs) == 6
    for name in pngs:
        assert (run / "results/pseudo_labels/SegmentationClass" / name).read_bytes() == (
            reference / "results/pseudo_labels/SegmentationClass" / name
        ).read_bytes(), name
