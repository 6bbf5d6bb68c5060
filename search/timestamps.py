"""Timestamp values: reading the forms notes use, the repairs we make, and deep links.

Real notes write one moment in several ways, and some write them wrongly. The rules, decided once per note
because a note's author (or generator) tends to make the same mistake throughout:

* ``MM:SS`` is minutes and seconds; ``H:MM:SS`` / ``HH:MM:SS`` is hours, minutes and seconds.
* ``A:B:C:D`` (four parts) is read as ``A:B:C`` and the last part (frames or centiseconds) is dropped.
* A note in which two or more three-part values cannot be hours:minutes:seconds because of their last part (above
  59, three digits: ``03:21:921``, ``08:20:79``) or their size (``46:40:53``, past ``MAX_SECONDS``) writes
  *minutes:seconds:fraction*: all its three-part values are read that way, except ``H:MM:SS`` values written with a
  one-digit hour (``1:26:07``) in a note whose other values have two-digit first parts. So does a note where most
  values with real seconds repeat them (``04:16:16``, ``06:12:12``: *minutes:seconds:seconds*).
* A note in which every three-part value (three or more of them) ends in ``:00``, and some start with a
  non-zero part, writes *minutes:seconds:00*: the chance that real hour-minute-second times all fall on whole
  minutes is negligible. (Only ``00:MM:00`` values look like chapter marks and keep their plain reading.)
* Otherwise each run of values (one boundary: the timestamps of one bracket or anchor run) that ends in ``:00`` is
  read as hours or as minutes:seconds, whichever makes the note's times plausible *as a sequence*: consecutive
  anchors of a note are close in time, so ``00:00:54, 00:00:59, 01:03:00, 01:09:00`` is 54, 59, 63 and 69 seconds,
  while ``01:09:13, 01:11:00, 01:13:42`` keeps its hour. Reading a whole-minute value as minutes:seconds is cheap in a
  note that has many of them (at least ``MIXED_MIN`` and a tenth of its values with real seconds: they do not
  happen by chance, 1 in 60), expensive elsewhere; a value whose hour is more than one above the note's largest real
  hour, past twice its latest time with real seconds (and ``LATEST_MARGIN``), or past ``MAX_SECONDS``, cannot be
  hours. One reading per run: never two inside one bracket. In such a note whose every value with real seconds
  ends in a single digit (``01:23:05``, ``05:01:04``: 1 in 6 each by chance), that digit is a fraction: those values
  get the minutes:seconds reading as a choice too. And in such a note, a value with real seconds that cannot be
  hours, past twice every other time of the note (whole-minute values as minutes:seconds) and ``LATEST_MARGIN``
  (``04:49:53`` among ``04:38:00``, ``05:01:00`` and times below an hour), is minutes:seconds:fraction. See
  ``read_clock`` for the costs.
* Notes of one video cite the same moments (they are written from one transcript). A note read as hours whose
  latest time is past twice the latest time of the video's other notes (and ``LATEST_MARGIN``), while read as
  minutes:seconds:fraction its values fall within the other notes' times and at least a third of them (three or
  more) within a second of one of those times, writes *minutes:seconds:fraction*: ``01:10:17, 02:20:24, 05:54:57``
  beside ``01:10:00, 02:20:00, 05:54:00`` read as 70, 140 and 354 s. (`agrees_as_fraction`; the build decides it before
  reading the notes, `search.video_clocks`, and tells `read_clock`.)
* After that, a value with minutes or seconds above 59, or longer than ``MAX_SECONDS``, is dropped with a
  warning: no single reading is clearly right.
"""

from __future__ import annotations

import bisect
import itertools
import math
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
    first_digits: int = 2


def split(raw: str) -> Parts:
    """Split a raw value such as ``01:02:03`` into numbers; raise TimestampError when it is not a value."""
    text = raw.strip()
    if not _VALUE_RE.fullmatch(text):
        raise TimestampError(f"not a timestamp: {raw!r}")
    fields = text.split(":")
    if len(fields) == 4:
        fields = fields[:3]
    return Parts(
        raw=text,
        numbers=tuple(int(f) for f in fields),
        last_digits=len(fields[-1]),
        first_digits=len(fields[0]),
    )


def _impossible_last(p: Parts) -> bool:
    """A three-part value with real seconds that cannot be hours:minutes:seconds (its last part, or its size)."""
    if len(p.numbers) != 3:
        return False
    a, b, c = p.numbers
    return c > 59 or p.last_digits > 2 or (c != 0 and a * 3600 + b * 60 + c > MAX_SECONDS)


def _one_digit_hour(p: Parts, three: Sequence[Parts]) -> bool:
    """``1:26:07`` among ``04:45:10``-style values: the writer spelled this one as H:MM:SS."""
    return p.first_digits == 1 and sum(q.first_digits >= 2 for q in three) > len(three) // 2


def _seconds_twice(three: Sequence[Parts]) -> bool:
    """``04:16:16``, ``06:12:12``: most values with real seconds repeat them (1 in 60 by chance), MM:SS:SS."""
    real = [p for p in three if p.numbers[2] != 0]
    twice = sum(1 for p in real if p.numbers[1] == p.numbers[2])
    return twice >= 3 and twice * 2 >= len(real)


def choose_reading(values: Iterable[Parts]) -> tuple[Reading, int]:
    """Decide how one note's three-part values are read; also return the largest 'real' hour (see module doc)."""
    three = [p for p in values if len(p.numbers) == 3]
    if sum(1 for p in three if _impossible_last(p)) >= 2 or _seconds_twice(three):
        return Reading.FRACTION, 0
    if len(three) >= 3 and all(p.numbers[2] == 0 for p in three) and any(p.numbers[0] > 0 for p in three):
        return Reading.MINUTES, 0
    real_hours = [
        a for a, b, c in (p.numbers for p in three) if c != 0 and a * 3600 + b * 60 + c <= MAX_SECONDS
    ]
    return Reading.HOURS, max(real_hours, default=0)


def to_seconds(p: Parts, reading: Reading = Reading.HOURS, max_real_hour: int | None = None) -> int:
    """Seconds for one value under a reading; raise TimestampError for values no reading repairs.

    ``max_real_hour`` (from choose_reading) turns on the per-value repair of ``A:B:00`` whose hour is more than one
    above it; None reads as written.
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


#: A note with at least this many whole-minute values ``A:B:00`` (A > 0) ...
MIXED_MIN = 3
#: ... and at least one for every this many values with real seconds writes some of its times as minutes:seconds:00
#: (by chance, 1 value in 60 ends in :00): reading one as minutes:seconds is then free, elsewhere it costs
#: ``MINUTES_COST`` (enough that only an impossible hour, or a sequence far out of place, turns it).
MIXED_RATIO = 10
MINUTES_COST = 8.0
#: An hours reading of a whole-minute value in such a note costs this much (the 1-in-60 chance, mildly).
HOURS_COST_MIXED = 1.0
#: Changing reading from one run to the next costs this much: a writer keeps one habit for a stretch of a note.
SWITCH_COST = 1.0
#: A whole-minute value whose hours reading is past twice the note's latest time with real seconds, and this many
#: seconds more, cannot be hours (a 13-minute video's ``01:17:00`` between 0:05:03 and 0:05:19).
LATEST_MARGIN = 600
#: A value dropped because one reading cannot read it (another value of its run needs that reading).
DROP_COST = 10.0
#: Consecutive anchors cost log(1 + gap / JUMP_SCALE): notes cite the video every few tens of seconds, so a reading
#: that puts neighbours an hour apart costs about 5, one that keeps them a minute apart about 1. Logarithmic, as
#: notes do jump between sections.
JUMP_SCALE = 30.0


@dataclass
class Clock:
    """A note's times read together: seconds (or the reason a value was dropped) per value of each run."""

    reading: Reading
    seconds: list[list[int | TimestampError]]
    #: Values read as minutes:seconds by the sequence rule (hours-reading notes only), and one example: whole-minute
    #: values (``01:39:00``), and values whose last part is a fraction (``01:23:05``).
    repaired: int = 0
    example: str = ""
    fractions: int = 0
    fraction_example: str = ""
    #: The latest time of the video's other notes, when their agreement decided the minutes:seconds:fraction
    #: reading (`agrees_as_fraction`); with the latest time the note's values would have read as hours.
    others_latest: int | None = None
    hours_latest: int | None = None

    def warning(self) -> str | None:
        """The one-line repair note for the whole note, or None when every value was read as written."""
        if self.others_latest is not None:
            return (
                "reads its three-part timestamps as minutes:seconds:fraction, as the video's other notes cite the "
                f"same moments (read as hours they would run to {format_hms(self.hours_latest or 0)}, past "
                f"those notes' latest, {format_hms(self.others_latest)})"
            )
        if self.reading is Reading.FRACTION:
            return "reads its three-part timestamps as minutes:seconds:fraction (some cannot be hours)"
        if self.reading is Reading.MINUTES:
            return "reads its timestamps as minutes:seconds:00 (every three-part value ends in :00)"
        done = []
        if self.repaired:
            which = "timestamp" if self.repaired == 1 else "timestamps"
            done.append(f"{self.repaired} {which} such as {self.example} as minutes:seconds:00")
        if self.fractions:
            which = "timestamp" if self.fractions == 1 else "timestamps"
            done.append(
                f"{self.fractions} {which} such as {self.fraction_example} as minutes:seconds:fraction"
            )
        if done:
            return f"read {' and '.join(done)} (read as hours they would not fit the note's other times)"
        return None


def read_clock(runs: Sequence[Sequence[Parts]], others_latest: int | None = None) -> Clock:
    """Seconds for every value of one note, its runs (boundaries) in file order, by the module's rules.
    ``others_latest``: the note reads minutes:seconds:fraction because the other notes of its video, whose latest
    time this is, say so (`agrees_as_fraction`, decided by the build: `search.video_clocks`).

    Under the hours reading the choice for runs of whole-minute values is a shortest path (Viterbi) over the runs,
    two states each (hours, minutes:seconds), costing: each value's prior (``MINUTES_COST`` or free for a
    minutes:seconds reading, ``HOURS_COST_MIXED`` for an hours reading in a note that mixes them), the jump from one
    value to the next (``JUMP_SCALE``), ``SWITCH_COST`` between runs read differently, and ``DROP_COST`` for a value
    its run's reading cannot read. Linear in the number of values.
    """
    flat = [p for run in runs for p in run]
    reading, max_hour = choose_reading(flat)
    three = [p for p in flat if len(p.numbers) == 3]
    if others_latest is not None:
        clock = Clock(Reading.FRACTION, [[_fixed(p, Reading.FRACTION, three) for p in run] for run in runs])
        clock.others_latest, clock.hours_latest = others_latest, max(alone(flat), default=0)
        return clock
    if reading is not Reading.HOURS:
        return Clock(reading, [[_fixed(p, reading, three) for p in run] for run in runs])

    whole = sum(1 for p in three if p.numbers[2] == 0 and p.numbers[0] > 0)
    real = sum(1 for p in three if p.numbers[2] != 0)
    mixed = whole >= MIXED_MIN and whole * MIXED_RATIO >= real
    minutes_cost = 0.0 if mixed else MINUTES_COST
    far = _far_out(three) if mixed else set()
    # The latest plausible hours reading: twice the latest time written with real seconds, and 10 minutes more.
    real_times = [
        t
        for t in (_try(p, Reading.HOURS) for p in flat if p.numbers[-1] != 0 and p.raw not in far)
        if isinstance(t, int)
    ]
    latest = 2 * max(real_times) + LATEST_MARGIN if real_times else 0
    hours_cost = HOURS_COST_MIXED if mixed else 0.0

    # ``01:23:05`` among ``01:18:00, 01:29:00``: in a note that writes whole minutes as A:B:00 and whose every other
    # value ends in a single digit (1 in 6 by chance, each), the last part is a fraction of a second: the value has
    # a minutes:seconds reading too, and the sequence decides, as for whole-minute values.
    fractions = mixed and _small_fractions(three)

    def options(p: Parts) -> _Options:
        if p.raw in far:
            fraction = _try(p, Reading.MINUTES)
            return _Options((fraction, fraction), (0.0, 0.0))
        hours = _try(p, Reading.HOURS)
        if fractions and _small_fraction(p):
            return _Options((hours, _try(p, Reading.MINUTES)), (0.0, 0.0))
        if not (len(p.numbers) == 3 and p.numbers[2] == 0):
            return _Options((hours, hours), (0.0, 0.0))
        minutes = _try(p, Reading.MINUTES)
        if p.numbers[0] > max_hour + 1 or (isinstance(hours, int) and latest and hours > latest):
            hours = TimestampError(f"{p.raw}: as hours it is far past the note's other times")
        if isinstance(
            hours, TimestampError
        ):  # the only reading left costs nothing (the old per-value repair)
            return _Options((hours, minutes), (0.0, 0.0))
        return _Options((hours, minutes), (hours_cost, minutes_cost))

    # Viterbi over the runs; state 0 reads the run's whole-minute values as hours, 1 as minutes:seconds.
    cost = [0.0, 0.0]
    last: list[int | None] = [None, None]  # the last time read on the best path ending in each state
    came_from: list[
        tuple[int, int]
    ] = []  # per run: the previous run's state on the best path into each state
    for run in runs:
        opts = [options(p) for p in run]
        new_cost, new_last, came = [0.0, 0.0], list(last), [0, 0]
        for state in (0, 1):
            own, times = 0.0, []
            for o in opts:
                value = o.values[state]
                if isinstance(value, int):
                    own += o.costs[state]
                    times.append(value)
                elif isinstance(o.values[1 - state], int):
                    own += DROP_COST
            own += sum(_jump(a, b) for a, b in itertools.pairwise(times))
            choices = []
            for before in (0, 1):
                c = cost[before] + (SWITCH_COST if before != state else 0.0)
                previous = last[before]
                if times and previous is not None:
                    c += _jump(previous, times[0])
                choices.append((c, before))
            best, came[state] = min(choices)
            new_cost[state] = best + own
            new_last[state] = times[-1] if times else last[came[state]]
        came_from.append((came[0], came[1]))
        cost, last = new_cost, new_last

    states = [0] * len(runs)
    state = 0 if cost[0] <= cost[1] else 1
    for i in range(len(runs) - 1, -1, -1):
        states[i] = state
        state = came_from[i][state]

    clock = Clock(reading, [])
    for run, state in zip(runs, states, strict=True):
        out: list[int | TimestampError] = []
        for p in run:
            o = options(p)
            value = o.values[state]
            if p.raw in far and isinstance(value, int):
                clock.fractions += 1
                clock.fraction_example = clock.fraction_example or p.raw
            elif state == 1 and o.values[0] is not value and isinstance(value, int):
                if p.numbers[2] == 0:
                    clock.repaired += 1
                    clock.example = clock.example or p.raw
                else:
                    clock.fractions += 1
                    clock.fraction_example = clock.fraction_example or p.raw
            out.append(value)
        clock.seconds.append(out)
    return clock


#: Of a note's three-part values read as minutes:seconds:fraction, at least this share (and ``AGREE_MIN``) within
#: ``AGREE_SECONDS`` of a time of another note of the video is agreement (`agrees_as_fraction`).
AGREE_SHARE = 1 / 3
AGREE_MIN = 3
AGREE_SECONDS = 1


def alone(values: Sequence[Parts]) -> list[int]:
    """The times of a note's values as the note reads on its own (each value a run of its own), dropped ones left
    out: what the other notes of its video are read against."""
    clock = read_clock([[p] for p in values])
    return [t for run in clock.seconds for t in run if isinstance(t, int)]


def may_read_as_fraction(values: Sequence[Parts]) -> bool:
    """Whether the other notes of its video could make a note read minutes:seconds:fraction (`agrees_as_fraction`):
    it reads as hours on its own, with ``AGREE_MIN`` or more values past the first hour. Most notes do not."""
    if sum(1 for p in values if len(p.numbers) == 3 and p.numbers[0] > 0) < AGREE_MIN:
        return False
    return choose_reading(values)[0] is Reading.HOURS


def agrees_as_fraction(values: Sequence[Parts], others: Sequence[int]) -> bool:
    """Whether a note reads its clock as minutes:seconds:fraction because the other notes of its video (their
    times ``others``, each note read alone) say so: read as hours its latest time is past twice theirs and
    ``LATEST_MARGIN``, while read as minutes:seconds:fraction every value fits before that and at least a third of
    its three-part values (``AGREE_MIN`` or more) fall within a second of one of their times. Notes written from one
    transcript cite the same moments; a note of a later part of a long video does not land on them by chance."""
    if not others or not may_read_as_fraction(values):
        return False
    three = [p for p in values if len(p.numbers) == 3]
    limit = 2 * max(others) + LATEST_MARGIN
    if max(alone(values), default=0) <= limit:
        return False
    read = [_try(p, Reading.FRACTION) for p in three]
    times = [t for t in read if isinstance(t, int)]
    if len(times) < len(read) or max(times) > limit:
        return False
    ordered = sorted(others)

    def near(t: int) -> bool:
        i = bisect.bisect_left(ordered, t - AGREE_SECONDS)
        return i < len(ordered) and ordered[i] <= t + AGREE_SECONDS

    agreeing = sum(1 for t in times if near(t))
    return agreeing >= AGREE_MIN and agreeing >= AGREE_SHARE * len(times)


def _far_out(three: Sequence[Parts]) -> set[str]:
    """In a note that writes whole minutes as ``A:B:00``, the values with real seconds that cannot be hours: read so,
    they fall past twice every other time of the note and ``LATEST_MARGIN`` more (``04:49:53`` among ``04:38:00``,
    ``05:01:00`` and times below an hour). They are minutes:seconds:fraction. The other times are the whole-minute
    values read as minutes:seconds and the other values with real seconds read as hours."""
    times: dict[str, int] = {}
    for p in three:
        t = _try(p, Reading.MINUTES if p.numbers[2] == 0 else Reading.HOURS)
        if isinstance(t, int):
            times[p.raw] = t
    # The latest other time of each value is the latest of all, or the one before it for the latest value itself.
    ranked = sorted(times, key=times.__getitem__, reverse=True)[:2]
    far = set()
    for p in three:
        if p.numbers[2] == 0 or p.numbers[0] == 0 or not isinstance(_try(p, Reading.MINUTES), int):
            continue
        others = [times[raw] for raw in ranked if raw != p.raw][:1]
        if others and times.get(p.raw, 0) > 2 * others[0] + LATEST_MARGIN:
            far.add(p.raw)
    return far


#: A last part (not 0) below this may be a fraction of a second rather than seconds (see `read_clock`).
SMALL_FRACTION = 10


def _small_fraction(p: Parts) -> bool:
    """``A:B:C`` with A > 0 and 0 < C < SMALL_FRACTION."""
    return len(p.numbers) == 3 and p.numbers[0] > 0 and 0 < p.numbers[2] < SMALL_FRACTION


def _small_fractions(three: Sequence[Parts]) -> bool:
    """Whether a note's values with real seconds and a non-zero first part (at least one) all end in a single
    digit: its writer's ``A:B:C`` is minutes:seconds:fraction, with whole minutes as ``A:B:00``."""
    real = [p for p in three if p.numbers[0] > 0 and p.numbers[2] != 0]
    return bool(real) and all(_small_fraction(p) for p in real)


@dataclass(frozen=True)
class _Options:
    """One value's (hours, minutes:seconds) readings, an error where impossible, and their prior costs."""

    values: tuple[int | TimestampError, int | TimestampError]
    costs: tuple[float, float]


def _jump(a: int, b: int) -> float:
    return math.log1p(abs(a - b) / JUMP_SCALE)


def _try(p: Parts, reading: Reading, max_hour: int | None = None) -> int | TimestampError:
    try:
        return to_seconds(p, reading, max_hour)
    except TimestampError as exc:
        return exc


def _fixed(p: Parts, reading: Reading, three: Sequence[Parts]) -> int | TimestampError:
    if reading is Reading.FRACTION and len(p.numbers) == 3 and _one_digit_hour(p, three):
        return _try(p, Reading.HOURS)
    return _try(p, reading)


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
    clock = read_clock([[split(r)] for r in raws])
    out = []
    for value in (v for run in clock.seconds for v in run):
        if isinstance(value, TimestampError):
            raise value
        out.append(value)
    return out
