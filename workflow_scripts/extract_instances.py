"""Rule extract_instances: instance pseudo-labels of one shard from the displacement field."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # this checkout's irnet_core first

from irnet_core.runner import run_job  # noqa: E402


def main():
    from irnet_core.devices import resolve_device
    from irnet_core.pipeline.pseudo_labels import extract_instances_shard

    extract_instances_shard(
        cam_store=snakemake.input.cams,
        irnet_store=snakemake.input.maps,
        image_ids=snakemake.params.image_ids,
        random_walk=snakemake.params.random_walk,
        instances=snakemake.params.instances,
        out_store=snakemake.output.instances,
        device=resolve_device(snakemake.config["compute"]["device"]),
    )


run_job(snakemake, main)
