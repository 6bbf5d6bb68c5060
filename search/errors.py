"""The errors a user can act on. The CLI prints them as one line and exits 1."""

from __future__ import annotations

import errno
import sqlite3
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


class IndexWriteError(YtnotesError):
    """The index cannot be written: the disk is full, or a write to it failed."""


def write_failure(exc: BaseException) -> str | None:
    """Why a write failed when it is the disk's doing (full, a size limit, an I/O error), however the library
    reports it (OSError, SQLite's OperationalError, FAISS's RuntimeError); None for any other error."""
    code = exc.errno if isinstance(exc, OSError) else None
    text = str(exc)
    if code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text or "disk is full" in text:
        return "the disk is full"
    if code == errno.EFBIG or "File too large" in text:
        return "a file would pass the size limit"
    if isinstance(exc, sqlite3.OperationalError) and "disk I/O error" in text:
        return "a write failed (disk I/O error)"
    return None


def raise_if_disk(exc: BaseException, what: str, after: str = "") -> None:
    """Turn a write that failed for lack of room (or another fault of the disk) into a one-line user error:
    "cannot <what>: <why>; free some space and run `ytnotes build` again<after>". Our own errors pass through."""
    why = None if isinstance(exc, YtnotesError) else write_failure(exc)
    if why is not None:
        raise IndexWriteError(
            f"cannot {what}: {why}; free some space and run `ytnotes build` again{after}"
        ) from exc
