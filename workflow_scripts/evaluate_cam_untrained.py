"""Rule evaluate_cam_untrained: the untrained-network baseline of CAM evaluation."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # this checkout's irnet_core first

from irnet_core.runner import run_job  # noqa: E402


def main():
    from irnet_core.devices import resolve_device
    from irnet_core.pipeline.cam import evaluate_untrained_cams

    evaluate_untrained_cams(
        image_ids=snakemake.params.image_ids,
        image_paths=snakemake.input.images,
        label_paths=snakemake.input.labels,
        gt_paths=snakemake.input.class_gt,
        classes=snakemake.params.classes,
        train=snakemake.params.train,
        backbone=snakemake.params.backbone,
        scales=snakemake.params.infer["scales"],
        sweep=snakemake.params.sweep,
        out_path=snakemake.output.metrics,
        device=resolve_device(snakemake.config["compute"]["device"]),
    )


run_job(snakemake, main)
