"""Content digests that decide whether a saved training state belongs to the inputs at hand.

A checkpoint may be resumed only by a training of exactly the same inputs: the same settings, the same image
bytes and image-level labels, the same upstream model bytes and relation labels, and the same code. Names,
sizes and modification times are not enough (a changed threshold of the same written length leaves a store's
size unchanged), so everything here hashes content.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
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


def digest_of(parts: Iterable[str]) -> str:
    """One SHA-256 over several digests (or other strings), order-sensitive."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


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
