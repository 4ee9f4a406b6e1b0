# Dataset stage: the synthetic demo dataset (only when dataset.root is the demo folder) and the validated
# image-level labels of the training list.


# The input check's verdicts, by content digest: one cache per checker (shard jobs, prepare_dataset), each read
# by all. Outside every output, so Snakemake's deleting of outputs before a rerun keeps them.
VERIFY_CACHE = "results/verify/cache"


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
    # ground truth of the scored and calibration images decoded and matched: one job per shard (the CAM shards'
    # hash), first in a run (priority). Verdicts are cached by content digest outside the outputs
    # (results/verify/cache/), so a rerun decodes only new or changed files (irnet_core/pipeline/verify.py).
    # Nothing consumes its output: an edge would rerun the trainings whenever an infer-only image changed (and
    # `ancient` edges hide other reruns, Snakemake issue 4166); prepare_dataset is the gate, see below.
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
    priority: 100
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=shard_mem_mb(16),
        runtime=shard_runtime(1, verify_ids),
    params:
        dataset=dataset_params(),
        max_image_pixels=config["dataset"]["max_image_pixels"],
        image_ids=verify_ids,
        ground_truth_ids=verify_ground_truth_ids,
        cache_dir=VERIFY_CACHE,
    script:
        "../workflow_scripts/verify_inputs.py"


rule prepare_dataset:
    # The gate before every training: the input check of every list (verdicts of the shard jobs reused by content;
    # whatever they have not checked yet is decoded here), then the image-level labels, sizes and content digests
    # of the training images. Stops on bad files and on training images without any label.
    input:
        images=train_images,
        labels=train_label_files,
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
        # One image at a time (16 B per pixel, docs/scaling.md); a run targeting a training alone decodes every
        # list here, about 4 ms per COCO-sized image.
        mem_mb=4000,
        runtime=60 + len(PLAN.every_id) // 600,
    params:
        dataset=dataset_params(),
        image_ids=TRAIN_IDS,
        cache_dir=VERIFY_CACHE,
    script:
        "../workflow_scripts/prepare_dataset.py"
