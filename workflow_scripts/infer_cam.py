"""Rule infer_cam: multi-scale CAMs of one shard's images into a Zarr store."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import compute_device, job_dataset, run_job, settings


def main():
    from irnet_core.pipeline.cam import infer_cam_shard
    from irnet_core.settings import CamInferSettings

    infer_cam_shard(
        model_path=snakemake.input.model,
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        infer=settings(CamInferSettings, snakemake.params.infer, "cam.infer"),
        num_workers=snakemake.config["compute"]["num_workers"],
        out_store=snakemake.output.cams,
        device=compute_device(snakemake),
    )


run_job(snakemake, main)
