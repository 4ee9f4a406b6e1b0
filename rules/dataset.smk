# Dataset stage: the synthetic demo dataset (only when dataset.root is the demo folder) and the validated
# image-level labels of the training list.


if IS_DEMO:

    rule make_demo_dataset:
        # Deterministic synthetic data in the exact VOC 2012 layout; ground truth is read only by evaluation.
        output:
            **demo_outputs(),
        log:
            "logs/make_demo_dataset/make_demo_dataset.log",
        benchmark:
            "benchmarks/make_demo_dataset/make_demo_dataset.tsv"
        conda:
            "../environment.yml"
        threads: 2
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            demo=config["demo"],
            classes=config["dataset"]["classes"],
        script:
            "../workflow_scripts/make_demo_dataset.py"


rule verify_inputs:
    # Every image of every list fully decoded (EXIF policy, pixel limit, recorded size), its labels read, and the
    # ground truth of the scored and calibration images decoded and matched, before any training starts: one job
    # per shard (the CAM shards' hash). A per-shard cache outside the outputs, keyed by content digests, makes a
    # rerun decode only new or changed files (irnet_core/pipeline/verify.py).
    input:
        images=verify_images,
        labels=verify_label_files,
        ground_truth=verify_ground_truth,
    output:
        verified="results/verify/shard-{shard}.json",
    log:
        "logs/verify_inputs/shard-{shard}.log",
    benchmark:
        "benchmarks/verify_inputs/shard-{shard}.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=shard_mem_mb(16),
        runtime=shard_runtime(1, VERIFY_SHARD_IDS),
    params:
        dataset=dataset_params(),
        max_image_pixels=config["dataset"]["max_image_pixels"],
        image_ids=verify_ids,
        ground_truth_ids=verify_ground_truth_ids,
        cache="results/verify/cache/shard-{shard}.json",
    script:
        "../workflow_scripts/verify_inputs.py"


rule prepare_dataset:
    # Image-level labels, sizes and content digests of the training images (sizes and digests from the input
    # check, which decoded them); stops on training images without any label.
    input:
        images=train_images,
        labels=train_label_files,
        verified=ancient(verified_shards()),
    output:
        labels="results/dataset/labels.json",
    log:
        "logs/prepare_dataset/prepare_dataset.log",
    benchmark:
        "benchmarks/prepare_dataset/prepare_dataset.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        dataset=dataset_params(),
        image_ids=TRAIN_IDS,
    script:
        "../workflow_scripts/prepare_dataset.py"
