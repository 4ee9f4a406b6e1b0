"""Rule train_cam: train the CAM classifier (resumes from its last epoch checkpoint)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import run_job, settings, training_job


def main():
    from irnet_core.pipeline.cam import train_cam
    from irnet_core.settings import BackboneSettings, CamTrainSettings, OptimizerSettings

    params = snakemake.params  # result settings; run settings (compute:) come from the config
    train_cam(
        **training_job(snakemake),
        train=settings(CamTrainSettings, params.train, "cam.train"),
        recipe=settings(OptimizerSettings, params.recipe, "cam recipe"),
        backbone=settings(BackboneSettings, params.backbone, "backbone"),
    )


run_job(snakemake, main)
