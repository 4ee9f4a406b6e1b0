"""The input check (rule verify_inputs): bad files stop the run before any training; reruns decode only what
changed."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from irnet_core.shards import shard_of
from tests.workflow.harness import make_workdir, planned_jobs, snakemake

pytestmark = pytest.mark.workflow


def _decoded(log_text: str) -> tuple[int, list[str]]:
    """(images decoded, their ids) from a verify_inputs log."""
    count = int(re.search(r"verified \d+ images .*?: (\d+) decoded", log_text).group(1))
    listed = re.search(r"decoded: (.*)", log_text)
    return count, listed.group(1).split() if listed else []


@pytest.mark.slow  # three real runs up to train_cam (about a minute on 2 cores)
def test_a_corrupt_infer_only_image_stops_before_train_cam_and_a_fix_is_decoded_alone(tmp_path):
    workdir = make_workdir(tmp_path)
    voc = workdir / "data/VOC"
    lists = voc / "ImageSets/Segmentation"
    victim = (lists / "train.txt").read_text().split()[0]  # in the infer and eval lists
    train = [i for i in (lists / "train_aug.txt").read_text().split() if i != victim]
    (lists / "train_rest.txt").write_text("\n".join(train) + "\n")
    config = yaml.safe_load((workdir / "tiny.yaml").read_text())
    config["dataset"]["train_list"] = "ImageSets/Segmentation/train_rest.txt"  # the victim trains nothing
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    image = voc / f"JPEGImages/{victim}.jpg"
    good = image.read_bytes()
    image.write_bytes(good[: len(good) // 2])  # truncated: the header reads, the pixels do not

    result = snakemake(workdir, "results/cam/model.pt", "--keep-going", check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [f"Error: {image.relative_to(workdir)}: cannot decode image: {errors[0].split(': ', 3)[3]}"]
    assert not (workdir / "logs/train_cam").exists() and not (workdir / "logs/prepare_dataset").exists()
    shard = shard_of(victim, 2)
    log = workdir / f"logs/verify_inputs/shard-{shard}.log"
    assert re.search(rf"ERROR .*bad input: .*{victim}\.jpg: cannot decode image", log.read_text())
    assert re.search(r"1 of \d+ images have a bad file", log.read_text())
    assert (workdir / f"results/verify/shard-{1 - shard}.json").exists()  # the other shard was checked

    image.write_bytes(good)  # fixed: only its shard's check runs again, and decodes only it
    plan = planned_jobs(workdir, "results/cam/model.pt")
    assert plan == {"verify_inputs": 1, "prepare_dataset": 1, "train_cam": 1}, plan
    snakemake(workdir, "results/cam/model.pt")
    assert (workdir / "results/cam/model.pt").exists()
    assert _decoded(log.read_text()) == (1, [victim])

    # Edited again (other bytes, still a valid image): its check reruns, no training does.
    image.write_bytes(good + b"\0")
    target = f"results/verify/shard-{shard}.json"
    assert planned_jobs(workdir, "results/cam/model.pt", target) == {"verify_inputs": 1}
    snakemake(workdir, target)
    assert _decoded(log.read_text()) == (1, [victim])
    # Touched (same bytes, a new time) and the check forced to run: every verdict comes from the cache, by digest.
    os.utime(image)
    snakemake(workdir, target, "--forcerun", "verify_inputs")
    assert _decoded(log.read_text()) == (0, [])
    assert planned_jobs(workdir, "results/cam/model.pt", target) == {}
