"""Packing segments into chunks: the passages that are embedded, searched and shown."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from search.segments import ParsedNote, Segment

#: Word pieces of segment text per chunk. all-MiniLM-L6-v2 was trained on 128-token inputs and truncates at
#: 256; the title and heading prefix add about 20. A chunk of ~128 tokens is 4-6 timestamped sentences: enough
#: context for a question, small enough that one topic dominates its vector.
CHUNK_TOKENS = 128


@dataclass
class Chunk:
    """Consecutive segments of one section of one note."""

    segments: list[Segment]
    heading: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)

    @property
    def line(self) -> int:
        return self.segments[0].line


def describe(title: str, heading: tuple[str, ...]) -> str:
    """The context line put before embedded text: the note's title and heading path."""
    return " — ".join((title, *heading))


def embed_text(title: str, chunk: Chunk) -> str:
    """What the model sees for a chunk: its title and heading path, then its prose."""
    return embed_text_and_spans(title, chunk)[0]


def stored_embed_text(title: str, heading: tuple[str, ...], text: str) -> str:
    """`embed_text` of a stored chunk, from its note's title, its heading and its text (the index keeps no copy)."""
    return describe(title, heading) + "\n" + text


def embed_text_and_spans(title: str, chunk: Chunk) -> tuple[str, list[tuple[int, int]]]:
    """The chunk's embedded text, and where each segment's text stands in it (start, end)."""
    return stored_embed_text_and_spans(title, chunk.heading, [seg.text for seg in chunk.segments])


def stored_embed_text_and_spans(
    title: str, heading: tuple[str, ...], parts: Sequence[str]
) -> tuple[str, list[tuple[int, int]]]:
    """`embed_text_and_spans` of a stored chunk, from its note's title, its heading and its segments' texts."""
    text = describe(title, heading) + "\n"
    spans = []
    for n, part in enumerate(parts):
        if n:
            text += " "
        spans.append((len(text), len(text) + len(part)))
        text += part
    return text, spans


def pack(parsed: ParsedNote, count_tokens: Callable[[str], int], budget: int = CHUNK_TOKENS) -> list[Chunk]:
    """Greedily pack consecutive segments of the same section up to ``budget`` tokens.

    A segment is never split (it has one moment); one longer than the budget is a chunk on its own.
    """
    chunks: list[Chunk] = []
    used = 0
    for seg in parsed.segments:
        size = count_tokens(seg.text)
        last = chunks[-1] if chunks else None
        if last is not None and last.segments[-1].section == seg.section and used + size <= budget:
            last.segments.append(seg)
            used += size
        else:
            chunks.append(Chunk([seg], seg.heading))
            used = size
    return chunks


@dataclass(frozen=True)
class StoredPassage:
    """A passage of a built index as its build embedded it."""

    id: int
    text: str
    #: Where each of its segments' texts stands in ``text``.
    spans: list[tuple[int, int]]
    #: Its rows in the index's word vectors.
    word_start: int
    word_end: int


def stored_passages(db: sqlite3.Connection, limit: int | None = None, first: int = 0) -> list[StoredPassage]:
    """The first ``limit`` passages (None: all) from id ``first`` on of an index's meta.sqlite, in id order, each
    made again from its note's title, its heading and its segments' texts (`stored_embed_text_and_spans`)."""
    sql = (
        "SELECT c.id, c.heading, c.seg_start, c.seg_end, c.word_start, c.word_end, n.title FROM chunks c "
        "JOIN notes n ON n.id = c.note_id WHERE c.id >= ? ORDER BY c.id"
    )
    rows = db.execute(sql + ("" if limit is None else f" LIMIT {int(limit)}"), (first,)).fetchall()
    start = min((r[2] for r in rows), default=0)
    end = max((r[3] for r in rows), default=0)
    # Segment ids run in passage order (with holes in a generation with a tail: `search.parts`): one read for all
    # of them.
    texts: list[str] = [""] * (end - start)
    for seg_id, text in db.execute("SELECT id, text FROM segments WHERE id >= ? AND id < ?", (start, end)):
        texts[seg_id - start] = text
    out = []
    for chunk_id, heading, seg_start, seg_end, word_start, word_end, title in rows:
        parts = texts[seg_start - start : seg_end - start]
        text, spans = stored_embed_text_and_spans(title, tuple(json.loads(heading)), parts)
        out.append(StoredPassage(chunk_id, text, spans, word_start, word_end))
    return out
