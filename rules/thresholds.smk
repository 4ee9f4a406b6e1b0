# Helpers only (no rules): `auto` threshold keys read the calibration stages' files (rules/calibration.smk); the
# rules that use a threshold take those files as inputs only where the key is `auto`.


CAM_THRESHOLDS = "results/calibration/cam.json"
LABEL_THRESHOLDS = "results/calibration/labels.json"
CALIBRATION_SUMMARY = "results/eval/calibration.json"


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

# ---- the val list and the final models (rules/final_models.smk) -----------------------------------------------
