"""Rule train_cam: train the CAM classifier (resumes from its last epoch checkpoint)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # this checkout's irnet_core first

from irnet_core.runner import run_job  # noqa: E402


def main():
    from irnet_core.devices import resolve_device
    from irnet_core.pipeline.cam import train_cam

    compute = snakemake.config["compute"]  # run settings only; result settings arrive as params
    train_cam(
        labels_path=snakemake.input.labels,
        classes=snakemake.params.classes,
        train=snakemake.params.train,
        recipe=snakemake.params.recipe,
        backbone=snakemake.params.backbone,
        out_model=snakemake.output.model,
        out_history=snakemake.output.history,
        checkpoint_dir=snakemake.params.checkpoint_dir,
        device=resolve_device(compute["device"]),
        num_workers=compute["num_workers"],
    )


run_job(snakemake, main)
