"""Rule report_figures: the per-stage figure strips of one sampled image."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job


def main():
    from irnet_core.pipeline.report import report_figures

    report_figures(
        image_id=snakemake.wildcards.image_id,
        dataset=job_dataset(snakemake),
        cam_store=snakemake.input.cams,
        relations_store=snakemake.input.relations,
        irnet_store=snakemake.input.maps,
        semantic_store=snakemake.input.semantic,
        instance_store=snakemake.input.instances,
        instances=snakemake.params.instances,
        out_cam=snakemake.output.cam,
        out_relations=snakemake.output.relations,
        out_irnet=snakemake.output.irnet,
        out_pseudo_labels=snakemake.output.pseudo_labels,
    )


run_job(snakemake, main)
