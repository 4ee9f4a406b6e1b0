"""Rule train_irnet: train IRNet's boundary and displacement branches (resumes from its last epoch)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # this checkout's irnet_core first

from irnet_core.runner import run_job  # noqa: E402


def main():
    from irnet_core.devices import resolve_device
    from irnet_core.pipeline.irnet import train_irnet

    compute = snakemake.config["compute"]  # run settings only; result settings arrive as params
    train_irnet(
        relation_stores=snakemake.input.relations,
        image_ids=snakemake.params.image_ids,
        labels_path=snakemake.input.labels,
        cam_model_path=snakemake.input.cam_model[0] if snakemake.input.cam_model else None,
        train=snakemake.params.train,
        backbone=snakemake.params.backbone,
        backbone_source=snakemake.params.backbone_source,
        out_model=snakemake.output.model,
        out_history=snakemake.output.history,
        checkpoint_dir=snakemake.params.checkpoint_dir,
        device=resolve_device(compute["device"]),
        num_workers=compute["num_workers"],
    )


run_job(snakemake, main)
