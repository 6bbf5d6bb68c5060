"""BM25 from the build's postings (search.lexicon) gives FTS5's own bm25() scores, on a real index."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from search import lexicon, rank, retrieve, store

EXPECTATIONS = Path(__file__).parent / "sample_expectations.json"
QUESTIONS = [
    "why did he drop out of college",
    "How many parameters does the network have?",
    "Fourier transform of a sound",
    "the the and of",  # nothing informative
    "calligraphy typefaces Macintosh fonts",
    "zyxwvut qqqq",  # no word in the notes
]


def _questions() -> list[str]:
    expectations = json.loads(EXPECTATIONS.read_text(encoding="utf-8"))
    return QUESTIONS + [e["q"] for kind in expectations.values() for e in kind if "q" in e]


def _close(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> None:
    assert [i for i, _ in a] == [i for i, _ in b]
    assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-9)


def test_postings_give_fts5_scores(sample_index: Path) -> None:
    index = retrieve.open_index(sample_index)
    postings = index.lexicon
    assert postings is not None
    n_segments = index.db.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
    some_segments = list(range(0, n_segments, 3))
    some_chunks = [r[0] for r in index.db.execute("SELECT id FROM chunks WHERE id % 2 = 0")]
    matched = 0
    for q in _questions():
        phrases = lexicon.TOKENIZER.phrases(rank.query_words(q))
        assert all(len(p) <= 1 for p in phrases)
        for table, limit, allowed in (
            ("chunks_fts", 50, None),
            ("chunks_fts", 5, some_chunks),
            ("segments_fts", 20, None),
        ):
            fts5 = rank.lexical(index.db, table, q, limit, allowed)
            _close(postings.search(table, phrases, limit, allowed), fts5)
            _close(rank.lexical(index.db, table, q, limit, allowed, postings), fts5)
            matched += bool(fts5)
        # Every allowed match, in no order.
        fts5 = rank.lexical(index.db, "segments_fts", q, None, some_segments)
        _close(sorted(postings.search("segments_fts", phrases, None, some_segments)), sorted(fts5))
    assert matched >= 3 * (len(_questions()) - 2)  # the searches found something to compare


def test_a_word_fts5_splits_is_left_to_fts5(sample_index: Path) -> None:
    assert lexicon.TOKENIZER.phrases(["op_return", "running", "café"]) == [
        ["op", "return"],
        ["run"],
        ["cafe"],
    ]
    index = retrieve.open_index(sample_index)
    q = "neural_network layers"
    _close(
        rank.lexical(index.db, "chunks_fts", q, 10, None, index.lexicon),
        rank.lexical(index.db, "chunks_fts", q, 10),
    )


def test_an_index_without_postings_is_searched_by_fts5(sample_index: Path, tmp_path: Path) -> None:
    copy = tmp_path / "index"
    shutil.copytree(sample_index, copy)
    gen = store.current_generation(copy)
    for path in gen.glob("*_fts.*.npy"):
        path.unlink()
    index = retrieve.open_index(copy)
    assert index.lexicon is None
    assert index.answer("How many parameters does the network have?", k=3)
