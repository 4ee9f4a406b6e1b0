"""The job adapter every workflow script shares: Snakemake's `snakemake` object in, one library call out.

It belongs to the workflow, not to `irnet_core` (which knows nothing of Snakemake). Importing it puts this
checkout's `irnet_core` first on `sys.path` (Snakemake runs a copy of each script from `.snakemake/scripts/`).

What :func:`run_job` does around the call:
- logging (and warnings, and anything written to stderr) goes to the rule's log file;
- torch uses the rule's `threads`;
- any failure writes its full traceback to the log, and the terminal gets one line: the culprit and the
  problem for bad input (:class:`irnet_core.errors.InputError`), the exception and where the traceback is for
  anything else. Exit status 1 either way, so Snakemake marks the job failed and keeps what finished.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from irnet_core.errors import InputError

log = logging.getLogger("irnet_core")


def _setup_logging(log_path: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        handlers = [logging.FileHandler(log_path, mode="w")]
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )
    logging.captureWarnings(True)


def run_job(snakemake: Any, main: Callable[[], Any]) -> Any:
    """Run ``main()`` inside a Snakemake ``script:`` job with logging, threads and one-line errors."""
    log_path = snakemake.log[0] if len(snakemake.log) else None
    _setup_logging(log_path)
    console = sys.stderr
    if log_path:
        sys.stderr = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the job
    import torch  # imported here so the thread setting below happens before any work

    torch.set_num_threads(max(1, int(snakemake.threads)))
    from irnet_core.store import use_layout

    use_layout(snakemake.config["compute"]["store_layout"])  # a run setting, like the thread count
    start = time.perf_counter()
    log.info("rule %s, %d thread(s), wildcards %s", snakemake.rule, snakemake.threads, dict(snakemake.wildcards))
    try:
        result = main()
    except InputError as exc:
        log.exception("rule %s stopped on bad input", snakemake.rule)
        print(f"Error: {exc}", file=console, flush=True)
        sys.exit(1)
    except Exception as exc:
        log.exception("rule %s failed", snakemake.rule)
        where = f" (traceback in {log_path})" if log_path else ""
        first_line = (str(exc).strip().splitlines() or [""])[0]
        print(f"Error in rule {snakemake.rule}: {type(exc).__name__}: {first_line}{where}", file=console, flush=True)
        sys.exit(1)
    log.info("done in %.1f s", time.perf_counter() - start)
    return result


def compute_device(snakemake: Any):
    """The torch device of this job, from the run setting `compute.device` (never a param: reruns nothing).

    A job that was given a GPU (resource `gpu`) and meant to use CUDA (device auto or cuda) but sees none stops
    with one line instead of computing for hours on the CPU. Under a scheduler the job runs on the GPU it was
    given: CUDA_VISIBLE_DEVICES holds only that one, so `cuda:N` is read as the allocation's first GPU.
    """
    import torch

    from irnet_core.devices import resolve_device
    from irnet_core.errors import InputError

    name = snakemake.config["compute"]["device"]
    requested = int(snakemake.resources.get("gpu", 0) or 0)
    if requested and name != "cpu" and not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
        raise InputError(
            "config key compute.device",
            f"rule {snakemake.rule} was given {requested} GPU(s) but sees no CUDA device (CUDA_VISIBLE_DEVICES={visible})",
        )
    if requested and name.startswith("cuda:") and "SLURM_JOB_ID" in os.environ:
        log.info("%s under SLURM: using the allocated GPU (cuda:0 of CUDA_VISIBLE_DEVICES)", name)
        name = "cuda"
    device = resolve_device(name)
    log.info("device %s%s", device, f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    return device


def settings(cls: type, section: Any, key: str):
    """A typed settings object (irnet_core.settings) from one params section; ``key`` names it in errors."""
    from irnet_core.settings import from_section

    return from_section(cls, section, key)


def job_dataset(snakemake: Any):
    """The dataset reader of this job (irnet_core.data.dataset), from the rule's `dataset` params; the COCO index
    cache and the pixel limit (they change no result) come from the config."""
    from irnet_core.data.dataset import open_dataset

    section = dict(snakemake.params.dataset)
    if section.get("format") == "coco":
        section["index_cache"] = snakemake.config["dataset"].get("index_cache")
    # The pixel limit admits images and changes no result: a param of verify_inputs only, read here by every job.
    section["max_image_pixels"] = snakemake.config["dataset"].get("max_image_pixels")
    return open_dataset(section)


def cam_model_input(snakemake: Any) -> str | None:
    """The CAM network a training starts from (input `cam_model`, empty where it starts from other weights)."""
    return snakemake.input.cam_model[0] if snakemake.input.cam_model else None


def training_job(snakemake: Any) -> dict:
    """The arguments every training entry point takes from its job: the dataset and its image digests, the outputs,
    the checkpoint folder and the run settings (device, data-loading workers), which are no params."""
    from irnet_core.training import TrainingRun

    run = TrainingRun(
        out_model=snakemake.output.model,
        out_history=snakemake.output.history,
        checkpoint_dir=snakemake.params.checkpoint_dir,
        device=compute_device(snakemake),
        num_workers=snakemake.config["compute"]["num_workers"],
    )
    return {"dataset": job_dataset(snakemake), "labels_path": snakemake.input.labels, "run": run}


def final_model_training(snakemake: Any, settings_class: type, model: str) -> dict:
    """The arguments of a final model's training (`model`: instance or semantic)."""
    from irnet_core.settings import BackboneSettings

    params = snakemake.params
    return {
        **training_job(snakemake),
        "image_ids": params.image_ids,
        "settings": settings(settings_class, with_infer(snakemake, params.final, model), f"final_models.{model}"),
        "backbone": settings(BackboneSettings, params.backbone, "backbone"),
        "cam_model_path": cam_model_input(snakemake),
    }


def final_model_prediction(snakemake: Any, settings_class: type, model: str) -> dict:
    """The arguments of a final model's prediction on the val images (`model`: instance or semantic)."""
    return {
        "model_path": snakemake.input.model,
        "dataset": job_dataset(snakemake),
        "image_ids": snakemake.params.image_ids,
        "settings": settings(settings_class, snakemake.params.final, f"final_models.{model}"),
        "device": compute_device(snakemake),
    }


def with_infer(snakemake: Any, training: dict, model: str) -> dict:
    """A final model's training params completed with its `infer` settings from the run's config: the model is
    built with them, but they are no params of its training (a prediction setting reruns prediction only)."""
    return {**training, "infer": snakemake.config["final_models"][model]["infer"]}


def cam_floor(snakemake: Any) -> float | None:
    """The CAM veto's floor (relations.conf_bg, calibrated where auto), or None where random_walk.cam_veto is off."""
    params = snakemake.params.cam_floor
    if not params["cam_veto"]:
        return None
    return float(with_thresholds(snakemake, {"conf_bg": params["conf_bg"]}, ("relations",))["conf_bg"])


def with_thresholds(snakemake: Any, section: Any, path: tuple[str, ...]) -> dict:
    """A params section whose `auto` thresholds hold the calibrated values (the rule's `thresholds` input:
    the calibration files of its auto keys, none when the user gave numbers). The one place where `auto`
    becomes a number: every job that reads a threshold goes through it."""
    from irnet_core.thresholds import resolve

    files = list(snakemake.input.get("thresholds", [])) if hasattr(snakemake.input, "get") else []
    return resolve(section, path, files)


def resolved_settings(snakemake: Any, settings_class: type, params_key: str, path: tuple[str, ...]):
    """The typed settings of the params section ``params_key`` (config section ``path``), `auto` resolved."""
    section = with_thresholds(snakemake, getattr(snakemake.params, params_key), path)
    return settings(settings_class, section, ".".join(path))
