"""What every workflow script does around its one library call.

Logging goes to the rule's log file (and warnings and tracebacks with it); torch uses the rule's threads; an
:class:`~irnet_core.errors.InputError` ends the job with its one line on the terminal, not a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from .errors import InputError

log = logging.getLogger("irnet_core")


def setup_logging(log_path: str | None) -> None:
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
    setup_logging(log_path)
    real_stderr = sys.stderr
    if log_path:
        sys.stderr = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the job
    import torch  # imported here so the thread setting below happens before any work

    torch.set_num_threads(max(1, int(snakemake.threads)))
    start = time.perf_counter()
    log.info("rule %s, %d thread(s), wildcards %s", snakemake.rule, snakemake.threads, dict(snakemake.wildcards))
    try:
        result = main()
    except InputError as exc:
        log.error("%s", exc)
        print(f"Error: {exc}", file=real_stderr, flush=True)
        sys.exit(1)
    except Exception:
        log.exception("rule %s failed", snakemake.rule)
        raise
    log.info("done in %.1f s", time.perf_counter() - start)
    return result
