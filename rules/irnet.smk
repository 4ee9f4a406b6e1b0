# IRNet stage (method doc §2.8-2.10): train the boundary and displacement branches on the mined relations,
# calibrate the mean displacement in its own rule, then infer both maps per shard.


rule train_irnet:
    input:
        relations=stage_shards("relations"),
        labels=rules.prepare_dataset.output.labels,  # image paths (see train_cam)
        cam_model=irnet_cam_model(),
        weights=backbone_weights_file(),
    output:
        model="results/irnet/model.pt",
        history="results/irnet/train_log.csv",
    log:
        "logs/train_irnet/train_irnet.log",
    benchmark:
        "benchmarks/train_irnet/train_irnet.tsv"
    conda:
        "../environment.yml"
    threads: 8
    resources:
        mem_mb=12000,
        runtime=24 * 60,
        gpu=GPU_JOBS,
    params:
        train=config["irnet"]["train"],
        backbone=config["backbone"],
        backbone_source=irnet_backbone_source(),
        dataset=dataset_params(),
        image_ids=TRAIN_IDS,
        checkpoint_dir="results/checkpoints/train_irnet",
    script:
        "../workflow_scripts/train_irnet.py"


rule calibrate_displacement:
    # The mean displacement (the paper's MeanShift value) over training images, as an explicit step.
    input:
        model=rules.train_irnet.output.model,
        images=displacement_calibration_images,
    output:
        calibration="results/irnet/calibration.json",
    log:
        "logs/calibrate_displacement/calibrate_displacement.log",
    benchmark:
        "benchmarks/calibrate_displacement/calibrate_displacement.tsv"
    conda:
        "../environment.yml"
    threads: 8
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPU_JOBS,
    params:
        calibration=config["irnet"]["calibration"],
        pad_size=config["irnet"]["train"]["crop_size"],
        dataset=dataset_params(),
        image_ids=displacement_calibration_ids(),
    script:
        "../workflow_scripts/calibrate_displacement.py"


rule infer_irnet:
    input:
        model=rules.train_irnet.output.model,
        calibration=rules.calibrate_displacement.output.calibration,
        images=part_mapped_images,
    output:
        maps=directory("results/irnet/{part}.zarr"),
    log:
        "logs/infer_irnet/{part}.log",
    benchmark:
        "benchmarks/infer_irnet/{part}.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=shard_mem_mb(32),
        runtime=shard_runtime(4),
        gpu=GPU_JOBS,
    params:
        infer=config["irnet"]["infer"],
        dataset=dataset_params(),
        image_ids=part_mapped_ids,
    script:
        "../workflow_scripts/infer_irnet.py"
