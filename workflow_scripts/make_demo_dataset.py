"""Rule make_demo_dataset: generate the synthetic VOC-layout demo dataset."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import run_job


def main():
    from irnet_core.tools.demo_generator import generate_demo_dataset

    demo = snakemake.params.demo
    root = Path(snakemake.output.train_aug).parents[2]
    generate_demo_dataset(
        root,
        n_images=demo["n_images"],
        n_labelled=demo["n_labelled"],
        seed=demo["seed"],
        min_size=demo["min_size"],
        max_size=demo["max_size"],
        preset=demo["preset"],
        n_calibration=demo["n_calibration"],
        n_val=demo["n_val"],
        classes=tuple(snakemake.params.classes),
        workers=1,  # spawned pool workers would re-run this script as __main__
    )


run_job(snakemake, main)
