"""Rule evaluate_instances: instance mAP of IRNet's instances and of the CAM-components baseline."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job, with_thresholds


def main():
    from irnet_core.pipeline.pseudo_labels import evaluate_instances

    evaluate_instances(
        instance_stores=snakemake.input.instances,
        cam_stores=snakemake.input.cams,
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        baseline_threshold=with_thresholds(snakemake, snakemake.params.evaluation, ("evaluation",))[
            "cam_baseline_threshold"
        ],
        out_path=snakemake.output.metrics,
        exported_coco=snakemake.input.coco,
    )


run_job(snakemake, main)
