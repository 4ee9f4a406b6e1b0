"""Atomic file writes: a reader (or a job resumed after a crash) sees the old file or the new one, never half of one.

The content goes to a temporary file beside the target, renamed over it once complete (a rename within one folder
is atomic on POSIX file systems). The temporary name is hidden and ends in ``.tmp``, so that no other job's glob
(``*.json``, ``*.pt``) picks it up, and it is unique per call, so that processes writing the same file at the same
time do not write into each other's temporary file. It is created like any other output (the umask decides its
permissions), unlike ``tempfile.mkstemp``'s private files.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (parent folders created) to write to; renamed over ``path`` when the
    block ends without an exception, removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)
