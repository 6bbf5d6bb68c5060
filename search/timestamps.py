"""Timestamp values: reading the forms notes use, the repairs we make, and deep links.

Real notes write one moment in several ways, and some write them wrongly. The rules, decided once per note
because a note's author (or generator) tends to make the same mistake throughout:

* ``MM:SS`` is minutes and seconds; ``H:MM:SS`` / ``HH:MM:SS`` is hours, minutes and seconds.
* ``A:B:C:D`` (four parts) is read as ``A:B:C`` and the last part (frames or centiseconds) is dropped.
* A note in which two or more three-part values end in a part above 59 or of three digits (``03:21:921``,
  ``08:20:79``) writes *minutes:seconds:fraction*: all its three-part values are read that way.
* A note in which every three-part value (three or more of them) ends in ``:00``, and some start with a
  non-zero part, writes *minutes:seconds:00*: the chance that real hour-minute-second times all fall on whole
  minutes is negligible. (Only ``00:MM:00`` values look like chapter marks and keep their plain reading.)
* Otherwise a value ``A:B:00`` whose hour ``A`` is more than one above the largest hour among the note's values
  with real seconds is read as ``A:B`` minutes and seconds (``56:04:00`` in a one-hour talk is 56 min 4 s).
* After that, a value with minutes or seconds above 59, or longer than ``MAX_SECONDS``, is dropped with a
  warning: no single reading is clearly right.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

#: Videos longer than this are vanishingly rare on YouTube; a later time is a typo we cannot repair.
MAX_SECONDS = 12 * 3600

#: A value: one to four groups of one to three digits separated by colons.
VALUE = r"\d{1,3}(?::\d{1,3}){1,3}"
_VALUE_RE = re.compile(VALUE)


class Reading(Enum):
    """How a note's three-part values are read."""

    HOURS = "h:m:s"
    FRACTION = "m:s:fraction"
    MINUTES = "m:s:00"


class TimestampError(ValueError):
    """A timestamp value that cannot be read; the message says why."""


@dataclass(frozen=True)
class Parts:
    """A value split into its numeric parts, with the digit count of the last one."""

    raw: str
    numbers: tuple[int, ...]
    last_digits: int


def split(raw: str) -> Parts:
    """Split a raw value such as ``01:02:03`` into numbers; raise TimestampError when it is not a value."""
    text = raw.strip()
    if not _VALUE_RE.fullmatch(text):
        raise TimestampError(f"not a timestamp: {raw!r}")
    fields = text.split(":")
    if len(fields) == 4:
        fields = fields[:3]
    return Parts(raw=text, numbers=tuple(int(f) for f in fields), last_digits=len(fields[-1]))


def _impossible_last(p: Parts) -> bool:
    return len(p.numbers) == 3 and (p.numbers[2] > 59 or p.last_digits > 2)


def choose_reading(values: Iterable[Parts]) -> tuple[Reading, int]:
    """Decide how one note's three-part values are read; also return the largest 'real' hour (see module doc)."""
    three = [p for p in values if len(p.numbers) == 3]
    if sum(1 for p in three if _impossible_last(p)) >= 2:
        return Reading.FRACTION, 0
    if len(three) >= 3 and all(p.numbers[2] == 0 for p in three) and any(p.numbers[0] > 0 for p in three):
        return Reading.MINUTES, 0
    real_hours = [
        a for a, b, c in (p.numbers for p in three) if c != 0 and a * 3600 + b * 60 + c <= MAX_SECONDS
    ]
    return Reading.HOURS, max(real_hours, default=0)


def to_seconds(p: Parts, reading: Reading = Reading.HOURS, max_real_hour: int | None = None) -> int:
    """Seconds for one value under a note's reading; raise TimestampError for values no reading repairs.

    ``max_real_hour`` (from choose_reading) turns on the per-value repair of ``A:B:00``; None reads as written.
    """
    if len(p.numbers) == 2:
        h, (m, s) = 0, p.numbers
    elif len(p.numbers) == 3:
        a, b, c = p.numbers
        as_minutes = max_real_hour is not None and c == 0 and a > max_real_hour + 1
        if reading is Reading.HOURS and not as_minutes:
            h, m, s = a, b, c
        else:
            h, m, s = 0, a, b
    else:
        raise TimestampError(f"not a timestamp: {p.raw!r}")
    if s > 59 or (h > 0 and m > 59):
        raise TimestampError(f"{p.raw} has minutes or seconds above 59")
    total = h * 3600 + m * 60 + s
    if total > MAX_SECONDS:
        raise TimestampError(f"{p.raw} is later than {MAX_SECONDS // 3600} hours")
    return total


def parse(raw: str) -> int:
    """Seconds for a single value read on its own (``MM:SS`` or ``H:MM:SS``)."""
    return to_seconds(split(raw))


def format_hms(seconds: int) -> str:
    """``HH:MM:SS`` for a number of seconds."""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


_VIDEO_ID_RE = re.compile(r"[A-Za-z0-9_-]{11}")


def valid_video_id(video_id: object) -> bool:
    """True for an 11-character YouTube id."""
    return isinstance(video_id, str) and bool(_VIDEO_ID_RE.fullmatch(video_id))


def video_url(video_id: str, seconds: int | None) -> str:
    """The deep link to a moment; the video's start when there is no time."""
    base = f"https://www.youtube.com/watch?v={video_id}"
    return base if seconds is None else f"{base}&t={int(seconds)}s"


def seconds_list(raws: Sequence[str]) -> list[int]:
    """Seconds for values read together as one note (used by tests and tools)."""
    parts = [split(r) for r in raws]
    reading, hour = choose_reading(parts)
    return [to_seconds(p, reading, hour) for p in parts]
