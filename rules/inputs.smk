# Helpers only (no rules): the input functions and params of the dataset, IRNet, final-model and report rules
# (Snakemake's linter keeps functions out of the files that define rules). The shard stages' own input functions
# are in rules/common.smk.


# ---- dataset.smk -----------------------------------------------------------------------------------


def demo_outputs():
    from irnet_core.tools.demo_generator import demo_split_ids

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


# ---- irnet.smk -------------------------------------------------------------------------------------


def displacement_calibration_ids():
    """The mean-displacement pass runs over the first training images (not the infer list: the model must not
    depend on which images get labelled)."""
    return TRAIN_IDS[: config["irnet"]["calibration"]["max_images"]]


def displacement_calibration_images(wildcards=None):
    return [image_file(i) for i in displacement_calibration_ids()]


# ---- final_models.smk ------------------------------------------------------------------------------


def val_images():
    return [image_file(i) for i in VAL_IDS]


def val_ids(wildcards=None):
    return VAL_IDS


def training_part(model):
    """A final model's section without its `infer` settings, which only the prediction rule reads."""
    return {key: value for key, value in config["final_models"][model].items() if key != "infer"}


def final_cam_model():
    """Without pretrained weights the final models start from the CAM network's backbone."""
    return [] if uses_pretrained_weights() else ["results/cam/model.pt"]


# ---- self_training.smk -----------------------------------------------------------------------------

# Rounds after 0, which predict and combine (round 0 is IRNet's export).
LATER_ROUND = r"[1-9]\d*"


def infer_images():
    return [image_file(i) for i in INFER_IDS]


# A round's files: its targets (and predictions) and its Mask R-CNN (and its val predictions), as patterns of
# {round}; round_path(pattern, j) fills one in.
ROUND_DIR = "results/self_training/round-{round}"
ROUND_TARGETS = f"{ROUND_DIR}/instances.json"
ROUND_MODEL_DIR = "results/final/instance/round-{round}"


def round_path(pattern, round_index):
    return pattern.format(round=round_index)


def previous_round_model(wildcards):
    return round_path(f"{ROUND_MODEL_DIR}/model.pt", int(wildcards.round) - 1)


def previous_round_targets(wildcards):
    return round_path(ROUND_TARGETS, int(wildcards.round) - 1)


def round_val_predictions(wildcards):
    return [round_path(f"{ROUND_MODEL_DIR}/predictions.json", wildcards.round)] if VAL_IDS else []


def round_eval_files():
    """Every round's scores, when there are rounds and images to score them on."""
    return [f"results/eval/self_training/round-{j}.json" for j in range(ROUNDS + 1)] if ROUNDS and EVAL_IDS else []


def round_params():
    """How a round combines (not `rounds`: raising it must not rerun the rounds that exist)."""
    return {key: value for key, value in config["self_training"].items() if key != "rounds"}


# ---- report.smk ------------------------------------------------------------------------------------


def report_image(wildcards):
    return image_file(wildcards.image_id)


def report_store(stage):
    """The shard store of ``stage`` that holds the sampled image."""

    def store(wildcards):
        return f"results/{stage}/shard-{REPORT_SHARD[wildcards.image_id]}.zarr"

    return store


def report_ground_truth(wildcards):
    return ground_truth_files([wildcards.image_id])


def benchmark_files(image_ids):
    """The benchmark file of every job that the rules defined so far can run, in their order; wildcards are
    shard, part, exported, round and image_id (the table reads those that exist)."""
    patterns = [str(defined.benchmark) for defined in workflow.rules if defined.benchmark is not None]
    # A rule's pattern carries the wildcard constraints (`{shard,\d+}`), which expand() does not fill in.
    patterns = [re.sub(r"\{\s*(\w+)\s*,(?:[^{}]|\{[^{}]*\})*\}", r"{\1}", pattern) for pattern in patterns]
    val = [VAL_PART] if VAL_IDS else []
    paths = expand(patterns, shard=SHARDS, part=[f"shard-{k}" for k in SHARDS] + val, image_id=image_ids,
                   exported=["pseudo_labels", ROUND_ZERO] + ([VAL_EXPORT] if VAL_IDS else []),
                   round=range(ROUNDS + 1), allow_missing=True)  # fmt: skip
    return [path for path in dict.fromkeys(paths) if "{" not in path]
