"""Rule evaluate_cam_untrained: the untrained-network baseline of CAM evaluation."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import compute_device, job_dataset, run_job, settings


def main():
    from irnet_core.pipeline.cam import evaluate_untrained_cams
    from irnet_core.settings import BackboneSettings, CamTrainSettings

    params = snakemake.params
    evaluate_untrained_cams(
        dataset=job_dataset(snakemake),
        image_ids=params.image_ids,
        train=settings(CamTrainSettings, params.train, "cam.train"),
        backbone=settings(BackboneSettings, params.backbone, "backbone"),
        scales=params.infer["scales"],
        max_long_side=params.infer["max_long_side"],
        sweep=params.sweep,
        out_path=snakemake.output.metrics,
        device=compute_device(snakemake),
    )


run_job(snakemake, main)
