"""Rule train_instance_model: Mask R-CNN on the instance pseudo-labels (resumes from its last epoch checkpoint)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import compute_device, job_dataset, run_job, settings, with_infer


def main():
    from irnet_core.pipeline.final import train_instance_model
    from irnet_core.settings import BackboneSettings, InstanceModelSettings

    params = snakemake.params  # result settings; run settings (compute:) come from the config
    train_instance_model(
        dataset=job_dataset(snakemake),
        coco_path=snakemake.input.coco,
        image_ids=params.image_ids,
        settings=settings(
            InstanceModelSettings, with_infer(snakemake, params.final, "instance"), "final_models.instance"
        ),
        backbone=settings(BackboneSettings, params.backbone, "backbone"),
        cam_model_path=snakemake.input.cam_model[0] if snakemake.input.cam_model else None,
        labels_path=snakemake.input.labels,
        out_model=snakemake.output.model,
        out_history=snakemake.output.history,
        checkpoint_dir=params.checkpoint_dir,
        device=compute_device(snakemake),
        num_workers=snakemake.config["compute"]["num_workers"],
    )


run_job(snakemake, main)
