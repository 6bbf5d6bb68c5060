"""BM25 from the build's postings (search.lexicon) gives FTS5's own bm25() scores, on a real index."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from search import build, lexicon, rank, retrieve, store
from search import chunks as chunking
from search.errors import IndexUnusableError

EXPECTATIONS = Path(__file__).parent / "sample_expectations.json"
SAMPLE_NOTES = Path(__file__).resolve().parents[1] / "search" / "sample_notes"
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


def _fts5_of(index: retrieve.Index) -> sqlite3.Connection:
    """The index's two full-text tables as the build made them before dropping them: FTS5, the same tokenizer,
    the same texts at the same row ids (a passage's embedded text, and each segment's text)."""
    db = sqlite3.connect(":memory:")
    for table in lexicon.TABLES:
        db.execute(f"CREATE VIRTUAL TABLE {table} USING fts5(body, tokenize = '{lexicon.TOKENIZE}')")
    for p in chunking.stored_passages(index.db):
        db.execute("INSERT INTO chunks_fts(rowid, body) VALUES (?,?)", (p.id, p.text))
    db.executemany(
        "INSERT INTO segments_fts(rowid, body) VALUES (?,?)",
        index.db.execute("SELECT id, text FROM segments"),
    )
    return db


def _fts5(
    db: sqlite3.Connection, table: str, text: str, limit: int | None, allowed: list[int] | None
) -> list[tuple[int, float]]:
    """FTS5's own bm25() for any of the text's informative words (each a quoted phrase), best first."""
    words = rank.query_words(text)
    if not words:
        return []
    sql = f"SELECT rowid, -bm25({table}) FROM {table} WHERE {table} MATCH ?"
    args: list[object] = [" OR ".join('"' + w.replace('"', "") + '"' for w in words)]
    if allowed is not None:
        sql += " AND +rowid IN (SELECT value FROM json_each(?))"
        args.append(json.dumps(allowed))
    sql += f" ORDER BY bm25({table}), rowid" + (f" LIMIT {limit}" if limit is not None else "")
    return [(int(r[0]), float(r[1])) for r in db.execute(sql, args)]


def test_postings_give_fts5_scores(sample_index: Path) -> None:
    index = retrieve.open_index(sample_index)
    postings = index.lexicon
    fts5 = _fts5_of(index)
    # The build's tables are gone from the index: only their postings are kept.
    assert not index.db.execute("SELECT name FROM sqlite_master WHERE name LIKE '%fts%'").fetchall()
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
            expected = _fts5(fts5, table, q, limit, allowed)
            _close(postings.search(table, phrases, limit, allowed), expected)
            _close(rank.lexical(postings, table, q, limit, allowed), expected)
            matched += bool(expected)
        # Every allowed match, in no order.
        expected = _fts5(fts5, "segments_fts", q, None, some_segments)
        _close(sorted(postings.search("segments_fts", phrases, None, some_segments)), sorted(expected))
    assert matched >= 3 * (len(_questions()) - 2)  # the searches found something to compare


def test_scores_read_from_one_pass_equal_a_pass_over_those_rows(sample_index: Path) -> None:
    """An answer searches the passages' BM25 once (the best of every match, filtered or not) and reads its
    candidates' scores from that pass: the same floats as a pass restricted to them, and the buffer it borrows is
    left clean for the next question."""
    index = retrieve.open_index(sample_index)
    postings = index.lexicon
    n_chunks = index.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    rng = np.random.default_rng(7)
    compared = 0
    for q in _questions():
        phrases = lexicon.TOKENIZER.phrases(rank.query_words(q))
        for allowed in (None, list(range(0, n_chunks, 2))):
            matched = rank.lexical_matches(postings, "chunks_fts", q, allowed)
            assert lexicon.best(*matched, 7) == postings.search("chunks_fts", phrases, 7, allowed)
            pool = allowed if allowed is not None else list(range(n_chunks))
            for _ in range(3):
                ids = sorted(rng.choice(pool, size=min(12, len(pool)), replace=False).tolist())
                expected = sorted(postings.search("chunks_fts", phrases, None, ids))
                assert sorted(postings.scores_of("chunks_fts", matched, ids)) == expected  # exactly
                compared += len(expected)
    assert compared > 20
    assert all(np.isnan(b).all() for (kind, _), b in postings._local.buffers.items() if kind == "scores")
    index.close()


def test_a_word_fts5_splits_matches_the_rows_holding_all_its_tokens(sample_index: Path) -> None:
    assert lexicon.TOKENIZER.phrases(["op_return", "running", "café"]) == [
        ["op", "return"],
        ["run"],
        ["cafe"],
    ]
    index = retrieve.open_index(sample_index)
    fts5 = _fts5_of(index)
    # "neural_network" is the phrase "neural network": where the two words stand side by side (as in the sample
    # notes), FTS5's phrase and the postings' "both tokens, as often as the rarer" give the same scores.
    q = "neural_network layers"
    assert lexicon.TOKENIZER.phrases(rank.query_words(q)) == [["neural", "network"], ["layer"]]
    expected = _fts5(fts5, "chunks_fts", q, 10, None)
    assert expected
    _close(rank.lexical(index.lexicon, "chunks_fts", q, 10), expected)
    # Tokens that never stand together: FTS5 finds no phrase, the postings find the rows holding both.
    apart = rank.lexical(index.lexicon, "chunks_fts", "network_neuron", None, None)
    both = {i for i, _ in rank.lexical(index.lexicon, "chunks_fts", "network", None, None)} & {
        i for i, _ in rank.lexical(index.lexicon, "chunks_fts", "neuron", None, None)
    }
    assert both
    assert {i for i, _ in apart} == both
    assert not _fts5(fts5, "chunks_fts", "network_neuron", None, None)


def test_an_index_without_its_postings_says_to_rebuild(sample_index: Path, tmp_path: Path) -> None:
    copy = tmp_path / "index"
    shutil.copytree(sample_index, copy)
    gen = store.current_generation(copy)
    (gen / "chunks_fts.rows.npy").unlink()
    with pytest.raises(IndexUnusableError, match=r"chunks_fts\.rows\.npy is missing; .*build --full"):
        retrieve.open_index(copy)


def test_an_open_index_answers_after_its_generation_is_deleted(sample_index: Path, tmp_path: Path) -> None:
    # A build deletes the previous generation once it has swapped in the next; a reader that opened it before
    # keeps answering from the files it mapped.
    copy = tmp_path / "index"
    shutil.copytree(sample_index, copy)
    index = retrieve.open_index(copy)
    shutil.rmtree(store.current_generation(copy))
    assert index.answer("How many parameters does the network have?", k=3)


def _postings_of(index: Path) -> tuple[dict[str, list[int]], list[tuple[str, str, int]], dict[str, object]]:
    gen = store.current_generation(index)
    arrays = {p.name: np.load(p).tolist() for p in sorted(gen.glob("*_fts.*.npy"))}
    with sqlite3.connect(gen / store.META) as db:
        terms = db.execute("SELECT tab, term, id FROM lexicon ORDER BY tab, id").fetchall()
    return arrays, terms, store.read_manifest(gen)["lexicon"]


def test_a_rebuild_carries_the_postings_of_unchanged_notes_over_as_a_full_build_makes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = tmp_path / "notes"
    shutil.copytree(SAMPLE_NOTES, notes)
    index = tmp_path / "index"
    build.build_index(notes, index)
    terms_before = {(tab, term) for tab, term, _ in _postings_of(index)[1]}
    # One note edited (a sentence with a word in no other note), one removed: their rows are read by FTS5
    # again, every other note's postings are carried over, renumbered.
    edited = next(notes.glob("ted/*procrastinator*.md"))
    edited.write_text(
        edited.read_text(encoding="utf-8")
        + '\nUrban names his rubber duck Zebulon <a class="yt-timestamp" data-t="00:14:05">[00:14:05]</a>.\n',
        encoding="utf-8",
    )
    next(notes.glob("3blue1brown/*.md")).unlink()
    merged: list[int] = []
    real_merge = lexicon._merge

    def merge(carried: lexicon.Carried, table: str, *args: object) -> object:
        merged.append(len(carried.ranges[table]))
        return real_merge(carried, table, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(lexicon, "_merge", merge)
    build.build_index(notes, index)
    total = len(list(notes.rglob("*.md")))
    assert merged == [total - 1, total - 1]  # both tables, every note but the edited one carried
    fresh = tmp_path / "fresh"
    build.build_index(notes, fresh)
    assert len(merged) == 2  # a first build has nothing to carry
    carried, full = _postings_of(index), _postings_of(fresh)
    assert carried == full
    terms_after = {(tab, term) for tab, term, _ in carried[1]}
    assert {("chunks_fts", "zebulon"), ("segments_fts", "zebulon")} <= terms_after
    assert terms_before - terms_after  # words only the removed note held are gone, as from a full build
