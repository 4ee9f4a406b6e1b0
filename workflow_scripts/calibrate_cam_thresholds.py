"""Rule calibrate_cam_thresholds: the CAM background threshold and conf_fg / conf_bg behind `auto`."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job


def main():
    from irnet_core.pipeline.calibration import calibrate_cam_thresholds

    calibrate_cam_thresholds(
        cam_stores=snakemake.input.cams,
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        method=snakemake.params.method,
        grid=snakemake.params.grid,
        offsets=snakemake.params.offsets,
        min_gain=snakemake.params.min_gain,
        min_images=snakemake.params.min_images,
        out_path=snakemake.output.thresholds,
    )


run_job(snakemake, main)
