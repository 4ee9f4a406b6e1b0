"""Rule train_cam: train the CAM classifier (resumes from its last epoch checkpoint)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import compute_device, job_dataset, run_job, settings


def main():
    from irnet_core.pipeline.cam import train_cam
    from irnet_core.settings import BackboneSettings, CamTrainSettings, OptimizerSettings

    params = snakemake.params  # result settings; run settings (compute:) come from the config
    train_cam(
        dataset=job_dataset(snakemake),
        labels_path=snakemake.input.labels,
        train=settings(CamTrainSettings, params.train, "cam.train"),
        recipe=settings(OptimizerSettings, params.recipe, "cam recipe"),
        backbone=settings(BackboneSettings, params.backbone, "backbone"),
        out_model=snakemake.output.model,
        out_history=snakemake.output.history,
        checkpoint_dir=params.checkpoint_dir,
        device=compute_device(snakemake),
        num_workers=snakemake.config["compute"]["num_workers"],
    )


run_job(snakemake, main)
