"""Rule calibrate_displacement: the mean displacement (the paper's MeanShift value) as JSON."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # this checkout's irnet_core first

from irnet_core.runner import run_job  # noqa: E402


def main():
    from irnet_core.devices import resolve_device
    from irnet_core.pipeline.irnet import calibrate_displacement

    compute = snakemake.config["compute"]
    calibrate_displacement(
        model_path=snakemake.input.model,
        image_paths=snakemake.input.images,
        pad_size=snakemake.params.pad_size,
        out_path=snakemake.output.calibration,
        device=resolve_device(compute["device"]),
        batch_size=snakemake.params.calibration["batch_size"],
    )


run_job(snakemake, main)
