"""Rule export_instances: a COCO instances file of IRNet's instance pseudo-labels."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job


def main():
    from irnet_core.pipeline.pseudo_labels import export_instance_labels

    export_instance_labels(
        instance_stores=snakemake.input.instances,
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        out_coco=snakemake.output.coco,
    )


run_job(snakemake, main)
