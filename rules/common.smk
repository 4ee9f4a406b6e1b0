# Helpers only (no rules): config validation, the image lists, shard assignment and input functions.
# Everything here runs when the DAG is built, so it must stay cheap: lists are read once, files are only
# stat()-ed, and the demo's ids are computed from its settings without the files existing yet.

import functools
import os
import sys

sys.path.insert(0, workflow.basedir)  # irnet_core from this checkout, even when it is not pip-installed

from irnet_core.config import validate_config, write_effective_config
from irnet_core.errors import InputError
from irnet_core.shards import split_into_shards


def stop(message):
    """End DAG building with one line (no traceback): bad config and bad lists are user errors."""
    sys.exit(f"Error: {message}")


try:
    _validated = validate_config(config)
except InputError as exc:
    stop(exc)
config.clear()
config.update(_validated)
# What this run uses, before anything runs: `snakemake -n` is enough to see it.
write_effective_config(config, "results/config.effective.yaml")

DEMO_ROOT = "results/demo/VOC2012"
ROOT = os.path.normpath(config["dataset"]["root"])
IS_DEMO = ROOT == DEMO_ROOT
N_SHARDS = config["compute"]["shards"]
SHARDS = list(range(N_SHARDS))


wildcard_constraints:
    shard=r"\d+",


def list_path(key):
    path = config["dataset"][key]
    return path if os.path.isabs(path) else os.path.join(ROOT, path)


def _demo_lists():
    from irnet_core.data.demo import demo_split_ids

    splits = demo_split_ids(config["demo"]["n_images"], config["demo"]["n_labelled"])
    lists = {}
    for key in ("train_list", "infer_list", "eval_list"):
        name = os.path.splitext(os.path.basename(config["dataset"][key]))[0]
        if name not in splits:
            stop(f"config key dataset.{key}: the demo dataset has lists {sorted(splits)}, not {name!r}")
        lists[key] = splits[name]
    return lists


def _disk_lists():
    from irnet_core.data.voc import read_id_list

    if not os.path.isdir(ROOT):
        stop(
            f"config key dataset.root: folder {ROOT} does not exist "
            "(the demo runs with `make demo` or `--configfile configs/demo.yaml`)"
        )
    try:
        return {key: read_id_list(list_path(key)) for key in ("train_list", "infer_list", "eval_list")}
    except InputError as exc:
        stop(exc)


_lists = _demo_lists() if IS_DEMO else _disk_lists()
TRAIN_IDS = _lists["train_list"]
INFER_IDS = _lists["infer_list"]
EVAL_IDS = _lists["eval_list"]
_not_inferred = sorted(set(EVAL_IDS) - set(INFER_IDS))
if _not_inferred:
    stop(
        f"config key dataset.eval_list: {len(_not_inferred)} id(s) are not in dataset.infer_list, "
        f"e.g. {_not_inferred[0]!r}"
    )
if not TRAIN_IDS:
    stop(f"{list_path('train_list')}: the training list is empty")

# CAMs are computed for every image that trains IRNet or gets pseudo-labels; shards split that union.
_TRAIN_SET = set(TRAIN_IDS)
_INFER_SET = set(INFER_IDS)
SHARD_IDS = split_into_shards(_TRAIN_SET | _INFER_SET, N_SHARDS)


@functools.cache
def image_file(image_id):
    if IS_DEMO:
        return f"{ROOT}/JPEGImages/{image_id}.jpg"
    from irnet_core.data.voc import image_path

    return str(image_path(ROOT, image_id))


@functools.cache
def label_file(image_id):
    """The file that holds an image's image-level labels: its XML annotation, else its class PNG."""
    xml = f"{ROOT}/Annotations/{image_id}.xml"
    if IS_DEMO or os.path.exists(xml):
        return xml
    return f"{ROOT}/SegmentationClass/{image_id}.png"


def _check_exist(paths, what):
    if IS_DEMO:
        return
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        stop(f"{missing[0]}: {what} does not exist ({len(missing)} missing in all)")


_check_exist([image_file(i) for i in sorted(_TRAIN_SET | _INFER_SET)], "image")
_check_exist([label_file(i) for i in sorted(_TRAIN_SET | _INFER_SET)], "annotation (XML or SegmentationClass PNG)")
_check_exist([f"{ROOT}/SegmentationClass/{i}.png" for i in EVAL_IDS], "ground truth of an eval image")


# ---- input functions and params -------------------------------------------------------------------------


def demo_outputs():
    from irnet_core.data.demo import demo_split_ids

    ids = demo_split_ids(config["demo"]["n_images"], config["demo"]["n_labelled"])["train_aug"]
    files = {
        "images": [f"{DEMO_ROOT}/JPEGImages/{i}.jpg" for i in ids],
        "annotations": [f"{DEMO_ROOT}/Annotations/{i}.xml" for i in ids],
        "classes": [f"{DEMO_ROOT}/SegmentationClass/{i}.png" for i in ids],
        "objects": [f"{DEMO_ROOT}/SegmentationObject/{i}.png" for i in ids],
    }
    return files


def train_images(wildcards=None):
    return [image_file(i) for i in TRAIN_IDS]


def train_label_files(wildcards=None):
    return [label_file(i) for i in TRAIN_IDS]


def shard_ids(wildcards):
    return SHARD_IDS[int(wildcards.shard)]


def shard_train_ids(wildcards):
    return [i for i in shard_ids(wildcards) if i in _TRAIN_SET]


def shard_infer_ids(wildcards):
    return [i for i in shard_ids(wildcards) if i in _INFER_SET]


def shard_images(wildcards):
    return [image_file(i) for i in shard_ids(wildcards)]


def shard_label_files(wildcards):
    return [label_file(i) for i in shard_ids(wildcards)]


def shard_infer_images(wildcards):
    return [image_file(i) for i in shard_infer_ids(wildcards)]


def eval_images(wildcards=None):
    return [image_file(i) for i in EVAL_IDS]


def eval_label_files(wildcards=None):
    return [label_file(i) for i in EVAL_IDS]


def eval_class_gt(wildcards=None):
    return [f"{ROOT}/SegmentationClass/{i}.png" for i in EVAL_IDS]


def eval_object_gt(wildcards=None):
    return [f"{ROOT}/SegmentationObject/{i}.png" for i in EVAL_IDS]


def stage_shards(stage):
    return [f"results/{stage}/shard-{k}.zarr" for k in SHARDS]


def cam_shards():
    return stage_shards("cam")


def irnet_shards():
    return stage_shards("irnet")


def uses_pretrained_weights():
    return config["backbone"]["weights"] != "none"


def cam_recipe():
    """The optimiser recipe that train_cam uses: the paper's with pretrained weights, else from scratch."""
    return config["cam"]["paper_recipe" if uses_pretrained_weights() else "scratch_recipe"]


def irnet_backbone_source():
    source = config["irnet"]["backbone_source"]
    if source == "auto":
        return "pretrained_frozen" if uses_pretrained_weights() else "cam_frozen"
    return source


def irnet_cam_model(wildcards=None):
    """IRNet's backbone comes from the CAM network unless it uses the plain pretrained weights."""
    return [] if irnet_backbone_source() == "pretrained_frozen" else ["results/cam/model.pt"]


def gpu_jobs():
    """GPU count that GPU-friendly rules request (a resource, so profiles can map it to a scheduler)."""
    device = config["compute"]["device"]
    if device == "cpu":
        return 0
    if device.startswith("cuda"):
        return 1
    # Importing torch here would cost seconds on every DAG build; the driver's presence is enough.
    from irnet_core.hardware import nvidia_gpu_present

    return 1 if nvidia_gpu_present() else 0


GPU_JOBS = gpu_jobs()


def shard_runtime(seconds_per_image):
    """Runtime (minutes) of a shard job: a start-up allowance plus a per-image budget, doubled per retry.

    The per-image figures are generous CPU timings of VOC-sized images (a GPU is much faster), so that a
    scheduler's time limit scales with the shard instead of one fixed worst case.
    """

    def runtime(wildcards, attempt):
        images = len(SHARD_IDS[int(wildcards.shard)])
        return attempt * (10 + -(-images * seconds_per_image // 60))

    return runtime


def shard_mem_mb(wildcards, attempt):
    """Peak memory of a shard job grows with the image size, not with the shard: a fixed base plus retries."""
    return 4000 * attempt


def report_targets():
    """The report's figures and tables (rules/report.smk); rule all builds them so `--report` finds them all."""
    return REPORT_FILES


def export_file_names():
    """Image file names for the COCO export (the images themselves are inputs upstream already)."""
    return [os.path.basename(image_file(i)) for i in INFER_IDS]


def shard_train_images(wildcards):
    return [image_file(i) for i in shard_train_ids(wildcards)]


def calibration_ids():
    return TRAIN_IDS[: config["irnet"]["calibration"]["max_images"]]


def calibration_images(wildcards=None):
    return [image_file(i) for i in calibration_ids()]


def benchmark_files(shards, image_ids):
    """The benchmark file of every job that the rules defined so far can run, in their order; wildcards are
    shard and image_id."""
    patterns = [str(defined.benchmark) for defined in workflow.rules if defined.benchmark is not None]
    paths = expand(patterns, shard=shards, image_id=image_ids, allow_missing=True)
    return [path for path in dict.fromkeys(paths) if "{" not in path]
