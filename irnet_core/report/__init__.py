"""Report assets: per-image figures of every stage, training curves and metric / benchmark tables.

``figures`` draws PNGs from plain arrays (matplotlib, Agg), ``tables`` writes small self-contained HTML pages;
both are usable without Snakemake. The workflow's entry points live in :mod:`irnet_core.pipeline.report`.

This package module stays free of heavy imports (no matplotlib, no torch): ``rules/report.smk`` calls
:func:`select_images` and :func:`expand_patterns` while Snakemake builds the DAG.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence


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


# A Snakemake wildcard in a file pattern, with an optional constraint that may itself hold {m,n} quantifiers.
_WILDCARD = re.compile(r"\{\s*(\w+)\s*(?:,(?:[^{}]|\{[^{}]*\})*)?\}")


def expand_patterns(patterns: Iterable[str], values: Mapping[str, Sequence[object]]) -> list[str]:
    """Expand Snakemake file patterns (wildcard constraints allowed) over every combination of ``values``.

    Used for the benchmark files of the jobs a configuration can run. Output keeps the order of ``patterns``;
    a pattern with a wildcard that ``values`` does not name is skipped (its jobs are not known in advance).
    """
    paths: list[str] = []
    for pattern in patterns:
        names = list(dict.fromkeys(match.group(1) for match in _WILDCARD.finditer(pattern)))
        if any(name not in values for name in names):
            continue
        for combination in itertools.product(*(values[name] for name in names)):
            chosen = dict(zip(names, combination))
            paths.append(_WILDCARD.sub(lambda match: str(chosen[match.group(1)]), pattern))
    return paths
