"""Rule train_semantic_model: DeepLabv3 on the semantic pseudo-labels (resumes from its last epoch checkpoint)."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import final_model_training, run_job


def main():
    from irnet_core.pipeline.final import train_semantic_model
    from irnet_core.settings import SemanticModelSettings

    train_semantic_model(
        **final_model_training(snakemake, SemanticModelSettings, "semantic"), label_dir=snakemake.input.label_dir
    )


run_job(snakemake, main)
