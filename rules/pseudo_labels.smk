# Pseudo-label stage (method doc §2.11-2.13): random-walk propagation of CAMs over boundary affinities into
# semantic labels, instance extraction from the displacement field, and the exports users train on (the
# instance pseudo-labels are round 0 of self-training: rules/self_training.smk).


rule propagate_semantic:
    input:
        cams="results/cam/{part}.zarr",
        maps="results/irnet/{part}.zarr",
        thresholds=threshold_files(("random_walk", "sem_bg_threshold"), *CAM_FLOOR_KEYS),
    output:
        labels=directory("results/semantic/{part}.zarr"),
    log:
        "logs/propagate_semantic/{part}.log",
    benchmark:
        "benchmarks/propagate_semantic/{part}.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=shard_mem_mb(64),
        runtime=shard_runtime(4),
        gpu=GPU_JOBS,
    params:
        random_walk=config["random_walk"],
        cam_floor=cam_floor_params(),
        image_ids=part_infer_ids,
    script:
        "../workflow_scripts/propagate_semantic.py"


rule extract_instances:
    input:
        cams="results/cam/{part}.zarr",
        maps="results/irnet/{part}.zarr",
        thresholds=threshold_files(("instances", "bg_threshold")),
    output:
        instances=directory("results/instances/{part}.zarr"),
    log:
        "logs/extract_instances/{part}.log",
    benchmark:
        "benchmarks/extract_instances/{part}.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=shard_mem_mb(128),
        runtime=shard_runtime(8),
        gpu=GPU_JOBS,
    params:
        random_walk=walk_params(),  # not sem_bg_threshold: the semantic labels' own threshold
        instances=config["instances"],
        image_ids=part_infer_ids,
    script:
        "../workflow_scripts/extract_instances.py"


rule export_semantic:
    # The semantic pseudo-labels of the infer list (results/pseudo_labels, what users train on), or of the val
    # list (results/val_pseudo_labels, scored against the final models).
    input:
        semantic=exported_stores("semantic"),
    output:
        labels=directory("results/{exported}/SegmentationClass"),
    log:
        "logs/export_semantic/{exported}.log",
    benchmark:
        "benchmarks/export_semantic/{exported}.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        dataset=dataset_params(),
        image_ids=exported_ids,
    script:
        "../workflow_scripts/export_semantic.py"


rule export_instances:
    # IRNet's instance pseudo-labels of the infer list, which are self-training's round 0 (published as
    # results/pseudo_labels/instances.json by publish_instances: rules/self_training.smk), or of the val list.
    input:
        instances=exported_stores("instances"),
    output:
        coco="results/{exported}/instances.json",
    log:
        "logs/export_instances/{exported}.log",
    benchmark:
        "benchmarks/export_instances/{exported}.tsv"
    wildcard_constraints:
        exported=f"{ROUND_ZERO}|{VAL_EXPORT}",
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        dataset=dataset_params(),
        image_ids=exported_ids,
    script:
        "../workflow_scripts/export_instances.py"
