"""Rule evaluate_semantic: mIoU of the semantic pseudo-labels."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # this checkout's irnet_core first

from irnet_core.runner import run_job  # noqa: E402


def main():
    from irnet_core.pipeline.pseudo_labels import evaluate_semantic

    evaluate_semantic(
        label_dir=snakemake.input.semantic,
        image_ids=snakemake.params.image_ids,
        gt_paths=snakemake.input.class_gt,
        classes=snakemake.params.classes,
        out_path=snakemake.output.metrics,
    )


run_job(snakemake, main)
