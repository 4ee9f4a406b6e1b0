"""Rule verify_inputs: one shard's images decoded and ground truth read, before any training."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job


def main():
    from irnet_core.pipeline.verify import verify_inputs

    verify_inputs(
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        ground_truth_ids=snakemake.params.ground_truth_ids,
        out_path=snakemake.output.verified,
        cache_dir=snakemake.params.cache_dir,
        name=f"shard-{snakemake.wildcards.shard}",
    )


run_job(snakemake, main)
