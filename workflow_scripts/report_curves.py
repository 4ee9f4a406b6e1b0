"""Rule report_curves: training curves of train_cam and train_irnet from their train_log.csv."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import run_job


def main():
    from irnet_core.pipeline.report import report_curves

    report_curves(
        cam_history=snakemake.input.cam,
        irnet_history=snakemake.input.irnet,
        out_cam=snakemake.output.cam,
        out_irnet=snakemake.output.irnet,
    )


run_job(snakemake, main)
