"""Throughput of the input check (rule verify_inputs), per CPU core, on generated COCO-sized JPEGs.

Generates ``--images`` photos-like JPEGs (smooth colour fields, edges and sensor noise, 640 x 480 as COCO's
typical image, quality 90) as a folder dataset, then times, in this one process (one core: Pillow decodes on
one thread and the job runs with ``threads: 1``), the check of one shard:

* ``cold``: nothing cached (a first run): every file hashed (SHA-256) and fully decoded, labels read;
* ``rerun``: the shard's job again with unchanged files (another file of the shard changed): every verdict from
  the cache, no file read (size and modification time match);
* ``touched``: every file rewritten with the same bytes (new times): hashed again, nothing decoded.

    python bench/verify_inputs.py [--images 400] [--size 640x480] [--keep DIR]

The last line reads ``verify_inputs images=<n> cold_images_per_s=<x> rerun_images_per_s=<y>
touched_images_per_s=<z>`` (per core).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from irnet_core.data.dataset import open_dataset  # noqa: E402
from irnet_core.pipeline.verify import DigestCache, check_images  # noqa: E402


def photo_like(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth colour gradients, a few flat shapes with edges and mild noise: compresses and decodes like a
    photograph (pure noise would be several times larger and slower to decode than any real JPEG)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), np.float32)
    for channel in range(3):
        a, b, c = rng.uniform(-1, 1, 3)
        image[..., channel] = 128 + 60 * np.sin(a * x / 90 + b * y / 70 + c * 3)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(20, 120)
        image[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 14, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_dataset(root: Path, n: int, height: int, width: int) -> list[str]:
    rng = np.random.default_rng(0)
    rows = ["image,labels"]
    for index in range(n):
        name = f"img_{index:06d}.jpg"
        Image.fromarray(photo_like(rng, height, width)).save(root / name, quality=90)
        rows.append(f"{name},thing")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return [f"img_{index:06d}" for index in range(n)]


def timed(dataset, ids, cache: DigestCache) -> tuple[float, int]:
    start = time.perf_counter()
    found = check_images(dataset, ids, (), cache)
    seconds = time.perf_counter() - start
    assert not found.problems, found.problems[:1]
    return seconds, len(found.decoded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the generated JPEGs")
    parser.add_argument("--keep", type=Path, default=None, help="generate into this folder and keep it")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        ids = make_dataset(root, args.images, height, width)
        megabytes = sum((root / f"{i}.jpg").stat().st_size for i in ids) / 1e6
        # COCO's and VOC's EXIF policy (ignore); a folder dataset would otherwise read every EXIF block.
        dataset = open_dataset({"format": "folder", "root": str(root), "exif_orientation": "ignore"})
        cache = DigestCache()
        cold, decoded = timed(dataset, ids, cache)
        assert decoded == len(ids)
        rerun, decoded = timed(dataset, ids, cache)
        assert decoded == 0
        for image_id in ids:
            path = root / f"{image_id}.jpg"
            path.write_bytes(path.read_bytes())
        touched, decoded = timed(dataset, ids, cache)
        assert decoded == 0
    n = len(ids)
    print(f"{n} JPEGs of {width}x{height}, {megabytes / n * 1000:.0f} kB each, one core:")
    print(f"  cold (hash + decode + labels)  {cold:7.2f} s  {n / cold:8.1f} images/s  {cold / n * 1000:6.2f} ms/image")
    print(f"  rerun (all cached, unchanged)  {rerun:7.2f} s  {n / rerun:8.1f} images/s")
    print(f"  touched (hashed, not decoded)  {touched:7.2f} s  {n / touched:8.1f} images/s")
    coco = 82_783 + 40_504
    print(f"  COCO 2014 ({coco:,} images), cold: {coco / (n / cold) / 3600:.2f} core-hours")
    print(
        f"verify_inputs images={n} cold_images_per_s={n / cold:.1f} rerun_images_per_s={n / rerun:.1f} "
        f"touched_images_per_s={n / touched:.1f}"
    )


if __name__ == "__main__":
    main()
