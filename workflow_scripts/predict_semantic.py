"""Rule predict_semantic: DeepLabv3 label maps of the val images as VOC-palette PNGs."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import compute_device, job_dataset, run_job, settings


def main():
    from irnet_core.pipeline.final import predict_semantic_set
    from irnet_core.settings import SemanticModelSettings

    predict_semantic_set(
        model_path=snakemake.input.model,
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        settings=settings(SemanticModelSettings, snakemake.params.final, "final_models.semantic"),
        out_dir=snakemake.output.labels,
        device=compute_device(snakemake),
    )


run_job(snakemake, main)
