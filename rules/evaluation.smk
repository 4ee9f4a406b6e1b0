# Evaluation against ground truth (method doc §2.14) and the run summary printed at the end of the demo.


rule evaluate_semantic:
    input:
        semantic=f"{PSEUDO_LABELS}/SegmentationClass",
        ground_truth=eval_ground_truth(),
    output:
        metrics=report(
            "results/eval/semantic.json",
            caption="../report/evaluation.rst",
            category="Evaluation",
            labels={"stage": "semantic pseudo-labels"},
        ),
    log:
        "logs/evaluate_semantic/evaluate_semantic.log",
    benchmark:
        "benchmarks/evaluate_semantic/evaluate_semantic.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        dataset=dataset_params(),
        image_ids=EVAL_IDS,
    script:
        "../workflow_scripts/evaluate_semantic.py"


rule evaluate_instances:
    input:
        instances=stage_shards("instances"),
        coco=f"{PSEUDO_LABELS}/instances.json",  # COCO sources: scored with COCOeval against the official file
        cams=cam_shards(),
        ground_truth=eval_ground_truth(),
        thresholds=threshold_files(("evaluation", "cam_baseline_threshold")),
    output:
        metrics=report(
            "results/eval/instances.json",
            caption="../report/evaluation.rst",
            category="Evaluation",
            labels={"stage": "instance pseudo-labels"},
        ),
    log:
        "logs/evaluate_instances/evaluate_instances.log",
    benchmark:
        "benchmarks/evaluate_instances/evaluate_instances.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        dataset=dataset_params(),
        evaluation=config["evaluation"],
        image_ids=EVAL_IDS,
    script:
        "../workflow_scripts/evaluate_instances.py"


rule summarize:
    # One table: CAM / random-walk mIoU, instance mAP50 (IRNet and baseline), wall time of each stage.
    input:
        cam="results/eval/cam.json",
        semantic="results/eval/semantic.json",
        instances="results/eval/instances.json",
        calibration=CALIBRATION_SUMMARY,
        final=final_summary_input(),  # the val rows, with a val list
        rounds=round_eval_files(),  # the self-training rows, with rounds
    output:
        summary="results/summary.json",
        table="results/summary.txt",
    log:
        "logs/summarize/summarize.log",
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        benchmark_dir="benchmarks",
        thresholds={".".join(key): value for key, value in configured_thresholds().items()},
        stage_order=[other.name for other in workflow.rules],  # the rules defined so far: pipeline order
    script:
        "../workflow_scripts/summarize.py"
