"""Rule prepare_dataset: image-level labels, sizes and digests of the training images."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job


def main():
    from irnet_core.pipeline.common import prepare_labels

    prepare_labels(
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        out_path=snakemake.output.labels,
        verified=list(snakemake.input.verified),
    )


run_job(snakemake, main)
