# Helpers only (no rules): config validation, the image lists, shard assignment and input functions.
# Everything here runs when the DAG is built, so it must stay cheap: lists are read once, files are only
# stat()-ed, and the demo's ids are computed from its settings without the files existing yet.

import functools
import os
import re
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

DEMO_ROOT = "results/demo/VOC2012"
ROOT = os.path.normpath(config["dataset"]["root"])
IS_DEMO = ROOT == DEMO_ROOT
N_SHARDS = config["compute"]["shards"]
SHARDS = list(range(N_SHARDS))
LIST_KEYS = ("train_list", "infer_list", "eval_list", "calibration_list", "val_list")


wildcard_constraints:
    shard=r"\d+",


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


def _demo_lists():
    from irnet_core.data.demo import demo_split_ids

    demo = config["demo"]
    try:
        splits = demo_split_ids(demo["n_images"], demo["n_labelled"], demo["n_calibration"], demo["n_val"])
    except InputError as exc:
        stop(f"config key demo.{exc}")
    lists = {}
    for key in LIST_KEYS:
        if config["dataset"][key] is None:
            continue
        name = os.path.splitext(os.path.basename(config["dataset"][key]))[0]
        if name not in splits:
            stop(f"config key dataset.{key}: the demo dataset has lists {sorted(splits)}, not {name!r}")
        lists[key] = splits[name]
    return lists


def _read_lists():
    from irnet_core.data.dataset import read_lists

    try:
        return read_lists(DATASET, config["dataset"])
    except InputError as exc:
        stop(exc)


_lists = _demo_lists() if IS_DEMO else _read_lists()
TRAIN_IDS = _lists.get("train_list", [])
INFER_IDS = _lists.get("infer_list", [])
EVAL_IDS = _lists.get("eval_list", [])
# Only the first calibration.max_images are used: a long list (e.g. a COCO split) costs no extra inference.
CALIBRATION_IDS = _lists.get("calibration_list", [])[: config["calibration"]["max_images"]]
VAL_IDS = _lists.get("val_list", [])


def _check_lists():
    """The relations between the lists that the stages rely on, each a one-line error naming the keys."""
    if not TRAIN_IDS:
        stop(f"config key dataset.train_list: the training list {config['dataset']['train_list']} is empty")
    rules = (
        ("eval_list", EVAL_IDS, "is not in dataset.infer_list", lambda i: i not in _INFER_SET),
        ("calibration_list", CALIBRATION_IDS, "is also in dataset.eval_list", lambda i: i in _EVAL_SET),
        ("val_list", VAL_IDS, "also trains or gets pseudo-labels", lambda i: i in _TRAIN_SET | _INFER_SET),
    )
    for key, ids, problem, bad in rules:
        offending = [i for i in ids if bad(i)]
        if offending:
            stop(f"config key dataset.{key}: {len(offending)} id(s) {problem}, e.g. {offending[0]!r}")


_TRAIN_SET, _INFER_SET, _EVAL_SET = set(TRAIN_IDS), set(INFER_IDS), set(EVAL_IDS)
_check_lists()


def _check_ground_truth():
    """Images scored or calibrated on must have ground truth (COCO: a usable segmentation); one line otherwise."""
    from irnet_core.data.dataset import check_ground_truth

    if IS_DEMO:
        return
    try:
        check_ground_truth(DATASET, {"eval_list": EVAL_IDS, "calibration_list": CALIBRATION_IDS, "val_list": VAL_IDS})
    except InputError as exc:
        stop(f"config key {exc}")


_check_ground_truth()
# CAMs are computed for every image that trains IRNet, gets pseudo-labels or calibrates thresholds; shards split
# that union by a hash of the id.
_CALIBRATION_SET = set(CALIBRATION_IDS)
SHARD_IDS = split_into_shards(_TRAIN_SET | _INFER_SET | _CALIBRATION_SET, N_SHARDS)
# The input check (verify_inputs) covers every list, the val list too, by the same hash; an image's verify
# shard is its CAM shard.
VERIFY_SCOPE = _TRAIN_SET | _INFER_SET | _CALIBRATION_SET | set(VAL_IDS)
VERIFY_SHARD_IDS = split_into_shards(VERIFY_SCOPE, N_SHARDS)
# Images whose ground truth is read (scored or calibrated on): checked with their images.
GROUND_TRUTH_SET = _EVAL_SET | _CALIBRATION_SET | set(VAL_IDS)


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
    return {k: v for k, v in config["dataset"].items() if k not in LIST_KEYS and k not in run_keys}


def _check_exist(paths, what):
    if IS_DEMO:
        return
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        stop(f"{missing[0]}: {what} does not exist ({len(missing)} missing in all)")


_check_exist([image_file(i) for i in sorted(_TRAIN_SET | _INFER_SET | _CALIBRATION_SET | set(VAL_IDS))], "image")
_check_exist(label_files(sorted(_TRAIN_SET | _INFER_SET | _CALIBRATION_SET | set(VAL_IDS))), "annotation")
_check_exist(ground_truth_files(sorted(_EVAL_SET | _CALIBRATION_SET | set(VAL_IDS))), "ground truth")


# ---- input functions and params -------------------------------------------------------------------------


def demo_outputs():
    from irnet_core.data.demo import demo_split_ids

    demo = config["demo"]
    lists = demo_split_ids(demo["n_images"], demo["n_labelled"], demo["n_calibration"], demo["n_val"])
    ids = lists["train_aug"] + lists.get("val", [])
    files = {
        **{name: f"{DEMO_ROOT}/ImageSets/Segmentation/{name}.txt" for name in lists},
        "images": [f"{DEMO_ROOT}/JPEGImages/{i}.jpg" for i in ids],
        "annotations": [f"{DEMO_ROOT}/Annotations/{i}.xml" for i in ids],
        "classes": [f"{DEMO_ROOT}/SegmentationClass/{i}.png" for i in ids],
        "objects": [f"{DEMO_ROOT}/SegmentationObject/{i}.png" for i in ids],
    }
    return files


def train_images(wildcards=None):
    return [image_file(i) for i in TRAIN_IDS]


def train_label_files(wildcards=None):
    return label_files(TRAIN_IDS)


def shard_ids(wildcards):
    return SHARD_IDS[int(wildcards.shard)]


def shard_train_ids(wildcards):
    return [i for i in shard_ids(wildcards) if i in _TRAIN_SET]


def shard_infer_ids(wildcards):
    return [i for i in shard_ids(wildcards) if i in _INFER_SET]


def shard_mapped_ids(wildcards):
    """Images of a shard that get IRNet maps: the infer list's and the threshold calibration's."""
    return [i for i in shard_ids(wildcards) if i in _INFER_SET or i in _THRESHOLD_SET]


def shard_images(wildcards):
    return [image_file(i) for i in shard_ids(wildcards)]


def shard_label_files(wildcards):
    return label_files(shard_ids(wildcards))


def shard_mapped_images(wildcards):
    return [image_file(i) for i in shard_mapped_ids(wildcards)]


def eval_images(wildcards=None):
    return [image_file(i) for i in EVAL_IDS]


def eval_label_files(wildcards=None):
    return label_files(EVAL_IDS)


def eval_ground_truth(wildcards=None):
    return ground_truth_files(EVAL_IDS)


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


def backbone_weights_file():
    """A local `backbone.weights` file is an input of every job that reads it (its content digest also enters
    their fingerprints): replacing it reruns them. `none` and `imagenet` name no file of the workflow."""
    weights = config["backbone"]["weights"]
    return [] if weights in ("none", "imagenet") else [weights]


def irnet_cam_model(wildcards=None):
    """IRNet's backbone comes from the CAM network unless it uses the plain pretrained weights."""
    return [] if irnet_backbone_source() == "pretrained_frozen" else ["results/cam/model.pt"]


def gpu_jobs():
    """GPUs each CUDA-using job requests (resource `gpu`, which profiles map to the scheduler): decided by the
    configuration, never by the host that submits the jobs.

    `compute.device` cpu: none; cuda or cuda:N: one. auto: for a local run (jobs run here, only --cores given),
    one when this machine has an NVIDIA driver; for a run that submits jobs (--jobs, e.g. profiles/slurm), one
    when the run declares GPUs (`resources: gpu=N` in the profile or on the command line), else the run stops:
    a login node's own hardware says nothing about the compute nodes, and silently training on CPU for a day is
    the worst outcome.
    """
    device = config["compute"]["device"]
    if device == "cpu":
        return 0
    if device.startswith("cuda"):
        return 1
    declared = getattr(workflow.global_resources.get("gpu"), "value", workflow.global_resources.get("gpu"))
    submits_jobs = getattr(workflow.global_resources.get("_nodes"), "value", None) is not None
    if not submits_jobs or not workflow.is_main_process:
        # Importing torch here would cost seconds on every DAG build; the driver's presence is enough.
        from irnet_core.hardware import nvidia_gpu_present

        return 1 if nvidia_gpu_present() else 0
    if declared:
        return 1
    stop(
        "config key compute.device: 'auto' cannot tell from here whether the jobs' nodes have GPUs; set it to "
        "cuda (each CUDA-using job requests a GPU) or cpu, or declare the GPUs the run may use (resources: gpu=N "
        "in the profile or on the command line)"
    )


GPU_JOBS = gpu_jobs()


def shard_runtime(seconds_per_image, shard_ids=None):
    """Runtime (minutes) of a shard job: a start-up allowance plus a per-image budget, doubled per retry.

    The per-image figures are generous CPU timings of VOC-sized images (a GPU is much faster), so that a
    scheduler's time limit scales with the shard instead of one fixed worst case. ``shard_ids``: the ids per
    shard (default: the CAM shards').
    """

    def runtime(wildcards, attempt):
        images = len((shard_ids or SHARD_IDS)[int(wildcards.shard)])
        return attempt * (10 + -(-images * seconds_per_image // 60))

    return runtime


def _largest_image_pixels(input):
    """Pixels of the largest image a shard job holds: from the image headers (cheap), else from the sizes its
    CAM store records; 0 while the inputs do not exist yet (a dry run), when the base figure stands alone."""
    from irnet_core.data.images import image_size
    from irnet_core.store import recorded_sizes

    try:
        if "images" in input.keys() and len(input.images):
            limit = config["dataset"]["max_image_pixels"]
            return max(h * w for h, w in (image_size(path, max_pixels=limit) for path in input.images))
        if "cams" in input.keys():
            return max((h * w for h, w in recorded_sizes(input.cams)), default=0)
    except (InputError, OSError, ValueError):
        pass
    return 0


def shard_mem_mb(bytes_per_pixel):
    """Peak memory (MB) of a shard job: a base for the process and the network, plus a per-pixel figure times the
    largest image of the shard (not the shard's size: images are processed one at a time), doubled per retry.
    Snakemake evaluates it when the job is about to run, when its inputs exist (the figures: docs/scaling.md)."""

    def mem_mb(wildcards, input, attempt):
        return attempt * (2000 + -(-_largest_image_pixels(input) * bytes_per_pixel // 2**20))

    return mem_mb


def final_targets():
    """What `snakemake` builds by default: the exports, and with an eval list the evaluation, the summary and the
    report's figures and tables (so that `--report` finds them all). Without ground truth there is nothing to
    score: the pseudo-labels are the result. With a val list, the final models and their evaluation on it."""
    exports = ["results/pseudo_labels/instances.json", *verified_shards()]
    scored = [*exports, "results/summary.json", *REPORT_FILES] if EVAL_IDS else exports
    return [*scored, *FINAL_FILES]


def verify_ids(wildcards):
    return VERIFY_SHARD_IDS[int(wildcards.shard)]


def verify_ground_truth_ids(wildcards):
    return [i for i in verify_ids(wildcards) if i in GROUND_TRUTH_SET]


def verify_images(wildcards):
    return [image_file(i) for i in verify_ids(wildcards)]


def verify_label_files(wildcards):
    return label_files(verify_ids(wildcards))


def verify_ground_truth(wildcards):
    return ground_truth_files(verify_ground_truth_ids(wildcards))


def verified_shards(wildcards=None):
    """Every shard's input check: targets of a run (rule all and the stage targets), never inputs of a stage."""
    return [f"results/verify/shard-{k}.json" for k in SHARDS]


# The input check's verdicts, by content digest: one cache per checker (shard jobs, prepare_dataset), each read
# by all. Outside every output, so Snakemake's deleting of outputs before a rerun keeps them.
VERIFY_CACHE = "results/verify/cache"


def shard_train_images(wildcards):
    return [image_file(i) for i in shard_train_ids(wildcards)]


def displacement_calibration_ids():
    """The mean-displacement pass runs over the first training images (not the infer list: the model must not
    depend on which images get labelled)."""
    return TRAIN_IDS[: config["irnet"]["calibration"]["max_images"]]


def displacement_calibration_images(wildcards=None):
    return [image_file(i) for i in displacement_calibration_ids()]


# ---- thresholds: `auto` keys read the calibration stages' files (rules/calibration.smk) -------------------

CAM_THRESHOLDS = "results/calibration/cam.json"
LABEL_THRESHOLDS = "results/calibration/labels.json"
CALIBRATION_SUMMARY = "results/eval/calibration.json"


def _threshold_sample():
    """(image ids, with ground truth) of the calibration stages: the first images of the calibration list, or,
    without one, a stable sample of training images (they have CAMs; they get IRNet maps like the infer list)."""
    from irnet_core.thresholds import label_free_sample

    if CALIBRATION_IDS:
        return CALIBRATION_IDS, True
    return label_free_sample(TRAIN_IDS, INFER_IDS, config["calibration"]["max_images"]), False


THRESHOLD_IDS, THRESHOLDS_WITH_GT = _threshold_sample()
_THRESHOLD_SET = set(THRESHOLD_IDS)


def threshold_files(*key_paths):
    """The calibration files that the `auto` keys among ``key_paths`` (tuples such as ("relations", "conf_fg"))
    read: inputs of the rules that use them, so that a number given by the user depends on no calibration."""
    from irnet_core.thresholds import CALIBRATED_NAME, is_auto

    files = []
    for key_path in key_paths:
        if is_auto(config, key_path):
            cam_part = CALIBRATED_NAME[key_path] in ("cam", "conf_fg", "conf_bg")
            files.append(CAM_THRESHOLDS if cam_part else LABEL_THRESHOLDS)
    return sorted(set(files))


# The CAM veto of the semantic labels reads relations.conf_bg (irnet_core.random_walk.veto_by_cam).
CAM_FLOOR_KEYS = [("relations", "conf_bg")] if config["random_walk"]["cam_veto"] else []


def cam_floor_params():
    """Whether the semantic labels' walk is vetoed by the CAMs, and the floor's configured value (auto or a number)."""
    return {"cam_veto": config["random_walk"]["cam_veto"], "conf_bg": config["relations"]["conf_bg"]}


def walk_params():
    """The random walk's own settings, without the semantic labels' threshold (instances have their own)."""
    return {key: config["random_walk"][key] for key in ("beta", "exp_times", "radius")}


def configured_thresholds():
    """Every threshold key and its configured value (a number or auto), as (section, ..., key) -> value."""
    from irnet_core.thresholds import CALIBRATED_NAME, configured_value

    return {key_path: configured_value(config, key_path) for key_path in CALIBRATED_NAME}


def calibration_ground_truth(wildcards=None):
    return ground_truth_files(THRESHOLD_IDS) if THRESHOLDS_WITH_GT else []


def benchmark_files(shards, image_ids):
    """The benchmark file of every job that the rules defined so far can run, in their order; wildcards are
    shard and image_id."""
    patterns = [str(defined.benchmark) for defined in workflow.rules if defined.benchmark is not None]
    # A rule's pattern carries the wildcard constraints (`{shard,\d+}`), which expand() does not fill in.
    patterns = [re.sub(r"\{\s*(\w+)\s*,(?:[^{}]|\{[^{}]*\})*\}", r"{\1}", pattern) for pattern in patterns]
    paths = expand(patterns, shard=shards, image_id=image_ids, allow_missing=True)
    return [path for path in dict.fromkeys(paths) if "{" not in path]


# ---- the val list and the final models (rules/final_models.smk) -----------------------------------------------


def val_images():
    return [image_file(i) for i in VAL_IDS]


def val_label_files():
    """Image-level labels of the val images: the pseudo-label pipeline run on them uses them like on any image."""
    return label_files(VAL_IDS)


def val_runtime(seconds_per_image):
    """Runtime (minutes) of a job over the whole val list, as shard_runtime for one shard."""

    def runtime(wildcards, attempt):
        return attempt * (10 + -(-len(VAL_IDS) * seconds_per_image // 60))

    return runtime


def training_part(model):
    """A final model's section without its `infer` settings, which only the prediction rule reads."""
    return {key: value for key, value in config["final_models"][model].items() if key != "infer"}


def final_cam_model():
    """Without pretrained weights the final models start from the CAM network's backbone."""
    return [] if uses_pretrained_weights() else ["results/cam/model.pt"]


# Val images shown in the final models' figures: the first few of the list.
FINAL_REPORT_IDS = VAL_IDS[: min(4, config["report"]["images"])]


def final_summary_input():
    return ["results/eval/final.json"] if VAL_IDS else []
