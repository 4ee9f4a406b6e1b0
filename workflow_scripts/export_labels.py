"""Rule export_labels: VOC-palette PNGs and a COCO instances file of the pseudo-labels."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job


def main():
    from irnet_core.pipeline.pseudo_labels import export_labels

    export_labels(
        semantic_stores=snakemake.input.semantic,
        instance_stores=snakemake.input.instances,
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        out_dir=snakemake.output.semantic,
        out_coco=snakemake.output.coco,
    )


run_job(snakemake, main)
