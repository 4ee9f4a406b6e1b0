"""Rule predict_instances: Mask R-CNN detections of the val images as a COCO file with scores."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import final_model_prediction, run_job


def main():
    from irnet_core.pipeline.final import predict_instance_set
    from irnet_core.settings import InstanceModelSettings

    predict_instance_set(
        **final_model_prediction(snakemake, InstanceModelSettings, "instance"), out_coco=snakemake.output.coco
    )


run_job(snakemake, main)
