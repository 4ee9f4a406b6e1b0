# CAM stage (method doc §2.3-2.5): train the classifier, infer multi-scale CAMs per shard, evaluate them.


rule train_cam:
    input:
        # Image paths come from labels.json: the images are inputs of prepare_dataset, so an edited image still
        # reruns training, and a 10,000-file input list here would make DAG building quadratic.
        labels=rules.prepare_dataset.output.labels,
        weights=backbone_weights_file(),
    output:
        model="results/cam/model.pt",
        history="results/cam/train_log.csv",
    log:
        "logs/train_cam/train_cam.log",
    benchmark:
        "benchmarks/train_cam/train_cam.tsv"
    conda:
        "../environment.yml"
    threads: 8
    resources:
        mem_mb=8000,
        runtime=24 * 60,
        gpu=GPU_JOBS,
    params:
        train=config["cam"]["train"],
        recipe=cam_recipe(),
        backbone=config["backbone"],
        dataset=dataset_params(),
        checkpoint_dir="results/checkpoints/train_cam",
    script:
        "../workflow_scripts/train_cam.py"


rule infer_cam:
    input:
        model=rules.train_cam.output.model,
        images=part_images,
        labels=part_label_files,
    output:
        cams=directory("results/cam/{part}.zarr"),
    log:
        "logs/infer_cam/{part}.log",
    benchmark:
        "benchmarks/infer_cam/{part}.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=shard_mem_mb(64),
        runtime=shard_runtime(8),
        gpu=GPU_JOBS,
    params:
        infer=config["cam"]["infer"],
        dataset=dataset_params(),
        image_ids=part_ids,
    script:
        "../workflow_scripts/infer_cam.py"


rule evaluate_cam_untrained:
    # Baseline: CAMs of an untrained network (same architecture and initial weights), best threshold.
    input:
        images=eval_images(),
        labels=eval_label_files(),
        ground_truth=eval_ground_truth(),
        weights=backbone_weights_file(),
    output:
        metrics="results/eval/cam_untrained.json",
    log:
        "logs/evaluate_cam_untrained/evaluate_cam_untrained.log",
    benchmark:
        "benchmarks/evaluate_cam_untrained/evaluate_cam_untrained.tsv"
    conda:
        "../environment.yml"
    threads: 8
    resources:
        mem_mb=4000,
        runtime=12 * 60,
        gpu=GPU_JOBS,  # it runs the untrained network over the eval images: CUDA where the trainings use it
    params:
        train=config["cam"]["train"],
        backbone=config["backbone"],
        infer=config["cam"]["infer"],
        sweep=config["cam"]["eval"]["sweep"],
        dataset=dataset_params(),
        image_ids=EVAL_IDS,
    script:
        "../workflow_scripts/evaluate_cam_untrained.py"


rule evaluate_cam:
    input:
        cams=cam_shards(),
        untrained=rules.evaluate_cam_untrained.output.metrics,
        ground_truth=eval_ground_truth(),
        thresholds=threshold_files(("cam", "eval", "threshold")),
    output:
        metrics=report(
            "results/eval/cam.json",
            caption="../report/evaluation.rst",
            category="Evaluation",
            labels={"stage": "CAM"},
        ),
    log:
        "logs/evaluate_cam/evaluate_cam.log",
    benchmark:
        "benchmarks/evaluate_cam/evaluate_cam.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        eval=config["cam"]["eval"],
        dataset=dataset_params(),
        image_ids=EVAL_IDS,
    script:
        "../workflow_scripts/evaluate_cam.py"
