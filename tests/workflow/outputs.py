"""Content digests of a run's products, so that tests compare results and not only plans.

Each product is reduced to a digest of what it holds (tensor values, array values and per-image attributes,
decoded label maps), never of file metadata: a product "changed" when its content did. Settings that a store
or model records about itself (root attributes, fingerprints) are left out on purpose, so that a stage whose
settings changed but whose output did not shows up as unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from irnet_core.store import open_root

# Product name -> path pattern under the work directory, in pipeline order.
PRODUCTS = {
    "cam_model": "results/cam/model.pt",
    "cam": "results/cam/shard-*.zarr",
    "relations": "results/relations/shard-*.zarr",
    "irnet_model": "results/irnet/model.pt",
    "calibration": "results/irnet/calibration.json",
    "irnet": "results/irnet/shard-*.zarr",
    "semantic": "results/semantic/shard-*.zarr",
    "instances": "results/instances/shard-*.zarr",
    "semantic_png": "results/pseudo_labels/SegmentationClass",
    "instances_json": "results/pseudo_labels/instances.json",
}


def _model_digest(path: Path, digest) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())


def _store_digest(path: Path, digest) -> None:
    root = open_root(path)
    for image_id in sorted(root.attrs["image_ids"]):
        group = root[image_id]
        digest.update(image_id.encode())
        digest.update(json.dumps(group.attrs.asdict(), sort_keys=True).encode())
        for name in sorted(group.array_keys()):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(group[name][...]).tobytes())


def _png_dir_digest(path: Path, digest) -> None:
    from PIL import Image

    for png in sorted(path.glob("*.png")):
        digest.update(png.name.encode())
        digest.update(np.asarray(Image.open(png)).tobytes())


def _json_digest(path: Path, digest) -> None:
    data = json.loads(path.read_text())
    if "annotations" in data:  # a COCO file: what it labels, not how the writer laid it out
        data = [(a["image_id"], a["category_id"], a["segmentation"], a.get("score")) for a in data["annotations"]]
    digest.update(json.dumps(data, sort_keys=True).encode())


def product_digest(workdir: Path, pattern: str) -> str:
    digest = hashlib.sha256()
    paths = sorted(workdir.glob(pattern))
    assert paths, f"no product at {workdir / pattern}"
    for path in paths:
        digest.update(path.name.encode())
        if path.suffix == ".pt":
            _model_digest(path, digest)
        elif path.suffix == ".zarr":
            _store_digest(path, digest)
        elif path.suffix == ".json":
            _json_digest(path, digest)
        elif path.is_dir():
            _png_dir_digest(path, digest)
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()


def snapshot(workdir: Path) -> dict[str, str]:
    """Digest of every product of a finished run."""
    return {name: product_digest(workdir, pattern) for name, pattern in PRODUCTS.items()}


def changed_products(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return [name for name in PRODUCTS if before[name] != after[name]]


# What each kind of change must recompute (and nothing else): the rerun contract of docs/architecture.md.
_INSTANCES = ["instances", "instances_json"]
_RANDOM_WALK = ["semantic", "instances", "semantic_png", "instances_json"]
_IRNET = ["irnet_model", "calibration", "irnet", *_RANDOM_WALK]
_RELATIONS = ["relations", *_IRNET]
_CAM_MAPS = ["cam", *_RELATIONS]
AFFECTED = {
    "instances": _INSTANCES,
    "random_walk": _RANDOM_WALK,
    "irnet.train": _IRNET,
    "relations": _RELATIONS,
    "cam.infer": _CAM_MAPS,
    "cam.train": ["cam_model", *_CAM_MAPS],
}
