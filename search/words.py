"""Word vectors of passages, made at build time for the second pass of ranking (see `rank`).

A passage's words are encoded in the same pass of the model as its chunk vector, so each word vector carries the
passage around it. Only informative words are kept (a question's stopwords are not compared either). They are
stored as int8, each row scaled by its largest component: about 40 MB for 200 notes, read by memory map, so a
question reads the rows of the ten passages it re-reads and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from search import rank

if TYPE_CHECKING:
    import numpy as np

#: Which words of a passage keep a vector, "informative" or "all" (recorded in the manifest: changing it rebuilds
#: everything).
KEPT = "informative"
#: Whose a word is when it belongs to the title and heading line, not to a segment.
HEADING = -1
#: Kept words of a passage at most: the model reads 256 tokens, and a word is at least one (words further on have
#: no vector in context; without a cap a note of one huge paragraph would list hundreds of thousands).
MAX_WORDS = 256


def passage_words(text: str, segments: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[int]]:
    """The kept words of a passage's embedded text: their character spans, and for each the index of the segment
    holding it (HEADING for the title and heading line before the first segment)."""
    spans: list[tuple[int, int]] = []
    owners: list[int] = []
    seg = 0
    for a, b in rank.word_spans(text):
        if KEPT == "informative" and not rank.informative(text[a:b].casefold()):
            continue
        while seg < len(segments) and a >= segments[seg][1]:
            seg += 1
        inside = seg < len(segments) and segments[seg][0] <= a
        spans.append((a, b))
        owners.append(seg if inside else HEADING)
        if len(spans) == MAX_WORDS:
            break
    return spans, owners


def to_int8(vectors: np.ndarray) -> np.ndarray:
    """Rows of unit vectors as int8, each scaled so its largest component is ±127 (the scale is not kept: a row
    is made unit length again when read)."""
    import numpy as np

    peak = np.abs(vectors).max(axis=1, keepdims=True)
    scaled = np.rint(vectors * (127.0 / np.clip(peak, 1e-12, None)))
    out: np.ndarray = scaled.astype(np.int8)
    return out


def from_int8(rows: np.ndarray) -> np.ndarray:
    """int8 rows back as unit float32 vectors (cosine with the original ≥ 0.9998)."""
    import numpy as np

    vectors = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: np.ndarray = vectors / np.clip(norms, 1e-12, None)
    return out
