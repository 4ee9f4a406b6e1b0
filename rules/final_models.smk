# Final models (method doc §4, the paper's last step): Mask R-CNN on the instance pseudo-labels and DeepLabv3 on
# the semantic ones, evaluated on dataset.val_list. For comparison on the same images, the pseudo-label pipeline
# itself runs on the val list: the shard stages' own rules, on their `val` part (results/<stage>/val.zarr,
# results/val_pseudo_labels; rules/common.smk, part_ids), with the networks trained on the train list.
# Library code: irnet_core/models/final.py and irnet_core/pipeline/final.py.


# The final Mask R-CNN: the last self-training round's (round 0 without rounds).
FINAL_INSTANCE = round_path(ROUND_MODEL_DIR, ROUNDS)
# Val images shown in the final models' figures: the first few of the list.
FINAL_REPORT_IDS = VAL_IDS[: min(4, config["report"]["images"])]


rule train_instance_model:
    # Mask R-CNN on a self-training round's instance targets of the infer list (round 0: IRNet's pseudo-labels);
    # the final model is the last round's (rules/self_training.smk).
    input:
        coco=ROUND_TARGETS,
        labels=rules.prepare_dataset.output.labels,  # image digests (see train_cam)
        cam_model=final_cam_model(),
        weights=backbone_weights_file(),
    output:
        model=f"{ROUND_MODEL_DIR}/model.pt",
        history=f"{ROUND_MODEL_DIR}/train_log.csv",
    log:
        "logs/train_instance_model/round-{round}.log",
    benchmark:
        "benchmarks/train_instance_model/round-{round}.tsv"
    conda:
        "../environment.yml"
    threads: 8
    resources:
        mem_mb=16000,
        runtime=24 * 60,
        gpu=GPU_JOBS,
    params:
        final=training_part("instance"),  # not infer: a prediction setting reruns prediction only
        backbone=config["backbone"],
        dataset=dataset_params(),
        image_ids=INFER_IDS,
        checkpoint_dir="results/checkpoints/train_instance_model/round-{round}",
    script:
        "../workflow_scripts/train_instance_model.py"


rule train_semantic_model:
    # DeepLabv3 on the exported semantic pseudo-labels of the infer list.
    input:
        label_dir=f"{PSEUDO_LABELS}/SegmentationClass",
        labels=rules.prepare_dataset.output.labels,  # image digests (see train_cam)
        cam_model=final_cam_model(),
        weights=backbone_weights_file(),
    output:
        model="results/final/semantic/model.pt",
        history="results/final/semantic/train_log.csv",
    log:
        "logs/train_semantic_model/train_semantic_model.log",
    benchmark:
        "benchmarks/train_semantic_model/train_semantic_model.tsv"
    conda:
        "../environment.yml"
    threads: 8
    resources:
        mem_mb=16000,
        runtime=24 * 60,
        gpu=GPU_JOBS,
    params:
        final=training_part("semantic"),
        backbone=config["backbone"],
        dataset=dataset_params(),
        image_ids=INFER_IDS,
        checkpoint_dir="results/checkpoints/train_semantic_model",
    script:
        "../workflow_scripts/train_semantic_model.py"


rule predict_instances:
    # The val predictions of a round's Mask R-CNN (the last round's: the final model's).
    input:
        model=rules.train_instance_model.output.model,
        images=val_images(),
    output:
        coco=f"{ROUND_MODEL_DIR}/predictions.json",
    log:
        "logs/predict_instances/round-{round}.log",
    benchmark:
        "benchmarks/predict_instances/round-{round}.tsv"
    conda:
        "../environment.yml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=shard_runtime(4, val_ids),
        gpu=GPU_JOBS,
    params:
        final=config["final_models"]["instance"],
        dataset=dataset_params(),
        image_ids=VAL_IDS,
    script:
        "../workflow_scripts/predict_instances.py"


rule predict_semantic:
    input:
        model=rules.train_semantic_model.output.model,
        images=val_images(),
    output:
        labels=directory("results/final/semantic/SegmentationClass"),
    log:
        "logs/predict_semantic/predict_semantic.log",
    benchmark:
        "benchmarks/predict_semantic/predict_semantic.tsv"
    conda:
        "../environment.yml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=shard_runtime(4, val_ids),
        gpu=GPU_JOBS,
    params:
        final=config["final_models"]["semantic"],
        dataset=dataset_params(),
        image_ids=VAL_IDS,
    script:
        "../workflow_scripts/predict_semantic.py"


rule evaluate_final:
    # Final models, the pseudo-label pipeline and the CAM baselines, all on the val images.
    input:
        semantic=rules.predict_semantic.output.labels,
        instances=f"{FINAL_INSTANCE}/predictions.json",
        pseudo_semantic=f"{VAL_PSEUDO_LABELS}/SegmentationClass",
        pseudo_instances=f"{VAL_PSEUDO_LABELS}/instances.json",
        cams=f"results/cam/{VAL_PART}.zarr",
        ground_truth=ground_truth_files(VAL_IDS),
        thresholds=threshold_files(("cam", "eval", "threshold"), ("evaluation", "cam_baseline_threshold")),
    output:
        metrics=report(
            "results/eval/final.json",
            caption="../report/evaluation.rst",
            category="Evaluation",
            labels={"stage": "final models (val)"},
        ),
    log:
        "logs/evaluate_final/evaluate_final.log",
    benchmark:
        "benchmarks/evaluate_final/evaluate_final.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        cam_eval=config["cam"]["eval"],
        evaluation=config["evaluation"],
        dataset=dataset_params(),
        image_ids=VAL_IDS,
    script:
        "../workflow_scripts/evaluate_final.py"


rule report_final:
    # Predictions beside ground truth for a few val images (one figure per final model) and the training curves.
    input:
        semantic=rules.predict_semantic.output.labels,
        instances=f"{FINAL_INSTANCE}/predictions.json",
        semantic_history=rules.train_semantic_model.output.history,
        instance_history=f"{FINAL_INSTANCE}/train_log.csv",
        ground_truth=ground_truth_files(FINAL_REPORT_IDS),
    output:
        semantic=report(
            "results/report/final/semantic_model.png",
            caption="../report/final_models.rst",
            category="Final models",
            labels={"model": "DeepLabv3 (semantic)", "content": "val predictions"},
        ),
        instances=report(
            "results/report/final/instance_model.png",
            caption="../report/final_models.rst",
            category="Final models",
            labels={"model": "Mask R-CNN (instances)", "content": "val predictions"},
        ),
        semantic_curves=report(
            "results/report/curves/train_semantic_model.png",
            caption="../report/training_final.rst",
            category="Training",
            labels={"network": "DeepLabv3 (train_semantic_model)"},
        ),
        instance_curves=report(
            "results/report/curves/train_instance_model.png",
            caption="../report/training_final.rst",
            category="Training",
            labels={"network": "Mask R-CNN (train_instance_model)"},
        ),
    log:
        "logs/report_final/report_final.log",
    benchmark:
        "benchmarks/report_final/report_final.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        dataset=dataset_params(),
        image_ids=FINAL_REPORT_IDS,
    script:
        "../workflow_scripts/report_final.py"


FINAL_FILES = ["results/eval/final.json", *rules.report_final.output] if VAL_IDS else []
