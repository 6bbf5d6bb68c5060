"""The notes of one video read against each other: the notes whose clock the video's other notes decide.

A note's clock is read from its own values (`search.timestamps`), except when the other notes of its video show
that it writes minutes:seconds:fraction (`timestamps.agrees_as_fraction`: read as hours it runs far past them,
read so it cites their moments). The build decides that before reading any note, from the files alone: each
note's videoId (its frontmatter line) and, only for a video with more than one note, the values of the notes'
anchors (``data-t``). The decision is part of the note's key in the index's manifest (`key`), so a rebuild reads a
note again when a change to another note of its video changes how its clock reads.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from search import timestamps as ts
from search.markup import DATA_T

#: ``videoId: abc...`` as a line of the frontmatter (quoted or not), looked for in a note's first bytes only.
_VIDEO = re.compile(rb"""^videoId:[ \t]*["']?([A-Za-z0-9_-]{11})["']?[ \t]*\r?$""", re.MULTILINE)
_HEAD = 4096


#: An anchor value past the first hour if read as hours (``01:10:17``): a note needs ``ts.AGREE_MIN`` of them for
#: its video's other notes to decide its clock (`ts.may_read_as_fraction`).
_PAST_AN_HOUR = re.compile(rb"""data-t\s*=\s*["']\s*0*[1-9]\d*:\d{1,3}:\d""", re.IGNORECASE)


def video_of(data: bytes) -> str | None:
    """The videoId a note's frontmatter names, else None (the full reading of the note checks it properly)."""
    if not data.removeprefix(b"\xef\xbb\xbf").startswith(b"---"):
        return None
    m = _VIDEO.search(data, 0, _HEAD)
    return m.group(1).decode() if m else None


def scan(data: bytes) -> tuple[str | None, bool]:
    """What the build notes of a file while it hashes it: its videoId, and whether the other notes of its video
    might decide its clock (it has ``ts.AGREE_MIN`` anchors past the first hour if read as hours)."""
    video = video_of(data)
    if video is None:
        return None, False
    past = itertools.islice(_PAST_AN_HOUR.finditer(data), ts.AGREE_MIN)
    return video, sum(1 for _ in past) >= ts.AGREE_MIN


def anchor_values(text: str) -> list[ts.Parts]:
    """The values of a note's timestamp anchors, in file order (those that are no value left out)."""
    values = []
    for m in DATA_T.finditer(text):
        with contextlib.suppress(ts.TimestampError):
            values.append(ts.split(m.group(1)))
    return values


def decide(notes: Iterable[tuple[str, Path, str | None, bool]]) -> dict[str, int]:
    """For each note (its key, file, videoId and whether it might be decided: `scan`) whose clock the other notes of
    its video decide, the latest time of those notes: `parse_note`'s ``others_latest``. Files are read again only
    for videos with more than one note, one of which might be decided; one that cannot be read is left out here
    (its full reading reports it)."""
    by_video: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    maybe: set[str] = set()
    for key, path, video, candidate in notes:
        if video is not None:
            by_video[video].append((key, path))
            if candidate:
                maybe.add(video)
    out: dict[str, int] = {}
    for video, group in by_video.items():
        if len(group) < 2 or video not in maybe:
            continue
        values: dict[str, list[ts.Parts]] = {}
        for key, path in group:
            try:
                values[key] = anchor_values(path.read_bytes().decode("utf-8", errors="replace"))
            except OSError:
                continue
        times: dict[str, list[int]] = {}  # each note read alone, when another note needs it
        for key, own in values.items():
            if not ts.may_read_as_fraction(own):
                continue
            for other, read in values.items():
                if other != key and other not in times:
                    times[other] = ts.alone(read)
            others = [t for other, read in times.items() if other != key for t in read]
            if others and ts.agrees_as_fraction(own, others):
                out[key] = max(others)
    return out


def key(sha256: str, others_latest: int | None) -> str:
    """A note's key in the manifest: the hash of its bytes, and what the video's other notes decided of its clock."""
    return sha256 if others_latest is None else f"{sha256}+fraction-by-others:{others_latest}"
