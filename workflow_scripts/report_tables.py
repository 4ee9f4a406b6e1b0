"""Rule report_tables: per-class tables of the evaluation JSONs and the wall time / peak memory of every job."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import run_job


def main():
    from irnet_core.pipeline.report import report_tables

    report_tables(
        cam_metrics=snakemake.input.cam,
        semantic_metrics=snakemake.input.semantic,
        instance_metrics=snakemake.input.instances,
        benchmark_files=snakemake.params.benchmarks,
        out_cam=snakemake.output.cam,
        out_semantic=snakemake.output.semantic,
        out_instances=snakemake.output.instances,
        out_benchmarks=snakemake.output.benchmarks,
        summary=snakemake.input.summary,
        out_per_class=snakemake.output.per_class,
    )


run_job(snakemake, main)
