# Calibration stage (docs/method-notes.md, "Thresholds"): the values behind `auto` thresholds. The CAM part runs
# after CAM inference (its relation thresholds feed IRNet's training); the label part keeps the calibration
# images' propagated scores, so that a sweep grid change reruns only the sweep and what reads its thresholds.


rule calibrate_cam_thresholds:
    input:
        cams=cam_shards(),
        images=[image_file(i) for i in THRESHOLD_IDS],  # the label-free rule reads their colour edges
        ground_truth=calibration_ground_truth(),
    output:
        thresholds=CAM_THRESHOLDS,
    log:
        "logs/calibrate_cam_thresholds/calibrate_cam_thresholds.log",
    benchmark:
        "benchmarks/calibrate_cam_thresholds/calibrate_cam_thresholds.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        grid=config["calibration"]["cam_grid"],
        offsets=config["calibration"]["relation_logit_offsets"],
        min_gain=config["calibration"]["min_gain"],
        min_images=config["calibration"]["min_images"],
        method=THRESHOLD_METHOD,
        dataset=dataset_params(),
        image_ids=THRESHOLD_IDS,
    script:
        "../workflow_scripts/calibrate_cam_thresholds.py"


rule propagate_calibration:
    input:
        cams=cam_shards(),
        maps=irnet_shards(),
        thresholds=threshold_files(*CAM_FLOOR_KEYS),
    output:
        scores=directory("results/calibration/scores.zarr"),
    log:
        "logs/propagate_calibration/propagate_calibration.log",
    benchmark:
        "benchmarks/propagate_calibration/propagate_calibration.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=GPU_JOBS,
    params:
        # The walk and the centroids, not the thresholds: a threshold change reruns only the sweeps.
        random_walk=walk_params(),
        centroids={k: config["instances"][k] for k in ("centroid_iterations", "weak_threshold")},
        cam_floor=cam_floor_params(),
        image_ids=THRESHOLD_IDS,
    script:
        "../workflow_scripts/propagate_calibration.py"


rule calibrate_label_thresholds:
    input:
        scores=rules.propagate_calibration.output.scores,
        cam=rules.calibrate_cam_thresholds.output.thresholds,
        images=[image_file(i) for i in THRESHOLD_IDS],  # the label-free rule reads their colour edges
        ground_truth=calibration_ground_truth(),
    output:
        thresholds=LABEL_THRESHOLDS,
        summary=report(
            CALIBRATION_SUMMARY,
            caption="../report/evaluation.rst",
            category="Evaluation",
            labels={"stage": "threshold calibration"},
        ),
    log:
        "logs/calibrate_label_thresholds/calibrate_label_thresholds.log",
    benchmark:
        "benchmarks/calibrate_label_thresholds/calibrate_label_thresholds.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        semantic_grid=config["calibration"]["semantic_grid"],
        instance_grid=config["calibration"]["instance_grid"],
        min_fragment=config["instances"]["min_fragment"],
        min_gain=config["calibration"]["min_gain"],
        min_images=config["calibration"]["min_images"],
        method=THRESHOLD_METHOD,
        dataset=dataset_params(),
        image_ids=THRESHOLD_IDS,
    script:
        "../workflow_scripts/calibrate_label_thresholds.py"
