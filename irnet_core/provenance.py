"""Content digests that decide whether a saved training state belongs to the inputs at hand.

A checkpoint may be resumed only by a training of exactly the same inputs: the same settings, the same image
bytes and image-level labels, the same upstream model bytes and relation labels, and the same code. Names,
sizes and modification times are not enough (a changed threshold of the same written length leaves a store's
size unchanged), so everything here hashes content.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_BLOCK = 1 << 20


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def backbone_digest(backbone) -> dict:
    """The backbone settings as fingerprints see them: ``weights`` a local file stands for its content digest as
    well as its path, so that replacing the file's bytes under the same name changes every fingerprint that reads
    it (``none`` and ``imagenet`` name fixed weights: torchvision checks the ImageNet file's hash itself)."""
    plain = {"arch": backbone.arch, "weights": backbone.weights}
    if backbone.weights not in ("none", "imagenet"):
        plain["weights_sha256"] = file_digest(backbone.weights)
    return plain


@functools.cache
def code_digest() -> str:
    """SHA-256 of the library's Python sources: a checkpoint of other code is never resumed.

    Snakemake does not track modules that a script imports, so an edited loss function would otherwise be
    resumed into; hashing the sources (about 100 small files) costs milliseconds.
    """
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(_PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
