"""Files, bytes and time per image of the stage stores, at two dataset sizes: what a cluster filesystem sees.

Runs the workflow (the demo's settings, configs/demo.yaml, with one epoch per training: the footprint does not
depend on how well the networks are trained) on generated datasets of two sizes, every image also inferred, and
measures for each stage store (results/<stage>/shard-*.zarr) and for results/ as a whole:

- files and bytes per inferred image, and their ratio between the two sizes (a flat cost per image gives 1.0);
- the CAM stores' bytes against the official code's CAM files for the same images (one ``.npy`` per image: a dict
  of ``keys``, ``cam`` and ``high_res`` in float32, saved with ``np.save``), computed from the stored maps;
- wall time per image of each sharded stage (Snakemake's benchmark files), and its ratio between the sizes;
- the two store layouts (``compute.store_layout``: zip, directory) written and read on the same synthetic maps.

    python bench/footprint.py [--sizes 100 400] [--workdir /tmp/irnet-footprint] [--cores 2] [--shards 4]

Last line: ``footprint files_per_image=<stores, large size> bytes_per_image=<stores, large size>
cam_bytes_vs_npy=<..> per_image_ratio=<stores' bytes per image, large / small>`` (goals: files per image <= 1,
cam_bytes_vs_npy <= 0.20, per_image_ratio <= 1.1). docs/scaling.md ("Footprint") holds the figures.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from irnet_core.inference import stored_high_res  # noqa: E402
from irnet_core.store import LAYOUTS, ShardReader, ShardWriter  # noqa: E402
from irnet_core.tools.demo_generator import generate_demo_dataset  # noqa: E402

STAGES = ("cam", "relations", "irnet", "semantic", "instances")
SHARDED_RULES = ("infer_cam", "mine_relations", "infer_irnet", "propagate_semantic", "extract_instances")


def layer(n_images: int, shards: int) -> dict:
    return {
        "dataset": {
            "root": "data/VOC",
            "train_list": "ImageSets/Segmentation/train_aug.txt",
            "infer_list": "ImageSets/Segmentation/train_aug.txt",
            "eval_list": "ImageSets/Segmentation/train.txt",
            "calibration_list": None,
            "val_list": None,
        },
        "demo": {"n_images": n_images, "n_labelled": min(100, n_images), "n_calibration": 0, "n_val": 0},
        "cam": {"train": {"epochs": 1}},
        "irnet": {"train": {"epochs": 1}},
        "compute": {"shards": shards},
    }


def run_workflow(workdir: Path, n_images: int, shards: int, cores: int) -> float:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / "config.yaml").write_text((REPO / "config.yaml").read_text())  # the Snakefile's first layer
    demo = yaml.safe_load((REPO / "configs/demo.yaml").read_text())["demo"]
    # Outside results/: the input dataset is not part of the pipeline's footprint.
    generate_demo_dataset(
        workdir / "data/VOC",
        n_images=n_images,
        n_labelled=min(100, n_images),
        seed=0,
        min_size=demo["min_size"],
        max_size=demo["max_size"],
    )
    (workdir / "footprint.yaml").write_text(yaml.safe_dump(layer(n_images, shards), sort_keys=False))
    command = [
        sys.executable, "-m", "snakemake", "results/summary.json", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
        "--cores", str(cores), "--quiet", "rules", "--configfile", str(REPO / "configs/demo.yaml"), "footprint.yaml",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, cwd=workdir, check=True)
    return time.perf_counter() - start


def files_and_bytes(paths) -> tuple[int, int]:
    files = [p for path in paths for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def npy_bytes(cam: np.ndarray, high_res: np.ndarray, keys) -> int:
    """Bytes of the official code's CAM file for one image: np.save of {keys, cam, high_res} in float32."""
    buffer = io.BytesIO()
    record = {"keys": np.asarray(keys), "cam": cam.astype(np.float32), "high_res": high_res.astype(np.float32)}
    np.save(buffer, record, allow_pickle=True)
    return buffer.getbuffer().nbytes


def measure(workdir: Path, n_images: int) -> dict:
    results = workdir / "results"
    stores = {stage: sorted(results.glob(f"{stage}/shard-*.zarr")) for stage in STAGES}
    stores["calibration"] = sorted(results.glob("calibration/*.zarr"))
    figures = {}
    for stage, paths in stores.items():
        files, size = files_and_bytes(paths)
        figures[stage] = {"stores": len(paths), "files": files / n_images, "bytes": size / n_images}
    all_stores = [p for paths in stores.values() for p in paths]
    files, size = files_and_bytes(all_stores)
    figures["stores"] = {"stores": len(all_stores), "files": files / n_images, "bytes": size / n_images}
    files, size = files_and_bytes([results])
    figures["results/"] = {"stores": 0, "files": files / n_images, "bytes": size / n_images}

    official = 0
    for path in stores["cam"]:
        reader = ShardReader(path)
        for image_id in reader.image_ids:
            high_res, attrs = stored_high_res(reader, image_id)
            official += npy_bytes(reader.read(image_id, ["cam"])[0]["cam"], high_res, attrs["keys"])
    figures["cam_bytes_vs_npy"] = files_and_bytes(stores["cam"])[1] / official

    seconds = {}
    for rule in SHARDED_RULES:
        total = 0.0
        for tsv in (workdir / "benchmarks" / rule).glob("*.tsv"):
            with open(tsv) as handle:
                total += float(next(csv.DictReader(handle, delimiter="\t"))["s"])
        seconds[rule] = total / n_images
    figures["seconds_per_image"] = seconds
    return figures


def layout_timing(n_images: int = 100) -> dict[str, tuple[float, float]]:
    """Seconds per image to write and to read back CAM-store-like images (3 classes, 320 x 240) in each layout."""
    rng = np.random.default_rng(0)
    images = {
        f"img_{i:04d}": {
            "cam": rng.random((3, 60, 80)).astype(np.float16),
            **{f"scale_{s}": rng.random((3, 15 * (s + 1), 20 * (s + 1))).astype(np.float32) for s in range(3)},
        }
        for i in range(n_images)
    }
    timing = {}
    with tempfile.TemporaryDirectory() as scratch:
        for layout in LAYOUTS:
            path = Path(scratch) / f"{layout}.zarr"
            start = time.perf_counter()
            with ShardWriter(path, stage="cam", image_ids=list(images), layout=layout) as writer:
                for image_id, arrays in images.items():
                    writer.write(image_id, arrays, {"keys": [0, 1, 2], "size": [240, 320]})
            written = time.perf_counter()
            reader = ShardReader(path)
            for image_id in images:
                reader.read(image_id)
            timing[layout] = ((written - start) / n_images, (time.perf_counter() - written) / n_images)
    return timing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs=2, type=int, default=[100, 400])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/irnet-footprint"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()

    measured = {}
    for n_images in args.sizes:
        workdir = args.workdir / f"images-{n_images}"
        wall = run_workflow(workdir, n_images, args.shards, args.cores)
        measured[n_images] = measure(workdir, n_images)
        print(f"{n_images} images: workflow {wall:.0f} s", flush=True)

    small, large = args.sizes
    rows = [*STAGES, "calibration", "stores", "results/"]
    print(f"\nper inferred image ({args.shards} shards)      {small:>6} images          {large:>6} images     ratio")
    print(f"{'':14}{'stores':>7}{'files':>9}{'KiB':>10}{'stores':>7}{'files':>9}{'KiB':>10}{'KiB':>8}")
    for row in rows:
        a, b = measured[small][row], measured[large][row]
        ratio = b["bytes"] / a["bytes"] if a["bytes"] else float("nan")
        print(f"{row:14}{a['stores']:7d}{a['files']:9.3f}{a['bytes'] / 1024:10.1f}"
              f"{b['stores']:7d}{b['files']:9.3f}{b['bytes'] / 1024:10.1f}{ratio:8.3f}")  # fmt: skip
    print(f"\nCAM stores against the official .npy CAM files: {measured[small]['cam_bytes_vs_npy']:.3f} "
          f"({small} images), {measured[large]['cam_bytes_vs_npy']:.3f} ({large} images)")  # fmt: skip

    print(f"\nwall time per image (s)  {small:>8} {large:>8}   ratio")
    for rule in SHARDED_RULES:
        a, b = measured[small]["seconds_per_image"][rule], measured[large]["seconds_per_image"][rule]
        flag = "  > 1.10" if b > 1.10 * a else ""
        print(f"{rule:24}{a:8.3f} {b:8.3f} {b / a:7.3f}{flag}")

    print("\nstore layouts, synthetic CAM stores (ms per image)   write    read")
    for layout, (write, read) in layout_timing().items():
        print(f"  {layout:48}{1000 * write:7.2f} {1000 * read:7.2f}")

    stores_large, stores_small = measured[large]["stores"], measured[small]["stores"]
    print(
        f"\nfootprint files_per_image={stores_large['files']:.3f} bytes_per_image={stores_large['bytes']:.0f} "
        f"cam_bytes_vs_npy={measured[large]['cam_bytes_vs_npy']:.3f} "
        f"per_image_ratio={stores_large['bytes'] / stores_small['bytes']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
