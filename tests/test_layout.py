"""The in-memory layout a server reads (search.layout) gives the same answers as the SQL queries a one-shot `ask`
makes, on the real index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from search import retrieve
from search.layout import NO_LINK, Layout

EXPECTATIONS = Path(__file__).parent / "sample_expectations.json"


def _answers(index: retrieve.Index, questions: list[str]) -> list[str]:
    out = []
    for q in questions:
        out.append(json.dumps([r.to_json() for r in index.answer(q, k=10)]))
        out.append(json.dumps([h.to_json() for h in index.ask(q, k=10)]))
        located = index.locate(q)
        out.append(json.dumps(located.hit.to_json() if located.hit else None))
    return out


def _same_with_and_without_layout(
    index_dir: Path, questions: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    index = retrieve.open_index(index_dir)
    assert index.layout is not None  # a process that answers many questions reads it
    with_layout = _answers(index, questions)
    monkeypatch.setattr(retrieve.Index, "layout", property(lambda self: None))
    assert _answers(index, questions) == with_layout


def test_layout_matches_the_tables(sample_index: Path) -> None:
    index = retrieve.open_index(sample_index)
    layout = index.layout
    assert layout is not None
    for seg_id, chunk_id, note_id, link in index.db.execute(
        "SELECT id, chunk_id, note_id, link_time FROM segments"
    ):
        assert (layout.chunk[seg_id], layout.note[seg_id]) == (chunk_id, note_id)
        assert layout.link[seg_id] == (NO_LINK if link is None else link)
    chunks = index.db.execute("SELECT id, seg_start, seg_end FROM chunks ORDER BY id").fetchall()
    some = [c[0] for c in chunks[::3]][::-1]  # not in order
    expected = sorted(s for c in chunks[::3] for s in range(c[1], c[2]))
    assert layout.segments_of(some).tolist() == expected
    assert layout.segments_of([]).tolist() == []
    assert len(layout.video) == index.db.execute("SELECT COUNT(*) FROM notes").fetchone()[0]


def test_one_shot_reads_no_layout(sample_index: Path) -> None:
    assert retrieve.open_index(sample_index, one_shot=True).layout is None
    assert isinstance(Layout.read(retrieve.open_index(sample_index, one_shot=True).db).chunk, np.ndarray)


def test_answers_are_the_same_with_the_layout(sample_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expectations = json.loads(EXPECTATIONS.read_text(encoding="utf-8"))
    questions = [e["q"] for kind in expectations.values() for e in kind if "q" in e]
    assert len(questions) >= 10
    _same_with_and_without_layout(sample_index, questions, monkeypatch)
