"""Rule mine_relations: confident fg/bg/unsure relation labels of one shard's training images."""

from irnet_core.runner import run_job


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
