"""`ytnotes watch`: build the index, then build it again whenever the notes change.

Changes are noticed by watchfiles (inotify on Linux, FSEvents on macOS) and grouped: a rebuild starts once no
change came for STEP_MS (an editor's save, a `git pull` of many notes, give one rebuild). Each rebuild is an
ordinary incremental build, so it reads only the notes that changed and swaps the index atomically; a running
`ytnotes serve` answers from the new index at its next request, as it does after `ytnotes build`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from threading import Event
from typing import TYPE_CHECKING

from search.errors import BuildLockedError, YtnotesError

if TYPE_CHECKING:
    from search.build import BuildReport

#: watchfiles yields a group of changes once none came for STEP_MS, or after DEBOUNCE_MS of steady changes.
#: 300 ms: long enough to group the several writes an editor or a sync tool makes for one save, short next to
#: a rebuild's second.
STEP_MS = 300
DEBOUNCE_MS = 1600
#: The watcher looks up from waiting this often (ms) with no change, to notice Ctrl-C and a stop request.
TIMEOUT_MS = 500
#: A rebuild that finds another build running (a `ytnotes build` by hand) waits for it this long at most.
LOCKED_WAIT_SECONDS = 60.0
#: File names editors write beside a note while saving it (backups, swap files); changes to them are not notes.
EDITOR_FILES = ("~", ".swp", ".swx", ".tmp")


def watch(
    notes_dir: Path | None,
    index_dir: Path,
    replace: bool,
    built: Callable[[BuildReport, bool], None],
    failed: Callable[[YtnotesError], None],
    stop: Event | None = None,
    model: Path | None = None,
) -> None:
    """Build ``notes_dir`` into ``index_dir`` (as `build_index`, with the same choice of folder), then rebuild on
    every change below the folder until ``stop`` is set or Ctrl-C. ``built(report, first)`` is called after
    each build, ``failed(error)`` when a rebuild fails (the watch goes on; the old index stays live). An error of
    the first build is raised. ``model``: as `build_index`'s (each rebuild uses it)."""
    from watchfiles import watch as changes

    from search.build import build_index, choose_notes

    folder, _ = choose_notes(
        index_dir, notes_dir, replace
    )  # the build checks its choice again, under its lock
    if not folder.is_dir():
        raise YtnotesError(f"the notes folder {folder} does not exist; pass a folder of .md notes")
    # Watching starts before the first build, so that a note saved while that build runs is not missed: the
    # first turn of the loop comes once the watcher is set up (at its first timeout, or with the first changes).
    first = True
    for found in changes(
        folder,
        watch_filter=_NotesFilter(folder, index_dir),
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        rust_timeout=TIMEOUT_MS,
        yield_on_timeout=True,
        stop_event=stop,
    ):
        if first:
            first = False
            built(build_index(notes_dir, index_dir, replace=replace, model=model), True)
        elif found:
            try:
                built(_rebuild(folder, index_dir, model), False)
            except YtnotesError as exc:
                failed(exc)


def _rebuild(folder: Path, index_dir: Path, model: Path | None = None) -> BuildReport:
    """One rebuild, waiting for a build that holds the index (someone's `ytnotes build`) to finish."""
    from search.build import build_index

    deadline = time.monotonic() + LOCKED_WAIT_SECONDS
    while True:
        try:
            return build_index(folder, index_dir, model=model)
        except BuildLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class _NotesFilter:
    """Which changes can alter the index: anything below the notes folder but hidden files and folders (the
    build skips them too), editors' side files, and the index itself (when it lies inside the notes folder, its
    own writes would otherwise start the next rebuild)."""

    def __init__(self, folder: Path, index_dir: Path) -> None:
        self.folder = folder.resolve()
        self.index_dir = index_dir.resolve()

    def __call__(self, change: object, path: str) -> bool:
        p = Path(path)
        if p == self.index_dir or self.index_dir in p.parents:
            return False
        try:
            parts = p.relative_to(self.folder).parts
        except ValueError:
            return True
        return not any(part.startswith(".") for part in parts) and not p.name.endswith(EDITOR_FILES)
