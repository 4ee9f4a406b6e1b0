"""Small file helpers shared by the stage entry points."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..atomic import atomic_path
from ..settings import as_plain


def write_json(path: str | Path, data) -> None:
    """Write JSON atomically, with NaN/inf turned into null (strict JSON) and numpy scalars into Python ones."""
    with atomic_path(path) as temporary, open(temporary, "w") as handle:
        json.dump(as_plain(data, finite=True), handle, indent=2, allow_nan=False)
        handle.write("\n")


def read_labels_file(path: str | Path) -> dict:
    with open(path) as handle:
        return json.load(handle)


def progress(items, total: int, what: str, logger, every_seconds: float = 30.0):
    """Yield ``items`` and log how far a shard job is: images done, images/s and the time left, about ten times
    over the job and at least every ``every_seconds`` (a long shard shows it is alive)."""
    step = max(1, total // 10)
    start = last = time.perf_counter()
    for done, item in enumerate(items, start=1):
        yield item
        now = time.perf_counter()
        if done % step == 0 or done == total or now - last >= every_seconds:
            last = now
            rate = done / max(now - start, 1e-9)
            left = (total - done) / rate
            logger.info("%s: %d/%d images, %.2f images/s, ETA %dm%02ds", what, done, total, rate, left // 60, left % 60)
