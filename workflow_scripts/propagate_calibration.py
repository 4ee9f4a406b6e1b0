"""Rule propagate_calibration: the calibration images' propagated semantic and instance scores."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import cam_floor, compute_device, run_job, settings


def main():
    from irnet_core.pipeline.calibration import propagate_calibration_scores
    from irnet_core.settings import WalkSettings

    propagate_calibration_scores(
        cam_stores=snakemake.input.cams,
        irnet_stores=snakemake.input.maps,
        image_ids=snakemake.params.image_ids,
        walk=settings(WalkSettings, snakemake.params.random_walk, "random_walk"),
        **snakemake.params.centroids,
        cam_floor=cam_floor(snakemake),
        out_store=snakemake.output.scores,
        device=compute_device(snakemake),
    )


run_job(snakemake, main)
