"""Rule propagate_semantic: random-walk semantic pseudo-labels of one shard."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import cam_floor, compute_device, resolved_settings, run_job


def main():
    from irnet_core.pipeline.pseudo_labels import propagate_semantic_shard
    from irnet_core.settings import RandomWalkSettings

    propagate_semantic_shard(
        cam_store=snakemake.input.cams,
        irnet_store=snakemake.input.maps,
        image_ids=snakemake.params.image_ids,
        random_walk=resolved_settings(snakemake, RandomWalkSettings, "random_walk", ("random_walk",)),
        cam_floor=cam_floor(snakemake),
        out_store=snakemake.output.labels,
        device=compute_device(snakemake),
    )


run_job(snakemake, main)
