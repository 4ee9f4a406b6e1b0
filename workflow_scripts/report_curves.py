"""Rule report_curves: training curves of train_cam and train_irnet from their train_log.csv."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # this checkout's irnet_core first

from irnet_core.runner import run_job  # noqa: E402


def main():
    from irnet_core.pipeline.report import report_curves

    report_curves(
        cam_history=snakemake.input.cam,
        irnet_history=snakemake.input.irnet,
        out_cam=snakemake.output.cam,
        out_irnet=snakemake.output.irnet,
    )


run_job(snakemake, main)
