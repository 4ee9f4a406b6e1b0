"""Id list files: one image id per line, shared by every dataset format."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..store import check_image_id


def read_id_lines(path: str | Path) -> list[tuple[str, int]]:
    """``(id, line number)`` per non-blank line of ``path``, in file order.

    Each id is validated with :func:`check_image_id` (``where`` = ``path:lineno``); a duplicate id or a
    missing/unreadable file raises :class:`InputError`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(path, "split file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read split file ({type(exc).__name__}: {exc})") from None
    entries: list[tuple[str, int]] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        image_id = line.strip()
        if not image_id:
            continue
        check_image_id(image_id, f"{path}:{lineno}")
        if image_id in first_line:
            raise InputError(
                f"{path}:{lineno}", f"duplicate image id {image_id!r} (first on line {first_line[image_id]})"
            )
        first_line[image_id] = lineno
        entries.append((image_id, lineno))
    return entries


def read_id_list(path: str | Path) -> list[str]:
    """Read a split file: one id per line, blank lines skipped, order kept (see :func:`read_id_lines`)."""
    return [image_id for image_id, _ in read_id_lines(path)]
