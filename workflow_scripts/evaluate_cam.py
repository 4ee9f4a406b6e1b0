"""Rule evaluate_cam: CAM mIoU at the configured threshold, over a sweep, and the baselines."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job, with_thresholds


def main():
    from irnet_core.pipeline.cam import evaluate_cam

    evaluate_cam(
        cam_stores=snakemake.input.cams,
        untrained_path=snakemake.input.untrained,
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        threshold=with_thresholds(snakemake, snakemake.params.eval, ("cam", "eval"))["threshold"],
        sweep=snakemake.params.eval["sweep"],
        out_path=snakemake.output.metrics,
    )


run_job(snakemake, main)
