"""Rule predict_semantic: DeepLabv3 label maps of the val images as VOC-palette PNGs."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import final_model_prediction, run_job


def main():
    from irnet_core.pipeline.final import predict_semantic_set
    from irnet_core.settings import SemanticModelSettings

    predict_semantic_set(
        **final_model_prediction(snakemake, SemanticModelSettings, "semantic"), out_dir=snakemake.output.labels
    )


run_job(snakemake, main)
