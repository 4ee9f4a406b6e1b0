"""Rule train_instance_model: Mask R-CNN on the instance pseudo-labels (resumes from its last epoch checkpoint)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import final_model_training, run_job


def main():
    from irnet_core.pipeline.final import train_instance_model
    from irnet_core.settings import InstanceModelSettings

    train_instance_model(
        **final_model_training(snakemake, InstanceModelSettings, "instance"), coco_path=snakemake.input.coco
    )


run_job(snakemake, main)
