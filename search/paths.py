"""Where ytnotes keeps its files by default: one index per user, one exported model per user cache.

Settings resolve as default, then environment variable, then flag:

- the index: ``$XDG_DATA_HOME/ytnotes/index`` (``~/.local/share/ytnotes/index``), or ``YTNOTES_INDEX``, or
  ``--index DIR``; so `ytnotes ask` finds the same index from any folder.
- the model cache: ``$XDG_CACHE_HOME/ytnotes`` (``~/.cache/ytnotes``), or ``YTNOTES_CACHE``. It holds the model
  exported to ONNX, in ``models/<fingerprint>/``, shared by every index built with that model.
"""

from __future__ import annotations

import os
from pathlib import Path

INDEX_ENV = "YTNOTES_INDEX"
CACHE_ENV = "YTNOTES_CACHE"
APP = "ytnotes"


def _xdg(variable: str, fallback: str) -> Path:
    """An XDG base folder: the variable when it holds an absolute path (the spec says to ignore a relative
    one), else ``~/fallback``."""
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else Path.home() / fallback


def default_index() -> Path:
    """The index folder used when neither YTNOTES_INDEX nor --index names one."""
    return _xdg("XDG_DATA_HOME", ".local/share") / APP / "index"


def cache_dir() -> Path:
    """The user's cache folder for ytnotes: YTNOTES_CACHE, else the XDG cache folder."""
    value = os.environ.get(CACHE_ENV, "")
    return Path(value).absolute() if value else _xdg("XDG_CACHE_HOME", ".cache") / APP


def models_dir() -> Path:
    """Where exported models are kept, one folder per model fingerprint."""
    return cache_dir() / "models"


#: The notes a new index is built from when no folder is named (a try-out before one's own).
SAMPLE_NOTES = Path(__file__).parent / "sample_notes"
