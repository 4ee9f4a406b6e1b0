"""Rule export_semantic: VOC-palette PNGs of the semantic pseudo-labels."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job


def main():
    from irnet_core.pipeline.pseudo_labels import export_semantic_labels

    export_semantic_labels(
        semantic_stores=snakemake.input.semantic,
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        out_dir=snakemake.output.labels,
    )


run_job(snakemake, main)
