"""Rule prepare_dataset: the input check of every list (no training starts before it), then the image-level
labels, sizes and digests of the training images."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import job_dataset, run_job


def main():
    from irnet_core.data.dataset import check_scope, read_lists
    from irnet_core.pipeline.verify import prepare_labels

    dataset = job_dataset(snakemake)
    # The other lists are the scope of the check, not a result setting: labels.json depends on the training
    # images only, so they are read from the configuration and are no params (adding an image to the infer list
    # must not retrain). The shard jobs (verify_inputs) have usually checked them already, by content.
    config = snakemake.config
    every, scored = check_scope(read_lists(dataset, config["dataset"]), config["calibration"]["max_images"])
    prepare_labels(
        dataset=dataset,
        image_ids=snakemake.params.image_ids,
        out_path=snakemake.output.labels,
        also_check=every,
        ground_truth_ids=scored,
        cache_dir=snakemake.params.cache_dir,
    )


run_job(snakemake, main)
