"""Rule summarize: the headline numbers and stage timings as one table."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import run_job


def main():
    from irnet_core.pipeline.pseudo_labels import summarize

    summarize(
        cam_path=snakemake.input.cam,
        semantic_path=snakemake.input.semantic,
        instances_path=snakemake.input.instances,
        benchmark_dir=snakemake.params.benchmark_dir,
        stage_order=snakemake.params.stage_order,
        out_json=snakemake.output.summary,
        out_table=snakemake.output.table,
        thresholds=snakemake.params.thresholds,
        calibration_path=snakemake.input.calibration,
        final_path=snakemake.input.final[0] if snakemake.input.final else None,
        round_paths=snakemake.input.rounds,
    )


run_job(snakemake, main)
