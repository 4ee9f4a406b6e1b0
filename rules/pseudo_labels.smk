# Pseudo-label stage (method doc §2.11-2.13): random-walk propagation of CAMs over boundary affinities into
# semantic labels, instance extraction from the displacement field, and the exports users train on.


rule propagate_semantic:
    input:
        cams="results/cam/shard-{shard}.zarr",
        maps="results/irnet/shard-{shard}.zarr",
        thresholds=threshold_files(("random_walk", "sem_bg_threshold"), *CAM_FLOOR_KEYS),
    output:
        labels=directory("results/semantic/shard-{shard}.zarr"),
    log:
        "logs/propagate_semantic/shard-{shard}.log",
    benchmark:
        "benchmarks/propagate_semantic/shard-{shard}.tsv"
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
        image_ids=shard_infer_ids,
    script:
        "../workflow_scripts/propagate_semantic.py"


rule extract_instances:
    input:
        cams="results/cam/shard-{shard}.zarr",
        maps="results/irnet/shard-{shard}.zarr",
        thresholds=threshold_files(("instances", "bg_threshold")),
    output:
        instances=directory("results/instances/shard-{shard}.zarr"),
    log:
        "logs/extract_instances/shard-{shard}.log",
    benchmark:
        "benchmarks/extract_instances/shard-{shard}.tsv"
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
        image_ids=shard_infer_ids,
    script:
        "../workflow_scripts/extract_instances.py"


rule export_labels:
    input:
        semantic=stage_shards("semantic"),
        instances=stage_shards("instances"),
    output:
        semantic=directory("results/pseudo_labels/SegmentationClass"),
        coco="results/pseudo_labels/instances.json",
    log:
        "logs/export_labels/export_labels.log",
    benchmark:
        "benchmarks/export_labels/export_labels.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        dataset=dataset_params(),
        image_ids=INFER_IDS,
    script:
        "../workflow_scripts/export_labels.py"
