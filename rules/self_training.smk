# Self-training rounds (beyond the paper; docs/method-notes.md, "Self-training rounds"; config self_training).
# Round 0's instance targets are IRNet's pseudo-labels (export_instances); the Mask R-CNN of round j is trained
# on round j's targets (train_instance_model, rules/final_models.smk); round j >= 1 lets round j-1's model
# predict the infer list and combines those predictions with round j-1's targets. Every round's files are
# cached: raising self_training.rounds runs only the new rounds, and the final model is the last round's.


rule predict_train_instances:
    # Round j's predictions: the Mask R-CNN of round j-1 on the images that get pseudo-labels.
    input:
        model=previous_round_model,
        images=infer_images(),
    output:
        coco=f"{ROUND_DIR}/predictions.json",
    log:
        "logs/predict_train_instances/round-{round}.log",
    benchmark:
        "benchmarks/predict_train_instances/round-{round}.tsv"
    wildcard_constraints:
        round=LATER_ROUND,
    conda:
        "../environment.yml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=shard_runtime(4, infer_ids),
        gpu=GPU_JOBS,
    params:
        final=config["final_models"]["instance"],
        dataset=dataset_params(),
        image_ids=INFER_IDS,
    script:
        "../workflow_scripts/predict_instances.py"


rule combine_round:
    # Round j's targets: round j-1's, split where one holds two confident predictions, and the confident
    # predictions that lie in no target of their class (irnet_core/self_training.py).
    input:
        previous=previous_round_targets,
        predictions=rules.predict_train_instances.output.coco,
        labels=rules.prepare_dataset.output.labels,  # the image-level labels
    output:
        coco=ROUND_TARGETS,
    log:
        "logs/combine_round/round-{round}.log",
    benchmark:
        "benchmarks/combine_round/round-{round}.tsv"
    wildcard_constraints:
        round=LATER_ROUND,
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        self_training=round_params(),
        dataset=dataset_params(),
        image_ids=INFER_IDS,
    script:
        "../workflow_scripts/combine_round.py"


rule publish_instances:
    # The exported instance pseudo-labels are the last round's targets (rounds 0: IRNet's).
    input:
        round_path(ROUND_TARGETS, ROUNDS),
    output:
        f"{PSEUDO_LABELS}/instances.json",
    log:
        "logs/publish_instances/publish_instances.log",
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/publish_instances.py"


rule evaluate_round:
    # A round's targets on the evaluated images (AP, recall, merges, per class) and, with a val list, the val
    # predictions of the Mask R-CNN trained on them.
    input:
        targets=ROUND_TARGETS,
        val_predictions=round_val_predictions,
        ground_truth=ground_truth_files(EVAL_IDS + VAL_IDS),
    output:
        metrics="results/eval/self_training/round-{round}.json",
    log:
        "logs/evaluate_round/round-{round}.log",
    benchmark:
        "benchmarks/evaluate_round/round-{round}.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        dataset=dataset_params(),
        eval_ids=EVAL_IDS,
        val_ids=VAL_IDS,
    script:
        "../workflow_scripts/evaluate_round.py"
