"""Rule infer_irnet: boundary maps and calibrated displacement fields of one shard."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # this checkout's irnet_core first

from irnet_core.runner import run_job  # noqa: E402


def main():
    from irnet_core.devices import resolve_device
    from irnet_core.pipeline.irnet import infer_irnet_shard

    infer_irnet_shard(
        model_path=snakemake.input.model,
        calibration_path=snakemake.input.calibration,
        image_ids=snakemake.params.image_ids,
        image_paths=snakemake.input.images,
        pad_size=snakemake.params.infer["pad_size"],
        out_store=snakemake.output.maps,
        device=resolve_device(snakemake.config["compute"]["device"]),
    )


run_job(snakemake, main)
