"""Where every segment is, held in memory by a process that answers many questions (a server, the MCP server, the
evaluation): which passage and note each segment belongs to, the second it links, each passage's segments and
word rows, each note's video. An answer's lookups are then array reads, not SQL queries (four of them an answer,
about 0.7 ms of a 10 ms answer on the shared corpus).

A one-shot `ask` does not read it: reading every segment's row costs more than the few queries it saves (0.3 s at
750k segments). Row ids are the vectors' rows, so an id is an array index; they are dense from 0 but in a
generation with a tail (`search.parts`), whose dead rows are holes (read as -1, and never looked up).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: ``link`` of a segment that links no second.
NO_LINK = -1


@dataclass(frozen=True)
class Layout:
    """Per segment id: its passage (``chunk``), ``note`` and link second (``link``, NO_LINK for none). Per passage
    id: ``seg_start``, ``seg_end``, ``word_start``, ``word_end``. Per note id: ``video`` (None for none)."""

    chunk: np.ndarray
    note: np.ndarray
    link: np.ndarray
    seg_start: np.ndarray
    seg_end: np.ndarray
    word_start: np.ndarray
    word_end: np.ndarray
    video: list[str | None]

    @classmethod
    def read(cls, db: sqlite3.Connection) -> Layout:
        """The layout of an index's metadata (one pass over each table)."""
        seg = _by_id(db, f"SELECT id, chunk_id, note_id, COALESCE(link_time, {NO_LINK}) FROM segments", 3)
        chunks = _by_id(db, "SELECT id, seg_start, seg_end, word_start, word_end FROM chunks", 4)
        video: list[str | None] = []
        for note_id, video_id in db.execute("SELECT id, video_id FROM notes ORDER BY id"):
            video += [None] * (note_id - len(video)) + [video_id]
        return cls(
            chunk=seg[:, 0].copy(),
            note=seg[:, 1].copy(),
            link=seg[:, 2].copy(),
            seg_start=chunks[:, 0].copy(),
            seg_end=chunks[:, 1].copy(),
            word_start=chunks[:, 2].copy(),
            word_end=chunks[:, 3].copy(),
            video=video,
        )

    def segments_of(self, chunk_ids: list[int]) -> np.ndarray:
        """The ids of the segments of some passages, ascending."""
        import numpy as np

        ids = np.asarray(chunk_ids, dtype=np.int64)
        starts, ends = self.seg_start[ids], self.seg_end[ids]
        lengths = ends - starts
        # Each passage's range start..end-1, laid end to end without a loop in Python.
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        out: np.ndarray = np.sort(offsets + np.arange(int(lengths.sum())))
        return out


def _by_id(db: sqlite3.Connection, sql: str, width: int) -> np.ndarray:
    """The rows of a query whose first column is the id, as an array indexed by id (-1 where no row has it)."""
    import numpy as np

    rows = np.asarray(db.execute(sql).fetchall(), dtype=np.int64).reshape(-1, width + 1)
    out = np.full((int(rows[:, 0].max()) + 1 if len(rows) else 0, width), -1, dtype=np.int64)
    out[rows[:, 0]] = rows[:, 1:]
    return out
