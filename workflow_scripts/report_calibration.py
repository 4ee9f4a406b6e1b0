"""Rule report_calibration: the threshold curves of results/eval/calibration.json, choices marked."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import run_job


def main():
    from irnet_core.pipeline.report import report_calibration

    report_calibration(calibration=snakemake.input.calibration, out_png=snakemake.output.curves)


run_job(snakemake, main)
