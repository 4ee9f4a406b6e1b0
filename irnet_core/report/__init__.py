"""Report assets: per-image figures of every stage, training curves and metric / benchmark tables.

``figures`` draws PNGs from plain arrays (matplotlib, Agg), ``tables`` writes small self-contained HTML pages;
both are usable without Snakemake. The workflow's entry points live in :mod:`irnet_core.pipeline.report`.

This package module stays free of heavy imports (no matplotlib, no torch): ``rules/report.smk`` calls
:func:`select_images` while Snakemake builds the DAG.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence


def _stable_key(image_id: str) -> str:
    # sha256 rather than hash(): Python's string hash changes per process (PYTHONHASHSEED).
    return hashlib.sha256(image_id.encode("utf-8")).hexdigest()


def select_images(eval_ids: Sequence[str], train_ids: Iterable[str], count: int) -> list[str]:
    """The ``count`` eval images shown in the report, chosen deterministically.

    Images are ordered by a hash of their id: the choice is a fixed pseudo-random spread over the list that does
    not depend on the list's order, and adding an image to the list swaps at most one image of the sample (so
    at most one figure job runs again). Eval images that are also training images come first, because only
    those have mined relations to show. Duplicates in ``eval_ids`` count once.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    train = set(train_ids)
    unique = sorted(set(eval_ids), key=lambda i: (i not in train, _stable_key(i)))
    return unique[:count]
