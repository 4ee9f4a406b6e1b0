"""User-facing errors.

An :class:`InputError` says, in one line, which file or key is wrong and how. Workflow scripts catch it
and print exactly that line (no traceback), so a user sees the problem and not the machinery.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (file, image id, annotation, config value). The message is one line naming the culprit."""

    def __init__(self, where: object, problem: str) -> None:
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")
