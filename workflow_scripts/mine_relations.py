"""Rule mine_relations: confident fg/bg/unsure relation labels of one shard's training images."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job, settings, with_thresholds


def main():
    from irnet_core.pipeline.irnet import mine_relations_shard
    from irnet_core.settings import RelationSettings

    mine_relations_shard(
        cam_store=snakemake.input.cams,
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        relations=settings(
            RelationSettings, with_thresholds(snakemake, snakemake.params.relations, ("relations",)), "relations"
        ),
        out_store=snakemake.output.relations,
    )


run_job(snakemake, main)
