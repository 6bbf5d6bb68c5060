"""Finding note files in a folder and reading one note: frontmatter, channel, and the lines of its body."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from search.errors import NoteError
from search.markup import repair_mojibake
from search.timestamps import valid_video_id

#: The largest real note we have seen is 36 KB; a note 30 times that is a pasted transcript or an accident,
#: and embedding it would only return its first 256 tokens anyway.
MAX_NOTE_BYTES = 1024 * 1024

_FROM_LINE = re.compile(r"^\s*From:\s*\[\[([^\[\]|]+?)\s*(?:\|\s*([^\[\]]+?)\s*)?\]\]", re.IGNORECASE)
_FRONTMATTER_FENCE = re.compile(r"^---\s*$")


@dataclass(frozen=True)
class Note:
    """One note file, read and validated."""

    path: Path
    rel: str
    title: str
    video_id: str | None
    channel: str | None
    channel_key: str | None
    lines: list[str]
    body_start: int
    sha256: str


def find_notes(root: Path, errors: list[NoteError] | None = None) -> Iterator[Path]:
    """Every ``*.md`` file below root in a stable order, skipping hidden folders and symlink loops.

    A folder that cannot be listed, and a ``*.md`` that is not a regular file (a FIFO or a device would block or
    never end when read; a broken symlink or a symlink loop cannot be read), is reported in ``errors`` (or
    raised when no list is given) and skipped.
    """
    seen: set[tuple[int, int]] = set()

    def report(error: NoteError) -> None:
        if errors is None:
            raise error
        errors.append(error)

    def walk(folder: Path) -> Iterator[Path]:
        try:
            st = folder.stat()
        except OSError:
            return
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            report(NoteError(folder, f"cannot list the folder ({exc.strerror}); check its permissions"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError as exc:  # a symlink loop
                if entry.name.endswith(".md"):
                    report(NoteError(path, f"cannot read it ({exc.strerror}); fix or remove the link"))
                continue
            if is_dir:
                yield from walk(path)
            elif entry.name.endswith(".md") and is_file:
                yield path
            elif entry.name.endswith(".md"):
                report(NoteError(path, _not_a_file(entry)))

    yield from walk(root)


def _not_a_file(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink() and not os.path.exists(entry.path):
        return "it is a broken symlink; fix or remove it"
    return "it is not a regular file (a FIFO, socket or device); remove it from the notes folder"


def read_note(path: Path, root: Path) -> Note:
    """Read and validate one note; raise NoteError naming the file and the way out."""
    rel = path.relative_to(root).as_posix()
    try:
        size = path.stat().st_size
        if size > MAX_NOTE_BYTES:
            raise NoteError(
                path,
                f"{size / 1e6:.1f} MB is over the {MAX_NOTE_BYTES // 1024} KB limit for one "
                "note; split it into smaller notes",
            )
        data = path.read_bytes()
    except OSError as exc:
        raise NoteError(path, f"cannot read it ({exc.strerror}); check its permissions") from exc
    if not data.strip():
        raise NoteError(path, "the file is empty; write the note or delete the file")
    if b"\x00" in data:
        raise NoteError(path, "it holds binary data (NUL bytes), not text; remove it from the notes folder")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise NoteError(
            path, f"not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8", line=line
        ) from exc
    lines = [repair_mojibake(line) for line in text.splitlines()]
    meta, body_start = _frontmatter(path, lines)

    title = meta.get("title")
    title = str(title).strip() if title not in (None, "") else path.stem
    video_id = meta.get("videoId")
    video_id = str(video_id).strip() if video_id is not None else None
    if not valid_video_id(video_id):
        video_id = None
    channel, channel_key = _channel(lines, body_start)
    return Note(
        path=path,
        rel=rel,
        title=title,
        video_id=video_id,
        channel=channel,
        channel_key=channel_key,
        lines=lines,
        body_start=body_start,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _frontmatter(path: Path, lines: list[str]) -> tuple[dict[str, object], int]:
    """The metadata and the index of the first body line; a note without frontmatter has empty metadata."""
    if not lines or not _FRONTMATTER_FENCE.match(lines[0]):
        return {}, 0
    end = next((i for i in range(1, len(lines)) if _FRONTMATTER_FENCE.match(lines[i])), None)
    if end is None:
        raise NoteError(
            path, "the frontmatter opened by '---' on line 1 is never closed; add a '---' line", line=1
        )
    import frontmatter
    import yaml

    try:
        meta = frontmatter.YAMLHandler().load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise NoteError(path, f"invalid YAML frontmatter ({problem}); fix or remove it", line=line) from exc
    if not isinstance(meta, dict):
        raise NoteError(path, "the frontmatter is not a 'key: value' mapping; fix or remove it", line=2)
    return {str(k): v for k, v in meta.items()}, end + 1


def _channel(lines: list[str], body_start: int) -> tuple[str | None, str | None]:
    """The channel of the first ``From: [[name]]`` line: shown as written (its alias when there is one), and
    the key it is compared by (the name, case-folded)."""
    for line in lines[body_start : body_start + 20]:
        m = _FROM_LINE.match(line)
        if m:
            name = m.group(1).strip()
            return (m.group(2) or name).strip(), name.casefold()
    return None, None
