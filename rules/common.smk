# Helpers only (no rules): config validation, the dataset reader, the image lists and their shards
# (irnet_core.run_plan), and the input functions of the shard rules. Everything here runs when the DAG is built,
# so it must stay cheap: lists are read once, files are only stat()-ed, and the demo's ids are computed from its
# settings without the files existing yet. Resources: rules/resources.smk; `auto` thresholds: rules/thresholds.smk.

import functools
import os
import sys

sys.path.insert(0, workflow.basedir)  # irnet_core from this checkout, even when it is not pip-installed

from irnet_core import run_plan
from irnet_core.config import validate_config, write_effective_config
from irnet_core.errors import InputError


def stop(message):
    """End DAG building with one line (no traceback): bad config and bad lists are user errors."""
    sys.exit(f"Error: {message}")


try:
    _validated = validate_config(config)
except InputError as exc:
    stop(exc)
config.clear()
config.update(_validated)

DEMO_ROOT = "results/demo/VOC2012"
ROOT = os.path.normpath(config["dataset"]["root"])
IS_DEMO = ROOT == DEMO_ROOT
N_SHARDS = config["compute"]["shards"]
SHARDS = list(range(N_SHARDS))


wildcard_constraints:
    shard=r"\d+",
    part=r"shard-\d+|val",
    exported=r"pseudo_labels|val_pseudo_labels|self_training/round-0",
    round=r"\d+",


def _open_dataset():
    """The dataset reader (irnet_core.data.dataset); the demo's files do not exist yet, and need not."""
    from irnet_core.data.dataset import open_dataset
    from irnet_core.data.voc import VOCDataset

    section = config["dataset"]
    try:
        if IS_DEMO:
            return VOCDataset(ROOT, classes=section["classes"], exif=section["exif_orientation"] or "ignore")
        if not os.path.isdir(ROOT):
            stop(
                f"config key dataset.root: folder {ROOT} does not exist "
                "(the demo runs with `make demo` or `--configfile configs/demo.yaml`)"
            )
        return open_dataset(section)
    except InputError as exc:
        stop(exc)


DATASET = _open_dataset()
# The format's own classes and EXIF policy, resolved: params and the effective configuration show what is used.
config["dataset"]["classes"] = list(DATASET.classes)
config["dataset"]["exif_orientation"] = DATASET.exif
# What this run uses, before anything runs: `snakemake -n` is enough to see it.
write_effective_config(config, "results/config.effective.yaml")


def _plan():
    """The run's lists (the demo's from its settings) and their shards (irnet_core.run_plan)."""
    from irnet_core.data.dataset import check_ground_truth, read_lists

    try:
        plan = run_plan.plan_run(
            config, run_plan.demo_lists(config) if IS_DEMO else read_lists(DATASET, config["dataset"])
        )
    except InputError as exc:
        stop(exc)
    if not IS_DEMO:
        # Images scored or calibrated on must have ground truth (COCO: a usable segmentation).
        try:
            check_ground_truth(DATASET, {"eval_list": plan.eval, "calibration_list": plan.calibration,
                                         "val_list": plan.val})  # fmt: skip
        except InputError as exc:
            stop(f"config key {exc}")
    return plan


PLAN = _plan()
TRAIN_IDS, INFER_IDS, EVAL_IDS, VAL_IDS = PLAN.train, PLAN.infer, PLAN.eval, PLAN.val
CALIBRATION_IDS = PLAN.calibration
SHARD_IDS, VERIFY_SHARD_IDS = PLAN.shards, PLAN.verify_shards
GROUND_TRUTH_SET = PLAN.ground_truth_ids
_TRAIN_SET, _INFER_SET = set(TRAIN_IDS), set(INFER_IDS)
# The calibration stages' images: the first images of the calibration list, or, without one, a stable sample of
# training images (they have CAMs; they get IRNet maps like the infer list).
THRESHOLD_IDS, THRESHOLDS_WITH_GT = PLAN.threshold_ids, PLAN.thresholds_with_ground_truth
THRESHOLD_METHOD = PLAN.threshold_method
_THRESHOLD_SET = set(THRESHOLD_IDS)


@functools.cache
def image_file(image_id):
    if IS_DEMO:
        return f"{ROOT}/JPEGImages/{image_id}.jpg"
    return str(DATASET.image_path(image_id))


def label_files(image_ids):
    """The files that hold these images' image-level labels (VOC: one XML each; COCO: the instances file)."""
    return list(dict.fromkeys(DATASET.annotation_files(image_ids, "labels")))


def ground_truth_files(image_ids):
    """The semantic and instance ground truth of these images (inputs of the stages that score against it)."""
    files = DATASET.annotation_files(image_ids, "semantic") + DATASET.annotation_files(image_ids, "instance")
    return list(dict.fromkeys(files))


def dataset_params():
    """How the stages open the dataset (format, root, classes, EXIF policy, format options): not the lists, which
    reach each rule as its own ids, not the index cache, which changes no result, and not the pixel limit, which
    admits images without changing any result (a param of verify_inputs only; the jobs read it from the config)."""
    run_keys = ("index_cache", "max_image_pixels")
    return {k: v for k, v in config["dataset"].items() if k not in run_plan.LIST_KEYS and k not in run_keys}


def _check_files():
    """Every image, annotation and ground-truth file the run reads exists (the demo's are made by the run)."""
    from irnet_core.run_plan import check_files_exist

    if IS_DEMO:
        return
    try:
        check_files_exist([image_file(i) for i in PLAN.every_id], "image")
        check_files_exist(label_files(PLAN.every_id), "annotation")
        check_files_exist(ground_truth_files(sorted(GROUND_TRUTH_SET)), "ground truth")
    except InputError as exc:
        stop(exc)


_check_files()


# ---- input functions and params -------------------------------------------------------------------------


def train_images(wildcards=None):
    return [image_file(i) for i in TRAIN_IDS]


def train_label_files(wildcards=None):
    return label_files(TRAIN_IDS)


# A part is one store of a shard stage: a shard of the images that train, get pseudo-labels or calibrate
# (`shard-K`), or the val list (`val`), on which the same rules run the pseudo-label pipeline for comparison with
# the final models. Val images never train a network, never give relations and never choose a threshold.
VAL_PART = "val"


def _is_val(wildcards):
    return wildcards.part == VAL_PART


def part_ids(wildcards):
    """The images of a part: CAMs are computed for all of them."""
    return VAL_IDS if _is_val(wildcards) else SHARD_IDS[int(wildcards.part.removeprefix("shard-"))]


def part_infer_ids(wildcards):
    """Images of a part that get pseudo-labels."""
    return VAL_IDS if _is_val(wildcards) else [i for i in part_ids(wildcards) if i in _INFER_SET]


def part_mapped_ids(wildcards):
    """Images of a part that get IRNet maps: the infer list's and the threshold calibration's."""
    if _is_val(wildcards):
        return VAL_IDS
    return [i for i in part_ids(wildcards) if i in _INFER_SET or i in _THRESHOLD_SET]


def part_images(wildcards):
    return [image_file(i) for i in part_ids(wildcards)]


def part_label_files(wildcards):
    return label_files(part_ids(wildcards))


def part_mapped_images(wildcards):
    return [image_file(i) for i in part_mapped_ids(wildcards)]


def shard_ids(wildcards):
    """The images of CAM shard `{shard}` (the rules that have no val part: relations)."""
    return SHARD_IDS[int(wildcards.shard)]


def shard_train_ids(wildcards):
    return [i for i in shard_ids(wildcards) if i in _TRAIN_SET]


def eval_images(wildcards=None):
    return [image_file(i) for i in EVAL_IDS]


def eval_label_files(wildcards=None):
    return label_files(EVAL_IDS)


def eval_ground_truth(wildcards=None):
    return ground_truth_files(EVAL_IDS)


def stage_shards(stage):
    return [f"results/{stage}/shard-{k}.zarr" for k in SHARDS]


# The exported pseudo-labels: of the infer list (what users train on) and of the val list. The instance
# pseudo-labels of the infer list are self-training's round 0 (results/self_training/round-0/instances.json);
# results/pseudo_labels/instances.json is the last round's (rules/self_training.smk).
PSEUDO_LABELS = "results/pseudo_labels"
VAL_EXPORT = "val_pseudo_labels"
VAL_PSEUDO_LABELS = f"results/{VAL_EXPORT}"
ROUNDS = config["self_training"]["rounds"]
ROUND_ZERO = "self_training/round-0"


def exported_stores(stage):
    """The stores of ``stage`` that an export reads: every shard's, or the val part's."""

    def stores(wildcards):
        return [f"results/{stage}/{VAL_PART}.zarr"] if wildcards.exported == VAL_EXPORT else stage_shards(stage)

    return stores


def exported_ids(wildcards):
    return VAL_IDS if wildcards.exported == VAL_EXPORT else INFER_IDS


def infer_ids(wildcards=None):
    return INFER_IDS


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


def backbone_weights_file():
    """A local `backbone.weights` file is an input of every job that reads it (its content digest also enters
    their fingerprints): replacing it reruns them. `none` and `imagenet` name no file of the workflow."""
    weights = config["backbone"]["weights"]
    return [] if weights in ("none", "imagenet") else [weights]


def irnet_cam_model(wildcards=None):
    """IRNet's backbone comes from the CAM network unless it uses the plain pretrained weights."""
    return [] if irnet_backbone_source() == "pretrained_frozen" else ["results/cam/model.pt"]


def shard_train_images(wildcards):
    return [image_file(i) for i in shard_train_ids(wildcards)]


def final_summary_input():
    return ["results/eval/final.json"] if VAL_IDS else []
