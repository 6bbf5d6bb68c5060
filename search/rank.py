"""Ranking: lexical (BM25 over SQLite FTS5) and dense (FAISS) candidates, fused into one list.

Three candidate lists score chunks: the chunk vectors, the segment vectors (a chunk scores as its best segment),
and BM25 over chunk text. They are fused by weighted reciprocal rank (RRF): robust to the lists' different score
scales, and the weights are chosen on the evaluation set (scripts/eval.py --compare).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

#: Words too common to help BM25 find a passage; questions are full of them.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "say",
        "said",
        "says",
        "tell",
        "told",
        "talk",
        "talks",
        "talked",
        "mention",
        "mentioned",
        "mentions",
        "explain",
        "explained",
        "explains",
        "describe",
        "described",
        "video",
        "note",
        "notes",
        "according",
    ]
)

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Weights:
    """How much each candidate list counts in the fused ranking; 0 turns a list off."""

    chunk_dense: float = 1.0
    segment_dense: float = 1.0
    lexical: float = 1.0
    #: RRF's rank offset; 60 is the value of the original paper, larger flattens the head of each list.
    rrf_k: int = 60
    #: How many candidates each list contributes.
    depth: int = 50
    #: The moment (segment) ranking: how much its passage's fused rank, its own vector and its own BM25 count.
    moment_chunk: float = 1.0
    moment_dense: float = 1.0
    moment_lexical: float = 0.0
    moment_rrf_k: int = 10
    #: Keep one moment per passage (the best) instead of several.
    one_per_chunk: bool = False
    #: A segment's vector for moment ranking is blended with its predecessor's in the passage (which often
    #: names the topic the segment goes on about): v + context * v_prev, renormalised.
    context: float = 0.5


# Single methods, for comparison: one candidate list, and moments chosen by the same kind of evidence.
DENSE = Weights(chunk_dense=1.0, segment_dense=0.0, lexical=0.0, moment_lexical=0.0)
SEGMENTS = Weights(chunk_dense=0.0, segment_dense=1.0, lexical=0.0, moment_chunk=0.0, moment_lexical=0.0)
LEXICAL = Weights(chunk_dense=0.0, segment_dense=0.0, lexical=1.0, moment_dense=0.0)
HYBRID = Weights()
MODES = {"hybrid": HYBRID, "dense": DENSE, "segments": SEGMENTS, "lexical": LEXICAL}


def fts_query(text: str) -> str | None:
    """An FTS5 query matching any of the text's informative words (each quoted, so no operator leaks in)."""
    words: list[str] = []
    for word in _WORD.findall(text.casefold()):
        if word not in STOPWORDS and word not in words and (len(word) > 1 or word.isdigit()):
            words.append(word)
    if not words:
        return None
    return " OR ".join('"' + w.replace('"', "") + '"' for w in words)


def lexical(
    db: sqlite3.Connection, table: str, text: str, limit: int, allowed: Sequence[int] | None = None
) -> list[tuple[int, float]]:
    """(rowid, bm25 score, higher is better) of the best-matching rows of an FTS5 table."""
    query = fts_query(text)
    if query is None:
        return []
    sql = f"SELECT rowid, -bm25({table}) FROM {table} WHERE {table} MATCH ?"
    args: list[object] = [query]
    if allowed is not None:
        sql += " AND rowid IN (SELECT value FROM json_each(?))"
        args.append("[" + ",".join(str(int(a)) for a in allowed) + "]")
    sql += f" ORDER BY bm25({table}) LIMIT {int(limit)}"
    return [(int(r[0]), float(r[1])) for r in db.execute(sql, args)]


def fuse(lists: Sequence[tuple[float, Sequence[int]]], rrf_k: int) -> list[tuple[int, float]]:
    """Weighted reciprocal-rank fusion of ranked id lists: [(id, fused score)], best first."""
    scores: dict[int, float] = {}
    for weight, ids in lists:
        if weight <= 0:
            continue
        for rank, item in enumerate(ids):
            scores[item] = scores.get(item, 0.0) + weight / (rrf_k + rank + 1)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
