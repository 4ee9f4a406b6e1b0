"""Rule train_irnet: train IRNet's boundary and displacement branches (resumes from its last epoch)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import compute_device, job_dataset, run_job, settings


def main():
    from irnet_core.pipeline.irnet import train_irnet
    from irnet_core.settings import BackboneSettings, IRNetTrainSettings

    params = snakemake.params  # result settings; run settings (compute:) come from the config
    train_irnet(
        relation_stores=snakemake.input.relations,
        dataset=job_dataset(snakemake),
        image_ids=params.image_ids,
        labels_path=snakemake.input.labels,
        cam_model_path=snakemake.input.cam_model[0] if snakemake.input.cam_model else None,
        train=settings(IRNetTrainSettings, params.train, "irnet.train"),
        backbone=settings(BackboneSettings, params.backbone, "backbone"),
        backbone_source=params.backbone_source,
        out_model=snakemake.output.model,
        out_history=snakemake.output.history,
        checkpoint_dir=params.checkpoint_dir,
        device=compute_device(snakemake),
        num_workers=snakemake.config["compute"]["num_workers"],
    )


run_job(snakemake, main)
