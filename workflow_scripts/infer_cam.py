"""Rule infer_cam: multi-scale CAMs of one shard's images into a Zarr store."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import compute_device, run_job, voc_image_labels


def main():
    from irnet_core.pipeline.cam import infer_cam_shard

    ids = snakemake.params.image_ids
    infer_cam_shard(
        model_path=snakemake.input.model,
        image_ids=ids,
        image_paths=snakemake.input.images,
        image_labels=voc_image_labels(ids, snakemake.input.labels, snakemake.params.classes),
        scales=snakemake.params.infer["scales"],
        out_store=snakemake.output.cams,
        device=compute_device(snakemake),
    )


run_job(snakemake, main)
