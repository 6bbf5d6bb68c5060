"""Cutting a note's body into segments: the text each timestamp boundary closes.

A note is first split into blocks (a paragraph, a list item, a table row, a callout paragraph, a heading, a
code fence). Inside a block, a *boundary* is a run of adjacent timestamps (anchors, ``[MM:SS]``,
``[H:MM:SS](link)``, ``[00:01:42, 00:02:30]``) separated by nothing but spaces, commas or semicolons; the text
since the previous boundary (or the block's start) is a segment carrying the run's times. Text after a block's
last boundary, and blocks without any, are *untimed* segments: they stay searchable, and their link uses the
time of the next timed segment in the same section, else the previous one, else the start of the video.

Timestamps inside code fences are not boundaries (they are removed from the code's text). A boundary at the
start of a block gives its times to the text after it; one with no text at all in its block gives them to the
section's previous segment.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from search import timestamps as ts
from search.markup import ANCHOR, DATA_T, WIKILINK, clean, remove_anchors, wikilink_text
from search.notes import Note

_PLAIN = re.compile(rf"(?<!\[)\[\s*(?P<values>{ts.VALUE}(?:\s*,\s*{ts.VALUE})*)\s*\](?!\])(?:\([^()\s]*\))?")
_TOKEN = re.compile(f"{ANCHOR.pattern}|{_PLAIN.pattern}", re.IGNORECASE | re.DOTALL)
_RUN_GAP = re.compile(r"^[\s,;]*$")
_LEADING_PUNCT = re.compile(r"^[.,;:!?)\]]+")
_WORDISH = re.compile(r"\w")

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")  # closing #s are stripped in _blocks
_FENCE = re.compile(r"^\s*(```+|~~~+)")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_TABLE_ROW = re.compile(r"^\s*\|")
# Possessive `\s*+`: two `\s*` around an optional `|` would share a long indentation in quadratically many ways.
_TABLE_RULE = re.compile(r"^\s*+\|?\s*+:?-{2,}:?\s*+(?:\|\s*+:?-{2,}:?\s*+)*+\|?\s*+$")
_QUOTE = re.compile(r"^(?:\s*>\s?)+")  # every level of `> > >` at once
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
_FROM = re.compile(r"^\s*From:\s*\[\[", re.IGNORECASE)


@dataclass
class Segment:
    """The text one boundary closes, with its times, heading path and line in the file (1-based)."""

    text: str
    times: list[int]
    heading: tuple[str, ...]
    line: int
    section: int
    link_time: int | None = None

    @property
    def timed(self) -> bool:
        return bool(self.times)


@dataclass
class Skip:
    """A timestamp that was found but not used, and why."""

    line: int
    raw: str
    reason: str


@dataclass
class ParsedNote:
    note: Note
    segments: list[Segment]
    skipped: list[Skip] = field(default_factory=list)
    repaired: list[Skip] = field(default_factory=list)
    reading: ts.Reading = ts.Reading.HOURS
    #: One line saying how the note's clock was repaired (ts.Clock.warning), or None.
    clock_repair: str | None = None

    @property
    def times(self) -> list[int]:
        return [t for s in self.segments for t in s.times]


@dataclass
class _Block:
    kind: str  # "text", "heading", "code"
    start: int  # 1-based line of the first line
    text: str  # lines joined with "\n"
    level: int = 0


@dataclass
class _Stamp:
    raw: str
    line: int
    label: str | None = None
    parts: ts.Parts | None = None


def parse_note(note: Note, others_latest: int | None = None) -> ParsedNote:
    """Segments of one note, with the timestamps that were skipped or repaired. ``others_latest``: the note's clock
    reads minutes:seconds:fraction because the other notes of its video, whose latest time this is, say so
    (`search.video_clocks`)."""
    blocks = _blocks(note)
    parsed = ParsedNote(note=note, segments=[])
    stamps: list[_Stamp] = []
    runs_by_block: list[list[tuple[int, int, list[_Stamp]]]] = []
    for block in blocks:
        runs = [] if block.kind == "code" else _runs(block)
        runs_by_block.append(runs)
        stamps.extend(s for _, _, run in runs for s in run)
        if block.kind == "code":
            lines_before = _lines_before(block.text)
            for m in _TOKEN.finditer(block.text):
                line = block.start + lines_before(m.start())
                parsed.skipped.append(Skip(line, m.group(0), "inside a code fence, not a boundary"))

    for stamp in stamps:
        try:
            stamp.parts = ts.split(stamp.raw)
        except ts.TimestampError as exc:
            parsed.skipped.append(Skip(stamp.line, stamp.raw, str(exc)))
    readable = [[s for s in run if s.parts] for runs in runs_by_block for _, _, run in runs]
    readable = [run for run in readable if run]
    clock = ts.read_clock([[s.parts for s in run if s.parts] for run in readable], others_latest)
    parsed.reading, parsed.clock_repair = clock.reading, clock.warning()
    seconds: dict[int, int] = {}
    for run, values in zip(readable, clock.seconds, strict=True):
        for stamp, value in zip(run, values, strict=True):
            if isinstance(value, ts.TimestampError):
                parsed.skipped.append(Skip(stamp.line, stamp.raw, str(value)))
                continue
            seconds[id(stamp)] = value
            if stamp.label and stamp.label != stamp.raw and _seconds_as_written(stamp.label) != value:
                parsed.repaired.append(
                    Skip(stamp.line, stamp.raw, f"label [{stamp.label}] differs; data-t used")
                )

    heading: list[tuple[int, str]] = []
    section = 0
    for block, runs in zip(blocks, runs_by_block, strict=True):
        if block.kind == "heading":
            section += 1
            while heading and heading[-1][0] >= block.level:
                heading.pop()
            heading.append((block.level, clean(remove_anchors(block.text))))
        path = tuple(h for _, h in heading if h)
        if block.kind == "heading" and not runs:
            continue
        _cut(block, runs, seconds, path, section, parsed.segments)
    _link_times(parsed.segments)
    return parsed


def _seconds_as_written(label: str) -> int | None:
    try:
        return ts.parse(label)
    except ts.TimestampError:
        return None


def _blocks(note: Note) -> list[_Block]:
    blocks: list[_Block] = []
    current: list[str] = []
    start = 0
    kind = "text"
    fence: str | None = None

    def flush() -> None:
        nonlocal current
        if current:
            blocks.append(_Block(kind, start, "\n".join(current)))
        current = []

    for i in range(note.body_start, len(note.lines)):
        line, lineno = note.lines[i], i + 1
        if fence is not None:
            if line.strip().startswith(fence):
                flush()
                fence, kind = None, "text"
            else:
                current.append(line)
            continue
        m = _FENCE.match(line)
        if m:
            flush()
            fence, kind, start = m.group(1), "code", lineno + 1
            continue
        quote = _QUOTE.match(line)
        quoted = quote is not None
        if quote is not None:
            line = line[quote.end() :]
        if not line.strip() or _RULE.match(line) or _TABLE_RULE.match(line) or _FROM.match(line):
            flush()
            continue
        h = _HEADING.match(line)
        if h:
            flush()
            title = h.group(2).rstrip().rstrip("#").rstrip()  # `## Title ##`
            blocks.append(_Block("heading", lineno, title, level=len(h.group(1))))
            continue
        if _TABLE_ROW.match(line):
            flush()
            row = WIKILINK.sub(wikilink_text, line).replace("\\|", "/")
            cells = [c.strip() for c in row.strip().strip("|").split("|")]
            blocks.append(_Block("text", lineno, " ; ".join(c for c in cells if c)))
            continue
        if quoted and line.lstrip().startswith("[!"):  # a callout's title line stands alone
            flush()
            blocks.append(_Block("text", lineno, line))
            continue
        new_item = bool(_LIST_ITEM.match(line))
        if new_item or not current:
            flush()
            start = lineno
        current.append(_LIST_ITEM.sub("", line, count=1) if new_item else line)
    flush()
    return blocks


def _lines_before(text: str) -> Callable[[int], int]:
    """The number of newlines in text before an offset, by binary search (counting them again for each
    timestamp takes quadratic time in a long block)."""
    newlines = [m.start() for m in re.finditer("\n", text)]
    return lambda offset: bisect.bisect_left(newlines, offset)


def _runs(block: _Block) -> list[tuple[int, int, list[_Stamp]]]:
    """The boundaries of a block: (start, end, stamps) for each run of adjacent timestamps."""
    runs: list[tuple[int, int, list[_Stamp]]] = []
    lines_before = _lines_before(block.text)
    for m in _TOKEN.finditer(block.text):
        line = block.start + lines_before(m.start())
        if m.group("attrs") is not None:
            d = DATA_T.search(m.group("attrs"))
            label = re.sub(r"<[^>]*>", "", m.group("label")).strip().strip("[]").strip()
            raw = d.group(1).strip() if d and d.group(1).strip() else label
            found = [_Stamp(raw, line, label or None)]
        else:
            found = [_Stamp(v.strip(), line) for v in m.group("values").split(",")]
        if runs and _RUN_GAP.match(block.text[runs[-1][1] : m.start()]):
            s, _, prev = runs[-1]
            prev.extend(found)
            runs[-1] = (s, m.end(), prev)
        else:
            runs.append((m.start(), m.end(), found))
    return runs


def _cut(
    block: _Block,
    runs: list[tuple[int, int, list[_Stamp]]],
    seconds: dict[int, int],
    heading: tuple[str, ...],
    section: int,
    out: list[Segment],
) -> None:
    text = block.text
    if block.kind == "code":
        text = remove_anchors(text)
    pieces: list[tuple[int, int, list[int] | None]] = []
    pos = 0
    for start, end, stamps in runs:
        pieces.append((pos, start, [seconds[id(s)] for s in stamps if id(s) in seconds]))
        pos = end
    pieces.append((pos, len(text), None))

    first_in_block = len(out)
    pending: list[int] = []
    lines_before = _lines_before(text)
    for start, end, times in pieces:
        raw = text[start:end]
        lead = _LEADING_PUNCT.match(raw.lstrip())
        if lead and len(out) > first_in_block:
            out[-1].text += lead.group(0)
            raw = raw.lstrip()[lead.end() :]
            start = end - len(raw)
        # " ; " joins table cells: a cell that held only times leaves one behind.
        prose = clean(raw).rstrip(" ;") if block.kind != "code" else raw.strip()
        if not _WORDISH.search(prose):
            if times:
                if len(out) > first_in_block:
                    out[-1].times.extend(times)
                else:
                    pending.extend(times)
            continue
        word = _WORDISH.search(raw)
        offset = start + (word.start() if word else 0)
        line = block.start + lines_before(offset)
        out.append(Segment(prose, pending + (times or []), heading, line, section))
        pending = []
    if pending:
        for seg in reversed(out):
            if seg.section == section:
                seg.times.extend(pending)
                break
        else:
            out.append(Segment(clean(text) or " / ".join(heading), pending, heading, block.start, section))


def _link_times(segments: list[Segment]) -> None:
    """Each segment's link second: its own earliest time, else the next timed one in its section, else the
    previous one, else None (the video's start)."""
    nxt: int | None = None
    nxt_section = -1
    for seg in reversed(segments):
        if seg.times:
            seg.link_time = min(seg.times)
            nxt, nxt_section = seg.link_time, seg.section
        elif nxt_section == seg.section:
            seg.link_time = nxt
    prev: int | None = None
    prev_section = -1
    for seg in segments:
        if seg.times:
            prev, prev_section = seg.link_time, seg.section
        elif seg.link_time is None and prev_section == seg.section:
            seg.link_time = prev
