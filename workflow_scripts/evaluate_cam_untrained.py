"""Rule evaluate_cam_untrained: the untrained-network baseline of CAM evaluation."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # the job adapter beside this script (Snakemake runs a copy of it)

from _job import compute_device, run_job, settings, voc_image_labels


def main():
    from irnet_core.pipeline.cam import evaluate_untrained_cams
    from irnet_core.settings import BackboneSettings, CamTrainSettings

    params = snakemake.params
    evaluate_untrained_cams(
        image_ids=params.image_ids,
        image_paths=snakemake.input.images,
        image_labels=voc_image_labels(params.image_ids, snakemake.input.labels, params.classes),
        gt_paths=snakemake.input.class_gt,
        classes=params.classes,
        train=settings(CamTrainSettings, params.train, "cam.train"),
        backbone=settings(BackboneSettings, params.backbone, "backbone"),
        scales=params.infer["scales"],
        sweep=params.sweep,
        out_path=snakemake.output.metrics,
        device=compute_device(snakemake),
    )


run_job(snakemake, main)
