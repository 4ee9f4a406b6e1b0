"""Rule mine_relations: confident fg/bg/unsure relation labels of one shard's training images."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # this checkout's irnet_core first

from irnet_core.runner import run_job  # noqa: E402


def main():
    from irnet_core.pipeline.irnet import mine_relations_shard

    mine_relations_shard(
        cam_store=snakemake.input.cams,
        image_ids=snakemake.params.image_ids,
        image_paths=snakemake.input.images,
        relations=snakemake.params.relations,
        out_store=snakemake.output.relations,
    )


run_job(snakemake, main)
