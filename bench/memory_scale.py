"""Peak memory of export and evaluation at two dataset sizes, 10x apart: it must not grow with the dataset.

Builds a synthetic VOC-layout dataset of VOC-sized images (375 x 500, three rectangles of two classes each, with
ground truth) and the shard stores that the exports and evaluations read (semantic labels, instances, CAMs for
the CAM-components baseline), then runs, each in a fresh process, ``export_labels``, ``evaluate_semantic`` and
``evaluate_instances`` as the workflow's jobs do, and reads the peak resident memory of each process
(``getrusage``: what a scheduler's memory limit sees, the interpreter and its libraries included).

    python bench/memory_scale.py [--small 30] [--factor 10] [--shards 4]

The goal is a ratio of the large run's peak to the small run's of at most 1.2. The last line reads
``memory_scale small_mb=<a> large_mb=<b> ratio=<b/a>``, with the largest peak over the three jobs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLASSES = ["disc", "square"]
HEIGHT, WIDTH = 375, 500


def _boxes(rng: np.random.Generator) -> list[tuple[int, int, int, int, int]]:
    """Three non-overlapping rectangles (class, y0, y1, x0, x1), one per third of the width."""
    boxes = []
    for third in range(3):
        x0 = third * WIDTH // 3 + int(rng.integers(5, 30))
        x1 = (third + 1) * WIDTH // 3 - int(rng.integers(5, 30))
        y0, y1 = int(rng.integers(20, 120)), int(rng.integers(200, HEIGHT - 20))
        boxes.append((third % 2, y0, y1, x0, x1))
    return boxes


def build(root: Path, n_images: int, n_shards: int) -> dict:
    """The dataset, its shard stores and the ids; returns the paths the jobs need."""
    from PIL import Image

    from irnet_core.instances import Instances, instances_to_map
    from irnet_core.palette import write_palette_png
    from irnet_core.shards import split_into_shards
    from irnet_core.store import ShardWriter

    voc = root / "VOC"
    for sub in ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationObject"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"2026_{i + 1:06d}" for i in range(n_images)]
    shards = split_into_shards(ids, n_shards)
    writers = {
        stage: [
            ShardWriter(root / stage / f"shard-{k}.zarr", stage=stage, image_ids=shard)
            for k, shard in enumerate(shards)
        ]
        for stage in ("semantic", "instances", "cam")
    }
    shard_of = {image_id: k for k, shard in enumerate(shards) for image_id in shard}
    for index, image_id in enumerate(ids):
        rng = np.random.default_rng(index)
        classes = np.zeros((HEIGHT, WIDTH), np.uint8)
        objects = np.zeros((HEIGHT, WIDTH), np.uint8)
        masks, labels, cams = [], [], np.zeros((2, HEIGHT, WIDTH), np.float16)
        names = []
        for k, (label, y0, y1, x0, x1) in enumerate(_boxes(rng), start=1):
            classes[y0:y1, x0:x1] = label + 1
            objects[y0:y1, x0:x1] = k
            shifted = np.zeros((HEIGHT, WIDTH), bool)
            shifted[y0 + 4 : y1 + 4, x0 - 3 : x1 - 3] = True  # a prediction close to, not equal to, the truth
            masks.append(shifted)
            labels.append(label)
            cams[label, y0:y1, x0:x1] = 0.9
            names.append(CLASSES[label])
        Image.fromarray(rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(
            voc / f"JPEGImages/{image_id}.jpg"
        )
        write_palette_png(voc / f"SegmentationClass/{image_id}.png", classes)
        write_palette_png(voc / f"SegmentationObject/{image_id}.png", objects)
        objects_xml = "".join(f"<object><name>{n}</name></object>" for n in names)
        (voc / f"Annotations/{image_id}.xml").write_text(f"<annotation>{objects_xml}</annotation>")
        k = shard_of[image_id]
        keys = sorted(set(labels))
        writers["semantic"][k].write(image_id, {"labels": classes}, {"keys": keys, "size": [HEIGHT, WIDTH]})
        id_map, inst_classes, scores = instances_to_map(Instances(np.stack(masks), labels, [0.9, 0.8, 0.7]))
        writers["instances"][k].write(
            image_id,
            {"instance_map": id_map, "classes": inst_classes.astype(np.int64), "scores": scores.astype(np.float32)},
            {"keys": keys, "size": [HEIGHT, WIDTH], "count": 3},
        )
        writers["cam"][k].write(image_id, {"high_res": cams[keys]}, {"keys": keys, "size": [HEIGHT, WIDTH]})
    for stage_writers in writers.values():
        for writer in stage_writers:
            writer.close()
    return {
        "root": str(root),
        "ids": ids,
        "dataset": {"format": "voc", "root": str(voc), "classes": CLASSES},
        "stores": {stage: [str(root / stage / f"shard-{k}.zarr") for k in range(n_shards)] for stage in writers},
    }


JOBS = {
    "export_labels": """
from irnet_core.pipeline.pseudo_labels import export_labels
export_labels(semantic_stores=s["stores"]["semantic"], instance_stores=s["stores"]["instances"], dataset=d,
              image_ids=s["ids"], out_dir=s["root"] + "/export/SegmentationClass", out_coco=s["root"] + "/export/instances.json")
""",
    "evaluate_semantic": """
from irnet_core.pipeline.pseudo_labels import evaluate_semantic
evaluate_semantic(label_dir=s["root"] + "/export/SegmentationClass", dataset=d, image_ids=s["ids"],
                  out_path=s["root"] + "/eval/semantic.json")
""",
    "evaluate_instances": """
from irnet_core.pipeline.pseudo_labels import evaluate_instances
evaluate_instances(instance_stores=s["stores"]["instances"], cam_stores=s["stores"]["cam"], dataset=d,
                   image_ids=s["ids"], baseline_threshold=0.5, out_path=s["root"] + "/eval/instances.json")
""",
}


def run_job(name: str, setup_file: Path) -> float:
    """Run one job in a fresh interpreter; its peak resident memory in MB (the job reports its own)."""
    code = (
        f"import json, resource, sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from irnet_core.data.dataset import open_dataset\n"
        f"s = json.load(open({str(setup_file)!r})); d = open_dataset(s['dataset'])\n"
        + JOBS[name]
        + "\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0  # Linux reports KiB


def measure(n_images: int, n_shards: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="memory_scale_") as folder:
        start = time.perf_counter()
        setup = build(Path(folder), n_images, n_shards)
        setup_file = Path(folder) / "setup.json"
        setup_file.write_text(json.dumps(setup))
        built = time.perf_counter() - start
        peaks = {name: run_job(name, setup_file) for name in JOBS}
        report = json.loads((Path(folder) / "eval/instances.json").read_text())
        print(
            f"  {n_images:5d} images: data built in {built:.0f} s; peak MB "
            + ", ".join(f"{name} {mb:.0f}" for name, mb in peaks.items())
            + f" (mAP50 {report['map50']:.3f}, {report['n_instances']} instances)",
            flush=True,
        )
        return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=30, help="images in the small dataset")
    parser.add_argument("--factor", type=int, default=10, help="how many times larger the large dataset is")
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()
    peaks = {n: max(measure(n, args.shards).values()) for n in (args.small, args.small * args.factor)}
    small, large = peaks[args.small], peaks[args.small * args.factor]
    print(f"goal: ratio <= 1.2 ({args.factor}x the images)")
    print(f"memory_scale small_mb={small:.0f} large_mb={large:.0f} ratio={large / small:.2f}")


if __name__ == "__main__":
    main()
