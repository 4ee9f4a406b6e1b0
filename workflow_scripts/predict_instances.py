"""Rule predict_instances: Mask R-CNN detections of the val images as a COCO file with scores."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import compute_device, job_dataset, run_job, settings


def main():
    from irnet_core.pipeline.final import predict_instance_set
    from irnet_core.settings import InstanceModelSettings

    predict_instance_set(
        model_path=snakemake.input.model,
        dataset=job_dataset(snakemake),
        image_ids=snakemake.params.image_ids,
        settings=settings(InstanceModelSettings, snakemake.params.final, "final_models.instance"),
        out_coco=snakemake.output.coco,
        device=compute_device(snakemake),
    )


run_job(snakemake, main)
