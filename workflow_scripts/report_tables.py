"""Rule report_tables: per-class tables of the evaluation JSONs and the wall time / peak memory of every job."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # this checkout's irnet_core first

from irnet_core.runner import run_job  # noqa: E402


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
    )


run_job(snakemake, main)
