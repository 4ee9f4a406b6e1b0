"""Rule publish_instances: the last self-training round's targets as results/pseudo_labels/instances.json."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import run_job


def main():
    import shutil

    from irnet_core.atomic import atomic_path

    with atomic_path(snakemake.output[0]) as temporary:
        shutil.copyfile(snakemake.input[0], temporary)


run_job(snakemake, main)
