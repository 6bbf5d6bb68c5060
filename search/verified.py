"""Remembering which model files have been checked against their recorded hash, so a build need not hash them again.

Hashing the exported model and its question copy (about 200 MB) costs a build 0.3 s of CPU. Once a file has
hashed as recorded, its size, modification and change times and inode are kept in ``verified.json`` beside it; a
later build trusts the file while all four are unchanged, and hashes it again otherwise. Any write to the file
(truncating, zeroing, replacing, copying it elsewhere) changes its change time, which no user tool can set back.
Written by the model export, and by a build once it has written its index (`save_pending`): an up-to-date or a
failed build writes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

FILE = "verified.json"
#: Folders with files checked in this process and not yet recorded.
_PENDING: dict[Path, Verified] = {}


class Verified:
    """The checked files of one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            loaded = json.loads((folder / FILE).read_text(encoding="utf-8"))
            self._seen: dict[str, list[int | str]] = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            self._seen = {}
        self._changed = False

    def matches(self, name: str, sha256: str) -> bool:
        """Whether the folder's file ``name`` hashes to ``sha256`` (hashed only when it changed since checked)."""
        path = self.folder / name
        st = path.stat()
        signature: list[int | str] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, sha256]
        if self._seen.get(name) == signature:
            return True
        if file_sha256(path) != sha256:
            return False
        self._seen[name] = signature
        self._changed = True
        _PENDING[self.folder] = self
        return True

    def trust(self, name: str, sha256: str) -> None:
        """Record a file just written, whose hash the caller computed."""
        st = (self.folder / name).stat()
        self._seen[name] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, sha256]
        self._changed = True

    def save(self) -> None:
        """Write what was checked (best effort: a failure only means hashing again next time)."""
        if not self._changed:
            return
        # Left by a build killed while writing (builds hold a lock: any other is stale).
        for stale in self.folder.glob(f".{FILE}.*"):
            with contextlib.suppress(OSError):
                stale.unlink()
        tmp = self.folder / f".{FILE}.{os.getpid()}"
        try:
            tmp.write_text(json.dumps(self._seen), encoding="utf-8")
            os.replace(tmp, self.folder / FILE)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._changed = False


def save_pending() -> None:
    """Record the files this process checked (a build calls this once its new index is written)."""
    for checked in list(_PENDING.values()):
        checked.save()
    _PENDING.clear()


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in large blocks (each block gives other threads the interpreter only once)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(16 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
