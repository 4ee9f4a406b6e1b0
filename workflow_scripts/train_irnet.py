"""Rule train_irnet: train IRNet's boundary and displacement branches (resumes from its last epoch)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import cam_model_input, run_job, settings, training_job


def main():
    from irnet_core.pipeline.irnet import train_irnet
    from irnet_core.settings import BackboneSettings, IRNetTrainSettings

    params = snakemake.params  # result settings; run settings (compute:) come from the config
    train_irnet(
        **training_job(snakemake),
        relation_stores=snakemake.input.relations,
        image_ids=params.image_ids,
        cam_model_path=cam_model_input(snakemake),
        train=settings(IRNetTrainSettings, params.train, "irnet.train"),
        backbone=settings(BackboneSettings, params.backbone, "backbone"),
        backbone_source=params.backbone_source,
    )


run_job(snakemake, main)
