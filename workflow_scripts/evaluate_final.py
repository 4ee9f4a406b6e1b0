"""Rule evaluate_final: final models, pseudo-label pipeline and CAM baselines on the val images (final.json)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job, with_thresholds


def main():
    from irnet_core.pipeline.final import evaluate_final

    evaluate_final(
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        semantic_dir=snakemake.input.semantic,
        instance_coco=snakemake.input.instances,
        pseudo_semantic_dir=snakemake.input.pseudo_semantic,
        pseudo_instance_coco=snakemake.input.pseudo_instances,
        cam_store=snakemake.input.cams,
        thresholds={
            "cam_eval_threshold": with_thresholds(snakemake, snakemake.params.cam_eval, ("cam", "eval"))["threshold"],
            "cam_baseline_threshold": with_thresholds(snakemake, snakemake.params.evaluation, ("evaluation",))[
                "cam_baseline_threshold"
            ],
        },
        out_path=snakemake.output.metrics,
    )


run_job(snakemake, main)
