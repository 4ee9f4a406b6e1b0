"""Rule extract_instances: instance pseudo-labels of one shard from the displacement field."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import compute_device, resolved_settings, run_job, settings


def main():
    from irnet_core.pipeline.pseudo_labels import extract_instances_shard
    from irnet_core.settings import InstanceSettings, WalkSettings

    extract_instances_shard(
        cam_store=snakemake.input.cams,
        irnet_store=snakemake.input.maps,
        image_ids=snakemake.params.image_ids,
        walk=settings(WalkSettings, snakemake.params.random_walk, "random_walk"),
        instances=resolved_settings(snakemake, InstanceSettings, "instances", ("instances",)),
        out_store=snakemake.output.instances,
        device=compute_device(snakemake),
    )


run_job(snakemake, main)
