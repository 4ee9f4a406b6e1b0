"""Rule train_semantic_model: DeepLabv3 on the semantic pseudo-labels (resumes from its last epoch checkpoint)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import compute_device, job_dataset, run_job, settings, with_infer


def main():
    from irnet_core.pipeline.final import train_semantic_model
    from irnet_core.settings import BackboneSettings, SemanticModelSettings

    params = snakemake.params  # result settings; run settings (compute:) come from the config
    train_semantic_model(
        dataset=job_dataset(snakemake),
        label_dir=snakemake.input.label_dir,
        image_ids=params.image_ids,
        settings=settings(
            SemanticModelSettings, with_infer(snakemake, params.final, "semantic"), "final_models.semantic"
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
