"""Rule evaluate_round: a self-training round's targets on the evaluated images, and the val predictions of the
Mask R-CNN trained on them."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job


def main():
    from irnet_core.pipeline.self_training import evaluate_round

    evaluate_round(
        targets_coco=snakemake.input.targets,
        dataset=job_dataset(snakemake),
        eval_ids=snakemake.params.eval_ids,
        round_index=int(snakemake.wildcards.round),
        out_path=snakemake.output.metrics,
        val_predictions_coco=snakemake.input.val_predictions[0] if snakemake.input.val_predictions else None,
        val_ids=snakemake.params.val_ids,
    )


run_job(snakemake, main)
