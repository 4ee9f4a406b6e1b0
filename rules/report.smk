# Report assets, all marked with report() so that after a run `snakemake --report results/report.html` (or .zip)
# builds one self-contained file: per-stage figures of a deterministic sample of eval images, the training
# curves, per-class tables of every evaluation JSON and the wall time / peak memory of every job.
# Library code: irnet_core/report/ (figures, tables) and irnet_core/pipeline/report.py (entry points).

import re

from irnet_core.report import select_images

# Eval images shown in the report: a fixed hash order of the eval list, training images (with relations) first.
REPORT_IDS = select_images(EVAL_IDS, TRAIN_IDS, config["report"]["images"])
REPORT_SHARD = {image_id: k for k, ids in enumerate(SHARD_IDS) for image_id in ids if image_id in REPORT_IDS}
# Unique file names (image first, then stage): the zip report keeps only the base name of each file.
REPORT_FIGURE_FILES = expand(
    "results/report/figures/{image_id}_{kind}.png",
    image_id=REPORT_IDS,
    kind=["cam", "relations", "irnet", "pseudo_labels"],
)


rule report_figures:
    input:
        image=report_image,
        cams=report_store("cam"),
        relations=report_store("relations"),
        maps=report_store("irnet"),
        semantic=report_store("semantic"),
        instances=report_store("instances"),
        ground_truth=report_ground_truth,
    output:
        cam=report(
            "results/report/figures/{image_id}_cam.png",
            caption="../report/cam.rst",
            category="CAM",
            labels={"image": "{image_id}"},
        ),
        relations=report(
            "results/report/figures/{image_id}_relations.png",
            caption="../report/relations.rst",
            category="Relations",
            labels={"image": "{image_id}"},
        ),
        irnet=report(
            "results/report/figures/{image_id}_irnet.png",
            caption="../report/irnet.rst",
            category="IRNet",
            labels={"image": "{image_id}"},
        ),
        pseudo_labels=report(
            "results/report/figures/{image_id}_pseudo_labels.png",
            caption="../report/pseudo_labels.rst",
            category="Pseudo-labels",
            labels={"image": "{image_id}"},
        ),
    log:
        "logs/report_figures/{image_id}.log",
    benchmark:
        "benchmarks/report_figures/{image_id}.tsv"
    wildcard_constraints:
        # Only sampled images: their shard is known, and no other file name can match by accident.
        image_id="|".join(re.escape(image_id) for image_id in REPORT_IDS) or "(?!)",
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        dataset=dataset_params(),
        instances=config["instances"],
    script:
        "../workflow_scripts/report_figures.py"


rule report_curves:
    input:
        cam=rules.train_cam.output.history,
        irnet=rules.train_irnet.output.history,
    output:
        cam=report(
            "results/report/curves/train_cam.png",
            caption="../report/training_cam.rst",
            category="Training",
            labels={"network": "CAM classifier (train_cam)"},
        ),
        irnet=report(
            "results/report/curves/train_irnet.png",
            caption="../report/training_irnet.rst",
            category="Training",
            labels={"network": "IRNet (train_irnet)"},
        ),
    log:
        "logs/report_curves/report_curves.log",
    benchmark:
        "benchmarks/report_curves/report_curves.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/report_curves.py"


rule report_calibration:
    input:
        calibration=CALIBRATION_SUMMARY,
    output:
        curves=report(
            "results/report/curves/calibration.png",
            caption="../report/calibration.rst",
            category="Evaluation",
            labels={"stage": "threshold calibration", "content": "curves"},
        ),
    log:
        "logs/report_calibration/report_calibration.log",
    benchmark:
        "benchmarks/report_calibration/report_calibration.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/report_calibration.py"


# Benchmark files of every job defined above (rule report_tables, below, cannot time itself), in rule order.
# Listing them, rather than globbing benchmarks/, keeps out files of other configurations (e.g. shards that no
# longer exist after compute.shards was lowered); the table reads those that exist.
REPORT_BENCHMARKS = benchmark_files(REPORT_IDS)


rule report_tables:
    # Runs after every other job of the report and the pipeline (its inputs are their end products), so the
    # benchmark table covers all of them.
    input:
        cam="results/eval/cam.json",
        semantic="results/eval/semantic.json",
        instances="results/eval/instances.json",
        summary="results/summary.json",
        figures=REPORT_FIGURE_FILES,
        curves=rules.report_curves.output,
        calibration=rules.report_calibration.output,
    output:
        cam=report(
            "results/report/tables/cam.html",
            caption="../report/evaluation_table.rst",
            category="Evaluation",
            labels={"stage": "CAM", "content": "table per class"},
        ),
        semantic=report(
            "results/report/tables/semantic.html",
            caption="../report/evaluation_table.rst",
            category="Evaluation",
            labels={"stage": "semantic pseudo-labels", "content": "table per class"},
        ),
        instances=report(
            "results/report/tables/instances.html",
            caption="../report/evaluation_table.rst",
            category="Evaluation",
            labels={"stage": "instance pseudo-labels", "content": "table per class"},
        ),
        per_class=report(
            "results/report/tables/per_class.html",
            caption="../report/per_class.rst",
            category="Evaluation",
            labels={"stage": "all stages", "content": "table per class"},
        ),
        benchmarks=report(
            "results/report/tables/benchmarks.html",
            caption="../report/benchmarks.rst",
            category="Benchmarks",
            labels={"table": "wall time and peak memory per job"},
        ),
    log:
        "logs/report_tables/report_tables.log",
    benchmark:
        "benchmarks/report_tables/report_tables.tsv"
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        benchmarks=REPORT_BENCHMARKS,
    script:
        "../workflow_scripts/report_tables.py"


# Everything the report shows; rule all requests it (Snakefile), so `--report` finds every file after a run.
REPORT_FILES = [
    *REPORT_FIGURE_FILES,
    *rules.report_curves.output,
    *rules.report_calibration.output,
    *rules.report_tables.output,
]
