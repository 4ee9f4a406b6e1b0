"""Rule infer_cam: multi-scale CAMs of one shard's images into a Zarr store."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # this checkout's irnet_core first

from irnet_core.runner import run_job  # noqa: E402


def main():
    from irnet_core.devices import resolve_device
    from irnet_core.pipeline.cam import infer_cam_shard

    infer_cam_shard(
        model_path=snakemake.input.model,
        image_ids=snakemake.params.image_ids,
        image_paths=snakemake.input.images,
        label_paths=snakemake.input.labels,
        scales=snakemake.params.infer["scales"],
        out_store=snakemake.output.cams,
        device=resolve_device(snakemake.config["compute"]["device"]),
    )


run_job(snakemake, main)
