"""Rule summarize: the headline numbers and stage timings as one table."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # this checkout's irnet_core first

from irnet_core.runner import run_job  # noqa: E402


def main():
    from irnet_core.pipeline.pseudo_labels import summarize

    summarize(
        cam_path=snakemake.input.cam,
        semantic_path=snakemake.input.semantic,
        instances_path=snakemake.input.instances,
        benchmark_dir=snakemake.params.benchmark_dir,
        out_json=snakemake.output.summary,
        out_table=snakemake.output.table,
    )


run_job(snakemake, main)
