"""The errors a user can act on. The CLI prints them as one line and exits 1."""

from __future__ import annotations

from pathlib import Path


class YtnotesError(Exception):
    """A problem the user can fix; the message names the fix."""


class NoteError(YtnotesError):
    """One note cannot be indexed; the build goes on without it."""

    def __init__(self, path: Path, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {reason}")


class IndexMissingError(YtnotesError):
    """There is no index where one was expected."""


class IndexUnusableError(YtnotesError):
    """The index exists but cannot be used as it is (damaged, other format or model)."""


class BuildLockedError(YtnotesError):
    """Another build holds the index."""
