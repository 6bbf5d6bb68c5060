"""A rebuild of a few notes extends the live generation with a tail (search.parts), and answers as a full build of
the same notes does: real builds of the sample notes with the real model, real FAISS, SQLite and postings files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_lexicon import QUESTIONS, _close, _fts5, _fts5_of

from conftest import EXPECTATIONS, SAMPLE_NOTES, run_cli
from search import chunks as chunking
from search import lexicon, parts, rank, retrieve, store
from search.build import build_index
from search.errors import IndexWriteError, YtnotesError

EDITED = '\n\nTidal estuaries drown river valleys as the sea rises <a class="yt-timestamp" data-t="00:01:07">[00:01:07]</a>.\n'
ADDED = """---
title: Granite quarries
videoId: abcdefghijk
---
From: [[geology]] <br/>

# Quarrying

- Granite is split along its rift with steel wedges driven into drilled holes <a class="yt-timestamp" data-t="00:02:05">[00:02:05]</a>.
"""
ASKED = [
    "how do estuaries form when the sea level rises",
    "how is granite split in a quarry",
    *QUESTIONS,
    *(e["q"] for kind in EXPECTATIONS.values() for e in kind if "q" in e),
]


@pytest.fixture
def extending(monkeypatch: pytest.MonkeyPatch) -> None:
    """Extend even an index as small as the samples' (the live thresholds are for large ones)."""
    monkeypatch.setattr(parts, "EXTEND_FROM", 0)
    monkeypatch.setattr(parts, "TAIL_SHARE", 0.5)


def _notes(tmp_path: Path) -> tuple[Path, list[Path]]:
    notes = tmp_path / "notes"
    shutil.copytree(SAMPLE_NOTES, notes)
    return notes, sorted(notes.rglob("*.md"))


def _change(notes: Path, files: list[Path]) -> None:
    """Edit one note, add one, remove one."""
    files[0].write_text(files[0].read_text(encoding="utf-8") + EDITED, encoding="utf-8")
    (notes / "granite.md").write_text(ADDED, encoding="utf-8")
    files[3].unlink()


def _answers(index_dir: Path) -> list[Any]:
    index = retrieve.open_index(index_dir)
    out: list[Any] = []
    for q in ASKED:
        for result in index.answer(q):
            out.append(
                [(h.video_id, h.seconds, h.path, h.sentence, round(h.score, 5)) for h in result.moments]
            )
            out.append((result.hit.video_id, result.hit.seconds, result.hit.path, result.hit.sentence))
            out.append(round(result.hit.score, 5))
        for channel, video in (("stanford", None), (None, "abcdefghijk")):  # filters (the added note's video)
            try:
                results = index.answer(q, k=3, channel=channel, video=video)
            except YtnotesError as exc:  # before the note is added
                out.append(str(exc))
                continue
            for r in results:
                out.append((r.hit.video_id, r.hit.seconds, r.hit.sentence, round(r.hit.score, 5)))
        located = index.locate(q)
        out.append((located.found, round(located.confidence, 5), located.hit and located.hit.sentence))
    info = index.info()
    out.append({k: info[k] for k in ("notes", "chunks", "segments")})
    index.close()
    return out


def _full_build(notes: Path, tmp_path: Path) -> Path:
    full = tmp_path / "full"
    build_index(notes, full, full=True)
    return full


def test_a_few_notes_changed_extend_the_live_generation_and_answer_as_a_full_build(
    tmp_path: Path, extending: None
) -> None:
    notes, files = _notes(tmp_path)
    index = tmp_path / "index"
    first = build_index(notes, index).generation
    inodes = {name: (first / name).stat().st_ino for name in parts.base_files()}
    rows = store.read_manifest(first)["counts"]
    _change(notes, files)
    report = build_index(notes, index)
    assert (report.changed_notes, report.removed_notes) == (2, 1)
    manifest = store.read_manifest(report.generation)
    assert (manifest["tail"]["chunks"], manifest["tail"]["segments"]) == (rows["chunks"], rows["segments"])
    assert manifest["format_version"] == store.TAIL_FORMAT_VERSION
    # The base files are the live generation's own (hard links, nothing copied); the old generation is gone.
    assert {name: (report.generation / name).stat().st_ino for name in parts.base_files()} == inodes
    assert not first.exists()
    dead = parts.dead_rows(report.generation, parts.Tail.of(manifest), "segments")
    assert len(dead) > 0
    assert _answers(index) == _answers(_full_build(notes, tmp_path))


def test_a_second_extension_keeps_the_base_and_grows_the_tail(tmp_path: Path, extending: None) -> None:
    notes, files = _notes(tmp_path)
    index = tmp_path / "index"
    build_index(notes, index)
    _change(notes, files)
    once = build_index(notes, index).generation
    tail_once = store.read_manifest(once)["tail"]
    base = (once / store.SEGMENTS).stat().st_ino
    # The edited note edited again: its rows in the tail die, and the tail's rows so far are carried.
    files[0].write_text(files[0].read_text(encoding="utf-8") + EDITED.replace("Tidal", "Drowned"), "utf-8")
    twice = build_index(notes, index)
    assert twice.changed_notes == 1
    manifest = store.read_manifest(twice.generation)
    assert manifest["tail"] == tail_once
    assert (twice.generation / store.SEGMENTS).stat().st_ino == base
    dead = parts.dead_rows(twice.generation, parts.Tail.of(manifest), "chunks")
    assert int(dead.max()) >= tail_once["chunks"]  # a tail row died too
    assert _answers(index) == _answers(_full_build(notes, tmp_path))


def test_a_tail_past_its_share_is_folded_into_a_full_rewrite(
    tmp_path: Path, extending: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes, files = _notes(tmp_path)
    index = tmp_path / "index"
    build_index(notes, index)
    _change(notes, files)
    assert "tail" in store.read_manifest(build_index(notes, index).generation)
    monkeypatch.setattr(parts, "TAIL_SHARE", 0.0)
    files[1].write_text(files[1].read_text(encoding="utf-8") + EDITED, encoding="utf-8")
    report = build_index(notes, index)
    assert report.reused_notes == len(list(notes.rglob("*.md"))) - 1  # read from the base and the tail
    assert store.read_manifest(report.generation)["format_version"] == store.FORMAT_VERSION
    assert "tail" not in store.read_manifest(report.generation)
    assert not list(report.generation.glob(parts.TAIL_PREFIX + "*"))
    full = _full_build(notes, tmp_path)
    # The base's postings carried, the tail's notes given to FTS5 again: the postings a full build makes.
    for table in lexicon.TABLES:
        for part in lexicon.PARTS:
            name = f"{table}.{part}.npy"
            assert np.array_equal(
                np.load(report.generation / name), np.load(store.current_generation(full) / name)
            ), name
    assert _answers(index) == _answers(full)


def test_bm25_over_a_tail_and_dead_rows_gives_fts5_scores_of_the_live_rows(
    tmp_path: Path, extending: None
) -> None:
    notes, files = _notes(tmp_path)
    index_dir = tmp_path / "index"
    build_index(notes, index_dir)
    _change(notes, files)
    build_index(notes, index_dir)
    index = retrieve.open_index(index_dir)
    assert "tail" in index.manifest
    # FTS5 over the texts of the rows meta.sqlite holds (the live ones), at their ids: base, tail and holes.
    fts5 = _fts5_of(index)
    live_chunks = [p.id for p in chunking.stored_passages(index.db)]
    assert max(live_chunks) >= index.manifest["tail"]["chunks"] and len(live_chunks) < max(live_chunks) + 1
    matched = 0
    for q in ASKED:
        phrases = lexicon.TOKENIZER.phrases(rank.query_words(q))
        for table, allowed in (
            ("chunks_fts", None),
            ("segments_fts", None),
            ("chunks_fts", live_chunks[::2]),
        ):
            ours = index.lexicon.search(table, phrases, 20, allowed)
            theirs = _fts5(fts5, table, q, 20, allowed)
            _close(ours, theirs)
            matched += bool(ours)
    assert matched > 20


def test_an_extension_that_fails_leaves_the_live_index_whole(
    tmp_path: Path, extending: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes, files = _notes(tmp_path)
    index = tmp_path / "index"
    live = build_index(notes, index).generation
    before = _answers(index)
    linked = parts.link_base

    def link_then_fail(old: Path, new: Path) -> None:
        linked(old, new)  # the new generation's names for the live files exist, then the build fails
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(parts, "link_base", link_then_fail)
    _change(notes, files)
    with pytest.raises(IndexWriteError, match="free some space"):
        build_index(notes, index)
    assert store.current_generation(index) == live
    assert not list(index.glob(".tmp-*"))
    assert _answers(index) == before


def test_the_cli_answers_from_a_generation_with_a_tail(tmp_path: Path, extending: None) -> None:
    notes, files = _notes(tmp_path)
    index = tmp_path / "index"
    build_index(notes, index)
    _change(notes, files)
    assert "tail" in store.read_manifest(build_index(notes, index).generation)
    asked = run_cli("ask", "how is granite split in a quarry", "-k", "1", index=index, check=True)
    assert "steel wedges" in asked.stdout and "watch?v=abcdefghijk&t=125s" in asked.stdout
    located = run_cli("locate", "drown river valleys as the sea rises", index=index, check=True)
    assert "t=67s" in located.stdout
    info = json.loads(run_cli("info", "--json", index=index, check=True).stdout)
    assert info["notes"] == len(list(notes.rglob("*.md")))
    assert info["tail"]["chunks"] == store.read_manifest(store.current_generation(index))["tail"]["chunks"]
    shown = run_cli("info", index=index, check=True).stdout
    assert f"extended   by rebuilds since the last full write of {info['tail']['chunks']} passages" in shown
    assert (
        info["chunks"] == retrieve.open_index(index).db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    )


def test_an_ivf_base_and_a_tail_give_the_nearest_live_rows_and_never_a_dead_one(
    tmp_path: Path, extending: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "ANN_MIN", 100)  # the samples' vectors are IVFs, each list probed (exact)
    notes, files = _notes(tmp_path)
    index_dir = tmp_path / "index"
    build_index(notes, index_dir)
    _change(notes, files)
    generation = build_index(notes, index_dir).generation
    manifest = store.read_manifest(generation)
    assert {manifest["vectors"][name]["type"] for name in (store.CHUNKS, store.SEGMENTS)} == {"ivf"}
    index = retrieve.open_index(index_dir)
    for kind, vectors in (("chunks", index.chunks), ("segments", index.segments)):
        dead = set(parts.dead_rows(generation, parts.Tail.of(manifest), kind).tolist())
        live = np.asarray([r[0] for r in index.db.execute(f"SELECT id FROM {kind} ORDER BY id")])
        assert dead and not dead & set(live.tolist()) and int(live.max()) >= vectors.first
        stored = vectors.reconstruct_batch(live)
        for q in ASKED:
            query = index.encoder.encode([q])
            scores, ids = vectors.search(query, 20, None)
            assert not dead & set(ids.tolist())
            # The 20 best live rows' scores, as an exact search of the live rows gives them (a near tie may
            # order two rows either way).
            exact = np.sort(stored @ query[0])[::-1][:20]
            assert np.allclose(scores, exact, atol=1e-5), q
            some = live[::3].tolist()
            _, filtered = vectors.search(query, 5, some)
            assert set(filtered.tolist()) <= set(some) and len(filtered) == 5


def test_a_stored_array_of_the_wrong_shape_or_type_is_named_with_what_was_expected(tmp_path: Path) -> None:
    """The error names the file, what it holds and what was expected: the width alone when any dtype will do."""
    path = tmp_path / "words.npy"
    np.save(path, np.zeros((3, 16), dtype=np.uint8))
    with pytest.raises(YtnotesError) as wrong_width:
        parts.load(path, width=48)
    assert str(wrong_width.value).startswith(f"{path} holds uint8 (3, 16), not (n, 48); ")
    with pytest.raises(YtnotesError) as wrong_type:
        parts.load(path, dtype=np.int64)
    assert f"{path} holds uint8 (3, 16), not int64; " in str(wrong_type.value)
    assert parts.load(path, dtype=np.uint8, width=16).shape == (3, 16)
