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
    """The torch device of this job, from the run setting `compute.device` (never a param: reruns nothing)."""
    from irnet_core.devices import resolve_device

    return resolve_device(snakemake.config["compute"]["device"])


def settings(cls: type, section: Any, key: str):
    """A typed settings object (irnet_core.settings) from one params section; ``key`` names it in errors."""
    from irnet_core.settings import from_section

    return from_section(cls, section, key)


def voc_image_labels(image_ids, label_paths, classes) -> dict[str, list[int]]:
    """Image-level labels of VOC-layout annotation files (`<root>/Annotations/<id>.xml` or its class PNG)."""
    from irnet_core.data.voc import load_image_labels

    return {
        image_id: load_image_labels(Path(path).parent.parent, image_id, classes)
        for image_id, path in zip(image_ids, label_paths, strict=True)
    }
