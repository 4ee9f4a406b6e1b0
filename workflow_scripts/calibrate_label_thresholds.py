"""Rule calibrate_label_thresholds: the random-walk and instance background thresholds behind `auto`."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job


def main():
    from irnet_core.pipeline.calibration import calibrate_label_thresholds

    calibrate_label_thresholds(
        scores_store=snakemake.input.scores,
        cam_calibration=snakemake.input.cam,
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        method=snakemake.params.method,
        semantic_grid=snakemake.params.semantic_grid,
        instance_grid=snakemake.params.instance_grid,
        min_fragment=snakemake.params.min_fragment,
        min_gain=snakemake.params.min_gain,
        min_images=snakemake.params.min_images,
        out_path=snakemake.output.thresholds,
        summary_path=snakemake.output.summary,
    )


run_job(snakemake, main)
