"""The input check: bad files stop the run before any training; reruns decode only what changed."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from irnet_core.shards import shard_of
from tests.workflow.harness import make_workdir, planned_jobs, snakemake

pytestmark = pytest.mark.workflow


def _decoded(log_text: str) -> tuple[int, list[str]]:
    """(images decoded, their ids) from the log of a job that ran the check."""
    count = int(re.search(r"verified \d+ images .*?: (\d+) decoded", log_text).group(1))
    listed = re.search(r"decoded: (.*)", log_text)
    return count, listed.group(1).split() if listed else []


@pytest.mark.slow  # real runs up to train_cam (about a minute on 2 cores)
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

    # Asking for the CAM network alone: its gate (prepare_dataset) checks every list.
    result = snakemake(workdir, "results/cam/model.pt", check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {image.relative_to(workdir)}: cannot decode image: ")
    assert not (workdir / "logs/train_cam").exists() and not (workdir / "results/dataset/labels.json").exists()
    log = workdir / "logs/prepare_dataset/prepare_dataset.log"
    assert re.search(rf"ERROR .*bad input: .*{victim}\.jpg: cannot decode image", log.read_text())
    assert re.search(r"1 of \d+ images have a bad file", log.read_text())

    image.write_bytes(good)  # fixed: the rerun decodes only it, and trains
    assert planned_jobs(workdir, "results/cam/model.pt") == {"prepare_dataset": 1, "train_cam": 1}
    snakemake(workdir, "results/cam/model.pt")
    assert (workdir / "results/cam/model.pt").exists()
    assert _decoded(log.read_text()) == (1, [victim])

    # The shard jobs of the check (what `snakemake` runs first) reuse those verdicts by content: nothing decoded.
    shard = shard_of(victim, 2)
    shards = [f"results/verify/shard-{k}.json" for k in (0, 1)]
    snakemake(workdir, *shards)
    shard_log = workdir / f"logs/verify_inputs/shard-{shard}.log"
    assert _decoded(shard_log.read_text()) == (0, [])
    verified = json.loads((workdir / shards[shard]).read_text())
    assert victim in verified["image_digests"]

    # Edited again (other bytes, still a valid image): its shard's check reruns and decodes it alone; the CAM
    # network does not retrain for an image it never saw.
    image.write_bytes(good + b"\0")
    assert planned_jobs(workdir, "results/cam/model.pt", *shards) == {"verify_inputs": 1}
    snakemake(workdir, *shards)
    assert _decoded(shard_log.read_text()) == (1, [victim])
    assert planned_jobs(workdir, "results/cam/model.pt", *shards) == {}


def test_a_box_only_coco_image_is_refused_in_the_eval_list_and_trains_as_labels(tmp_path):
    """COCO-format files from detection tools: an image whose annotations hold no segmentation has no ground
    truth. In the eval list: one line naming the image and the list, when the plan is made; in a training list
    only: accepted, its boxes' classes are its image-level labels."""
    from irnet_core.data.convert import convert_dataset

    workdir = make_workdir(tmp_path / "voc")
    config = yaml.safe_load((workdir / "tiny.yaml").read_text())
    voc = workdir / config["dataset"]["root"]
    lists = {name: (voc / f"ImageSets/Segmentation/{name}.txt").read_text().split() for name in ("train_aug", "train")}
    mapping = convert_dataset(voc, workdir / "data/coco", "coco", lists, classes=config["dataset"]["classes"])
    box_only = mapping[lists["train"][0]]
    annotations = workdir / "data/coco/annotations/instances_train2014.json"
    data = json.loads(annotations.read_text())
    coco_id = next(image["id"] for image in data["images"] if image["file_name"].startswith(box_only))
    for annotation in data["annotations"]:
        if annotation["image_id"] == coco_id:
            del annotation["segmentation"]  # a detection tool's annotation: a box and a category
    annotations.write_text(json.dumps(data))
    config["dataset"] = {
        "format": "coco", "root": "data/coco", "splits": ["train2014"], "classes": config["dataset"]["classes"],
        "train_list": "lists/train_aug.txt", "infer_list": "lists/train.txt", "eval_list": "lists/train.txt",
    }  # fmt: skip
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last.startswith(f"Error: config key dataset.eval_list: image {box_only!r} has no ground truth"), last
    assert f"(image {coco_id}) holds a usable segmentation" in last and "(1 such image(s) in the list)" in last

    others = [i for i in (workdir / "data/coco/lists/train.txt").read_text().split() if i != box_only]
    (workdir / "data/coco/lists/scored.txt").write_text("\n".join(others) + "\n")
    config["dataset"]["eval_list"] = "lists/scored.txt"
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    plan = planned_jobs(workdir)  # trains on it (train_aug holds it), infers it, does not score it
    assert plan.get("train_cam") == 1 and plan.get("verify_inputs") == 2, plan
