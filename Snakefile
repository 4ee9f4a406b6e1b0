# IRNet (Ahn, Cho, Kwak, CVPR 2019) as a Snakemake workflow: image-level labels -> CAMs -> inter-pixel
# relations -> IRNet (class boundaries + displacement field) -> random walk -> semantic and instance
# pseudo-labels -> exports and evaluation. Stages, files and rerun semantics: docs/architecture.md.
#
#   snakemake --cores all --configfile configs/demo.yaml   # demo: synthetic data, from-scratch ResNet-18
#   snakemake --cores all                                  # documented defaults: the paper's setting on VOC 2012
#   snakemake --cores all --configfile configs/voc12.yaml  # the same, every paper setting spelled out
#   snakemake --profile profiles/slurm                     # every job submitted to SLURM
#
# Config layers: irnet_core/config.schema.yaml defaults < config.yaml < --configfile < --config; a dry run writes
# the effective configuration to results/config.effective.yaml.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/resources.smk"
include: "rules/thresholds.smk"
include: "rules/inputs.smk"
include: "rules/dataset.smk"
include: "rules/cam.smk"
include: "rules/relations.smk"
include: "rules/irnet.smk"
include: "rules/calibration.smk"
include: "rules/pseudo_labels.smk"
include: "rules/evaluation.smk"
include: "rules/final_models.smk"
include: "rules/self_training.smk"
include: "rules/report.smk"


# What `snakemake` builds by default: the exports, and with an eval list the evaluation, the summary and the
# report's figures and tables (so that `--report` finds them all); without ground truth there is nothing to
# score, and the pseudo-labels are the result. With a val list, the final models and their evaluation on it.
rule all:
    default_target: True
    input:
        f"{PSEUDO_LABELS}/instances.json",
        verified_shards(),
        ["results/summary.json", *REPORT_FILES] if EVAL_IDS else [],
        FINAL_FILES,


rule cams:
    input:
        "results/eval/cam.json",
        verified_shards(),


rule irnet:
    input:
        irnet_shards(),


rule pseudo_labels:
    input:
        f"{PSEUDO_LABELS}/instances.json",
        "results/eval/semantic.json",
        "results/eval/instances.json",


rule final_models:
    input:
        "results/eval/final.json",
