"""Rule infer_irnet: boundary maps and calibrated displacement fields of one shard."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import compute_device, job_dataset, run_job


def main():
    from irnet_core.pipeline.irnet import infer_irnet_shard

    infer_irnet_shard(
        model_path=snakemake.input.model,
        calibration_path=snakemake.input.calibration,
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        pad_size=snakemake.params.infer["pad_size"],
        max_long_side=snakemake.params.infer["max_long_side"],
        out_store=snakemake.output.maps,
        device=compute_device(snakemake),
    )


run_job(snakemake, main)
