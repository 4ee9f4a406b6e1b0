"""Rule report_final: val predictions beside ground truth (one figure per final model) and training curves."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job


def main():
    from irnet_core.pipeline.report import report_final

    report_final(
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        semantic_dir=snakemake.input.semantic,
        instance_coco=snakemake.input.instances,
        semantic_history=snakemake.input.semantic_history,
        instance_history=snakemake.input.instance_history,
        out_semantic=snakemake.output.semantic,
        out_instances=snakemake.output.instances,
        out_semantic_curves=snakemake.output.semantic_curves,
        out_instance_curves=snakemake.output.instance_curves,
    )


run_job(snakemake, main)
