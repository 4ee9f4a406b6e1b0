"""Rule combine_round: a self-training round's instance targets from the previous round's and the predictions of
the Mask R-CNN trained on them."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job, settings


def main():
    from irnet_core.pipeline.self_training import combine_round_set
    from irnet_core.settings import SelfTrainingSettings

    combine_round_set(
        previous_coco=snakemake.input.previous,
        predictions_coco=snakemake.input.predictions,
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        labels_path=snakemake.input.labels,
        settings=settings(SelfTrainingSettings, snakemake.params.self_training, "self_training"),
        out_coco=snakemake.output.coco,
    )


run_job(snakemake, main)
