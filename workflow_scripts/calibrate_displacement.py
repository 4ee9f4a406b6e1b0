"""Rule calibrate_displacement: the mean displacement (the paper's MeanShift value) as JSON."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import compute_device, job_dataset, run_job, settings


def main():
    from irnet_core.pipeline.irnet import calibrate_displacement
    from irnet_core.settings import CalibrationSettings

    calibrate_displacement(
        model_path=snakemake.input.model,
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        pad_size=snakemake.params.pad_size,
        calibration=settings(CalibrationSettings, snakemake.params.calibration, "irnet.calibration"),
        out_path=snakemake.output.calibration,
        device=compute_device(snakemake),
    )


run_job(snakemake, main)
