"""The whole pipeline on CUDA: every stage entry point of ``irnet_core.pipeline`` with ``device=cuda`` on a tiny
generated dataset, checked against the same stages on the CPU where the two should agree.

Skipped (a no-op) where CUDA is not available, as in CI. Run it on a GPU machine with::

    python -m pytest -q -s tests/gpu/test_cuda_pipeline.py

(``-s`` also prints the per-stage wall times.) What is compared between CPU and CUDA, and why that much:

* CAMs: the CUDA-trained classifier's CAMs inferred on CUDA and on the CPU. The CUDA forward passes run in
  bf16 (mixed precision; sums and normalisation in float32) and the stores hold float16, so they agree to a few
  1e-3, not bit for bit (asserted: max abs diff < 3e-2).
* IRNet maps: the same trained IRNet inferred on both devices, bf16 on CUDA (boundary max abs diff < 3e-2).
* Random-walk semantic labels from identical inputs (the CUDA CAM and IRNet stores) propagated on each device:
  float32 sparse products in both, so argmax flips only at near-ties (asserted: >= 99% of pixels agree).

Relation labels come from ``mine_relations_shard`` (a dense CRF, CPU-only code) when pydensecrf is importable,
otherwise straight from the ground truth, so that the CUDA check does not depend on the CRF package.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from irnet_core.config import validate_config
from irnet_core.inference import stored_high_res
from irnet_core.settings import (
    BackboneSettings,
    CalibrationSettings,
    CamInferSettings,
    CamTrainSettings,
    InstanceSettings,
    IRNetTrainSettings,
    OptimizerSettings,
    RandomWalkSettings,
    RelationSettings,
    from_section,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (torch.cuda.is_available() is False)"),
]

N_IMAGES, N_LABELLED = 12, 4
REPO = Path(__file__).resolve().parents[2]
# The tiny workflow configuration, validated (schema defaults filled), as typed settings: no retyped copies.
TINY = validate_config(yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text()))
BACKBONE = from_section(BackboneSettings, TINY["backbone"])
CAM_TRAIN = from_section(CamTrainSettings, TINY["cam"]["train"])
CAM_RECIPE = from_section(OptimizerSettings, TINY["cam"]["scratch_recipe"])  # backbone weights none
CAM_INFER = from_section(CamInferSettings, TINY["cam"]["infer"])
CAM_SCALES = CAM_INFER.scales
RELATIONS = from_section(RelationSettings, TINY["relations"])
IRNET_TRAIN = from_section(IRNetTrainSettings, TINY["irnet"]["train"])
PAD_SIZE = TINY["irnet"]["infer"]["pad_size"]
RANDOM_WALK = from_section(RandomWalkSettings, TINY["random_walk"])
INSTANCES = from_section(InstanceSettings, TINY["instances"])

HAS_CRF = importlib.util.find_spec("pydensecrf") is not None
HAS_COCO = importlib.util.find_spec("pycocotools") is not None

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


def _strided(size) -> tuple[int, int]:
    return (size[0] - 1) // 4 + 1, (size[1] - 1) // 4 + 1


def _gt_relations(root: Path, image_ids, labels: dict, out_store: Path) -> None:
    """Relation labels (0 bg, c+1 fg, 255 unsure) taken from the ground truth, in mine_relations_shard's format."""
    from irnet_core.data.voc import load_class_gt
    from irnet_core.store import ShardWriter

    with ShardWriter(
        out_store, stage="relations", image_ids=image_ids, attrs={"relations": {"source": "ground truth"}}
    ) as writer:
        for image_id in image_ids:
            gt = load_class_gt(root, image_id).astype(np.uint8)
            writer.write(image_id, {"labels": gt}, {"keys": labels["labels"][image_id], "size": list(gt.shape)})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run every stage once (CUDA, plus the CPU repeats that are compared) and return the paths and results."""
    from irnet_core.data.voc import VOCDataset, read_id_list
    from irnet_core.pipeline.cam import evaluate_cam, evaluate_untrained_cams, infer_cam_shard, train_cam
    from irnet_core.pipeline.irnet import calibrate_displacement, infer_irnet_shard, mine_relations_shard, train_irnet
    from irnet_core.pipeline.pseudo_labels import (
        evaluate_instances,
        evaluate_semantic,
        export_labels,
        extract_instances_shard,
        propagate_semantic_shard,
    )
    from irnet_core.pipeline.verify import prepare_labels
    from irnet_core.tools.demo_generator import DEMO_CLASSES, generate_demo_dataset
    from irnet_core.training import TrainingRun

    tmp = tmp_path_factory.mktemp("cuda_pipeline")
    root = tmp / "VOC"
    timings: dict[str, float] = {}

    def timed(name, fn, **kwargs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn(**kwargs)
        torch.cuda.synchronize()
        timings[name] = time.perf_counter() - start
        return result

    timed(
        "generate_demo_dataset",
        generate_demo_dataset,
        root=root,
        n_images=N_IMAGES,
        n_labelled=N_LABELLED,
        seed=0,
        min_size=64,
        max_size=96,
    )
    classes = list(DEMO_CLASSES)
    dataset = VOCDataset(root, classes=classes)
    train_ids = read_id_list(root / "ImageSets/Segmentation/train_aug.txt")
    infer_ids = read_id_list(root / "ImageSets/Segmentation/train.txt")

    out = {
        "root": root, "classes": classes, "train_ids": train_ids, "infer_ids": infer_ids, "timings": timings,
        "labels_path": tmp / "labels.json",
        "cam_model": tmp / "cam" / "model.pt", "cam_history": tmp / "cam" / "train_log.csv",
        "cam_cuda": tmp / "cam" / "cuda.zarr", "cam_cpu": tmp / "cam" / "cpu.zarr",
        "cam_untrained": tmp / "eval" / "cam_untrained.json", "cam_eval": tmp / "eval" / "cam.json",
        "relations": tmp / "relations" / "shard.zarr",
        "irnet_model": tmp / "irnet" / "model.pt", "irnet_history": tmp / "irnet" / "train_log.csv",
        "calibration": tmp / "irnet" / "calibration.json",
        "irnet_cuda": tmp / "irnet" / "cuda.zarr", "irnet_cpu": tmp / "irnet" / "cpu.zarr",
        "semantic_cuda": tmp / "semantic" / "cuda.zarr", "semantic_cpu": tmp / "semantic" / "cpu.zarr",
        "instances_cuda": tmp / "instances" / "cuda.zarr",
        "label_dir": tmp / "export" / "labels", "coco": tmp / "export" / "instances.json",
        "semantic_eval": tmp / "eval" / "semantic.json", "instances_eval": tmp / "eval" / "instances.json",
    }  # fmt: skip

    out["labels"] = timed(
        "prepare_labels", prepare_labels, dataset=dataset, image_ids=train_ids, out_path=str(out["labels_path"]),
    )  # fmt: skip

    torch.cuda.reset_peak_memory_stats()
    out["cam_row"] = timed(
        "train_cam", train_cam, dataset=dataset, labels_path=str(out["labels_path"]), train=CAM_TRAIN, recipe=CAM_RECIPE, backbone=BACKBONE, run=TrainingRun(str(out["cam_model"]), str(out["cam_history"]), str(tmp / "checkpoints" / "cam"), CUDA, 0),
    )  # fmt: skip
    out["cam_train_peak_bytes"] = torch.cuda.max_memory_allocated()

    for device, key in ((CUDA, "cam_cuda"), (CPU, "cam_cpu")):
        timed(
            f"infer_cam[{device.type}]", infer_cam_shard, model_path=str(out["cam_model"]), dataset=dataset,
            image_ids=train_ids, infer=CAM_INFER, out_store=str(out[key]), device=device,
        )  # fmt: skip

    timed(
        "evaluate_cam_untrained", evaluate_untrained_cams, dataset=dataset, image_ids=infer_ids, train=CAM_TRAIN,
        backbone=BACKBONE,
        scales=CAM_SCALES, sweep=[0.1, 0.2, 0.3], out_path=str(out["cam_untrained"]), device=CUDA,
    )  # fmt: skip
    out["cam_metrics"] = timed(
        "evaluate_cam", evaluate_cam, cam_stores=[str(out["cam_cuda"])], untrained_path=str(out["cam_untrained"]),
        dataset=dataset, image_ids=infer_ids, threshold=0.15, sweep=[0.1, 0.2, 0.3],
        out_path=str(out["cam_eval"]),
    )  # fmt: skip

    if HAS_CRF:
        timed(
            "mine_relations", mine_relations_shard, cam_store=str(out["cam_cuda"]), dataset=dataset,
            image_ids=train_ids, relations=RELATIONS, out_store=str(out["relations"]),
        )  # fmt: skip
    else:
        timed(
            "relations_from_gt",
            _gt_relations,
            root=root,
            image_ids=train_ids,
            labels=out["labels"],
            out_store=out["relations"],
        )

    torch.cuda.reset_peak_memory_stats()
    out["irnet_row"] = timed(
        "train_irnet", train_irnet, relation_stores=[str(out["relations"])], dataset=dataset, image_ids=train_ids,
        labels_path=str(out["labels_path"]), cam_model_path=str(out["cam_model"]), train=IRNET_TRAIN,
        backbone=BACKBONE, backbone_source="cam_frozen", run=TrainingRun(str(out["irnet_model"]), str(out["irnet_history"]), str(tmp / "checkpoints" / "irnet"), CUDA, 0),
    )  # fmt: skip
    out["irnet_train_peak_bytes"] = torch.cuda.max_memory_allocated()

    out["calibration_result"] = timed(
        "calibrate_displacement", calibrate_displacement, model_path=str(out["irnet_model"]),
        dataset=dataset, image_ids=train_ids[:8], pad_size=PAD_SIZE, out_path=str(out["calibration"]),
        calibration=CalibrationSettings(max_images=8, batch_size=4), device=CUDA,
    )  # fmt: skip
    for device, key in ((CUDA, "irnet_cuda"), (CPU, "irnet_cpu")):
        timed(
            f"infer_irnet[{device.type}]", infer_irnet_shard, model_path=str(out["irnet_model"]),
            calibration_path=str(out["calibration"]), dataset=dataset, image_ids=infer_ids,
            pad_size=PAD_SIZE, out_store=str(out[key]), device=device,
        )  # fmt: skip

    # Identical inputs (the CUDA CAM and IRNet stores) for both devices: only the propagation differs.
    stores = {"cam_store": str(out["cam_cuda"]), "irnet_store": str(out["irnet_cuda"])}
    for device, key in ((CUDA, "semantic_cuda"), (CPU, "semantic_cpu")):
        timed(f"propagate_semantic[{device.type}]", propagate_semantic_shard, **stores, image_ids=infer_ids,
              random_walk=RANDOM_WALK, cam_floor=None, out_store=str(out[key]), device=device)  # fmt: skip
    timed(
        "extract_instances", extract_instances_shard, cam_store=str(out["cam_cuda"]), irnet_store=str(out["irnet_cuda"]),
        image_ids=infer_ids, walk=RANDOM_WALK.walk, instances=INSTANCES, out_store=str(out["instances_cuda"]),
        device=CUDA,
    )  # fmt: skip

    if HAS_COCO:
        out["export"] = timed(
            "export_labels", export_labels, semantic_stores=[str(out["semantic_cuda"])],
            instance_stores=[str(out["instances_cuda"])], dataset=dataset, image_ids=infer_ids,
            out_dir=str(out["label_dir"]), out_coco=str(out["coco"]),
        )  # fmt: skip
        out["semantic_metrics"] = timed(
            "evaluate_semantic", evaluate_semantic, label_dir=str(out["label_dir"]), dataset=dataset,
            image_ids=infer_ids, out_path=str(out["semantic_eval"]),
        )  # fmt: skip
    out["instance_metrics"] = timed(
        "evaluate_instances", evaluate_instances, instance_stores=[str(out["instances_cuda"])],
        cam_stores=[str(out["cam_cuda"])], dataset=dataset, image_ids=infer_ids, baseline_threshold=0.15,
        out_path=str(out["instances_eval"]),
    )  # fmt: skip

    print("\nCUDA pipeline stage wall times (s), device", torch.cuda.get_device_name(0))
    for name, seconds in timings.items():
        print(f"  {name:<28}{seconds:8.2f}")
    print(f"  {'total':<28}{sum(timings.values()):8.2f}")
    print(f"  peak CUDA memory: train_cam {out['cam_train_peak_bytes'] / 2**20:.0f} MiB, "
          f"train_irnet {out['irnet_train_peak_bytes'] / 2**20:.0f} MiB")  # fmt: skip
    return out


def _reader(path, ids):
    from irnet_core.store import ShardReader

    return ShardReader(path, expected_ids=ids)


def _sizes(run) -> dict[str, tuple[int, int]]:
    return {i: tuple(hw) for i, hw in run["labels"]["sizes"].items()}


# --- outputs -------------------------------------------------------------------------------------------------------


def test_every_output_exists_and_stores_open(run) -> None:
    files = ["labels_path", "cam_model", "cam_history", "cam_untrained", "cam_eval", "irnet_model", "irnet_history",
             "calibration", "instances_eval"]  # fmt: skip
    if HAS_COCO:
        files += ["coco", "semantic_eval"]
    for key in files:
        assert Path(run[key]).is_file() and Path(run[key]).stat().st_size > 0, key
    stores = {
        "cam_cuda": run["train_ids"], "cam_cpu": run["train_ids"], "relations": run["train_ids"],
        "irnet_cuda": run["infer_ids"], "irnet_cpu": run["infer_ids"], "semantic_cuda": run["infer_ids"],
        "semantic_cpu": run["infer_ids"], "instances_cuda": run["infer_ids"],
    }  # fmt: skip
    for key, ids in stores.items():
        reader = _reader(run[key], ids)
        assert reader.image_ids == list(ids), key
    # The trainings really ran on the GPU and produced finite losses.
    assert run["cam_train_peak_bytes"] > 0 and run["irnet_train_peak_bytes"] > 0
    assert math.isfinite(run["cam_row"]["loss"]) and run["cam_row"]["epoch"] == CAM_TRAIN.epochs
    assert math.isfinite(run["irnet_row"]["loss"]) and run["irnet_row"]["epoch"] == IRNET_TRAIN.epochs
    for key in ("cam_model", "irnet_model"):
        state = torch.load(run[key], map_location="cpu", weights_only=True)
        assert all(t.device.type == "cpu" for t in state["model"].values())  # loadable without CUDA


def test_cam_stores_have_the_right_shapes(run) -> None:
    reader, sizes = _reader(run["cam_cuda"], run["train_ids"]), _sizes(run)
    for image_id in run["train_ids"]:
        arrays, attrs = reader.read(image_id, ["cam"])
        high_res, _ = stored_high_res(reader, image_id)  # derived from the stored per-scale maps
        keys = attrs["keys"]
        assert keys == run["labels"]["labels"][image_id]
        assert tuple(attrs["size"]) == sizes[image_id] and attrs["stride"] == 4
        assert arrays["cam"].dtype == np.float16 and high_res.dtype == np.float16
        assert arrays["cam"].shape == (len(keys), *_strided(sizes[image_id]))
        assert high_res.shape == (len(keys), *sizes[image_id])
        for maps in (arrays["cam"], high_res):
            assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


def test_cam_inference_on_cpu_matches_cuda(run) -> None:
    cuda, cpu = _reader(run["cam_cuda"], run["train_ids"]), _reader(run["cam_cpu"], run["train_ids"])
    worst = 0.0
    for image_id in run["train_ids"]:
        a, attrs_a = cuda.read(image_id, ["cam"])
        b, attrs_b = cpu.read(image_id, ["cam"])
        assert attrs_a == attrs_b
        a["high_res"], b["high_res"] = stored_high_res(cuda, image_id)[0], stored_high_res(cpu, image_id)[0]
        for name in ("cam", "high_res"):
            assert a[name].shape == b[name].shape and a[name].dtype == b[name].dtype
            worst = max(worst, float(np.abs(a[name].astype(np.float32) - b[name].astype(np.float32)).max()))
    print(f"\nCAM max |CUDA - CPU| = {worst:.2e}")
    assert worst < 3e-2


def test_cam_evaluations(run) -> None:
    metrics = json.loads(Path(run["cam_eval"]).read_text())
    assert metrics["n_images"] == N_LABELLED and 0.0 <= metrics["miou"] <= 1.0
    untrained = json.loads(Path(run["cam_untrained"]).read_text())
    assert untrained["n_images"] == N_LABELLED and 0.0 <= untrained["best_miou"] <= 1.0


def test_relation_labels(run) -> None:
    reader, sizes = _reader(run["relations"], run["train_ids"]), _sizes(run)
    for image_id in run["train_ids"]:
        arrays, attrs = reader.read(image_id, ["labels"])
        labels = arrays["labels"]
        assert labels.dtype == np.uint8 and labels.shape == sizes[image_id]
        assert tuple(attrs["size"]) == sizes[image_id]
        assert set(np.unique(labels).tolist()) <= {0, 255, *(k + 1 for k in attrs["keys"])}


def test_irnet_maps_and_calibration(run) -> None:
    calibration = json.loads(Path(run["calibration"]).read_text())
    assert len(calibration["mean_displacement"]) == 2 and all(map(math.isfinite, calibration["mean_displacement"]))
    assert calibration["n_images"] == 8 and calibration["pad_size"] == PAD_SIZE
    cuda, cpu, sizes = (
        _reader(run["irnet_cuda"], run["infer_ids"]),
        _reader(run["irnet_cpu"], run["infer_ids"]),
        _sizes(run),
    )
    assert cuda.attrs["mean_displacement"] == calibration["mean_displacement"]
    worst_boundary = worst_displacement = 0.0
    for image_id in run["infer_ids"]:
        a, attrs = cuda.read(image_id)
        b, _ = cpu.read(image_id)
        grid = _strided(sizes[image_id])
        assert tuple(attrs["size"]) == sizes[image_id] and attrs["stride"] == 4
        assert a["boundary"].dtype == np.float16 and a["boundary"].shape == grid
        assert a["displacement"].dtype == np.float16 and a["displacement"].shape == (2, *grid)
        assert np.isfinite(a["boundary"]).all() and np.isfinite(a["displacement"]).all()
        assert a["boundary"].min() >= 0 and a["boundary"].max() <= 1
        worst_boundary = max(worst_boundary, float(np.abs(a["boundary"].astype(np.float32) - b["boundary"]).max()))
        scale = max(1.0, float(np.abs(b["displacement"].astype(np.float32)).max()))
        diff = np.abs(a["displacement"].astype(np.float32) - b["displacement"].astype(np.float32)).max() / scale
        worst_displacement = max(worst_displacement, float(diff))
    print(f"\nIRNet max |CUDA - CPU|: boundary {worst_boundary:.2e}, displacement (relative) {worst_displacement:.2e}")
    assert worst_boundary < 3e-2
    assert worst_displacement < 5e-2


def test_semantic_labels_and_cpu_agreement(run) -> None:
    cuda, cpu, sizes = (
        _reader(run["semantic_cuda"], run["infer_ids"]),
        _reader(run["semantic_cpu"], run["infer_ids"]),
        _sizes(run),
    )
    same = total = 0
    for image_id in run["infer_ids"]:
        a, attrs = cuda.read(image_id, ["labels"])
        b, _ = cpu.read(image_id, ["labels"])
        labels = a["labels"]
        assert labels.dtype == np.uint8 and labels.shape == sizes[image_id]
        assert tuple(attrs["size"]) == sizes[image_id]
        assert set(np.unique(labels).tolist()) <= {0, *(k + 1 for k in attrs["keys"])}
        assert b["labels"].dtype == np.uint8 and b["labels"].shape == labels.shape
        same += int((labels == b["labels"]).sum())
        total += labels.size
    print(f"\nsemantic labels: CUDA and CPU agree on {same}/{total} pixels ({100 * same / total:.3f}%)")
    assert same / total >= 0.99


def test_instances(run) -> None:
    reader, sizes = _reader(run["instances_cuda"], run["infer_ids"]), _sizes(run)
    for image_id in run["infer_ids"]:
        arrays, attrs = reader.read(image_id)
        id_map, classes, scores = arrays["instance_map"], arrays["classes"], arrays["scores"]
        assert id_map.shape == sizes[image_id] and np.issubdtype(id_map.dtype, np.integer)
        assert classes.dtype == np.int64 and scores.dtype == np.float32 and classes.shape == scores.shape
        assert attrs["count"] == len(classes) and int(id_map.min()) >= 0 and int(id_map.max()) <= len(classes)
        assert set(classes.tolist()) <= set(attrs["keys"]) and np.isfinite(scores).all()
    metrics = json.loads(Path(run["instances_eval"]).read_text())
    assert metrics["n_images"] == N_LABELLED


@pytest.mark.skipif(not HAS_COCO, reason="pycocotools is not importable")
def test_export_labels(run) -> None:
    from irnet_core.palette import read_label_png

    assert run["export"]["images"] == N_LABELLED
    reader = _reader(run["semantic_cuda"], run["infer_ids"])
    for image_id in run["infer_ids"]:
        png = read_label_png(Path(run["label_dir"]) / f"{image_id}.png")
        assert np.array_equal(png, reader.read(image_id, ["labels"])[0]["labels"])
    coco = json.loads(Path(run["coco"]).read_text())
    assert len(coco["images"]) == N_LABELLED and len(coco["annotations"]) == run["export"]["annotations"]
    semantic = json.loads(Path(run["semantic_eval"]).read_text())
    assert semantic["n_images"] == N_LABELLED and 0.0 <= semantic["miou"] <= 1.0
