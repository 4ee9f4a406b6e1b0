"""CAM inference throughput against the raw backbone's, on the device at hand.

CAM inference (the workflow's infer_cam path: decoding, bicubic resizing and normalising in data-loader workers,
the CAM network on the image and its mirror at every scale, interpolation and accumulation of the maps, copy
back to the host) is timed over synthetic VOC-sized images, and compared with the network alone: the same
forward passes (`model.cams` on the same (2, 3, h, w) inputs, already on the device), nothing else. The ratio
says how much of the network's speed the stage keeps; the goal is >= 0.8.

    python bench/cam_throughput.py [--device auto|cpu|cuda] [--arch resnet50] [--images 16] [--workers 2]

The last line reads ``cam_throughput device=<cpu|cuda> images_per_s=<x> backbone_images_per_s=<y> ratio=<x/y>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from irnet_core.devices import resolve_device  # noqa: E402
from irnet_core.inference import CAM_SCALES, cam_inputs, cams_from_inputs  # noqa: E402
from irnet_core.inference_sets import CamInferenceInputs, loader  # noqa: E402
from irnet_core.models.cam_net import build_cam_net  # noqa: E402
from irnet_core.training import Precision  # noqa: E402


class SyntheticImages:
    """What CamInferenceInputs needs of a dataset: images (VOC-sized, textured noise) and their labels."""

    def __init__(self, n: int, size=(375, 500)):
        self.images = [np.random.default_rng(i).integers(0, 255, (*size, 3), dtype=np.uint8) for i in range(n)]

    def image_labels(self, image_id: str) -> list[int]:
        return [0, 3]

    def load_image(self, image_id: str) -> np.ndarray:
        return self.images[int(image_id)].copy()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cam_stage(model, data, ids, device, precision, workers: int) -> float:
    """Seconds for the whole stage over ``ids`` (as infer_cam_shard runs it, minus writing the store)."""
    synchronize(device)
    start = time.perf_counter()
    for _, keys, size, inputs in loader(CamInferenceInputs(data, ids, CAM_SCALES, 1024), workers, device):
        cams_from_inputs(model, inputs, keys, size, device=device, precision=precision)
    synchronize(device)
    return time.perf_counter() - start


@torch.inference_mode()
def backbone_only(model, data, ids, device, precision) -> float:
    """Seconds for the same forward passes on inputs already on the device (prepared outside the timing)."""
    batches = [precision.to_device(pair) for i in ids for pair in cam_inputs(data.load_image(i), CAM_SCALES, 1024)]
    synchronize(device)
    start = time.perf_counter()
    for pair in batches:
        with precision.autocast():
            model.cams(pair)
    synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="data-loader processes preparing the inputs")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = Precision.for_device(device)
    torch.manual_seed(0)
    model = precision.prepare_model(build_cam_net(args.arch, "none", 20)).eval()
    data = SyntheticImages(args.images)
    ids = [str(i) for i in range(args.images)]
    warm = ids[:2]
    cam_stage(model, data, warm, device, precision, 0)  # warm-up: kernels, allocator, worker start-up paths
    backbone_only(model, data, warm, device, precision)
    stage_s = cam_stage(model, data, ids, device, precision, args.workers)
    network_s = backbone_only(model, data, ids, device, precision)
    stage_rate, network_rate = args.images / stage_s, args.images / network_s
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"{args.arch}, {args.images} images of 375x500, scales {list(CAM_SCALES)} with flips, {name}, "
          f"precision {precision.dtype or 'float32'}, {args.workers} loader workers")  # fmt: skip
    print(
        f"  CAM stage {stage_s:.2f} s ({stage_rate:.2f} images/s); network alone {network_s:.2f} s ({network_rate:.2f} images/s)"
    )
    print("goal: ratio >= 0.8")
    print(
        f"cam_throughput device={device.type} images_per_s={stage_rate:.3f} "
        f"backbone_images_per_s={network_rate:.3f} ratio={stage_rate / network_rate:.2f}"
    )


if __name__ == "__main__":
    main()
