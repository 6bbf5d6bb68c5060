"""A build streams what it makes to the new generation's files: vectors to row files as they are encoded (or
copied from the live index), a note's rows to SQLite once its chunks have vectors, FAISS made from the files a
batch at a time. What a build holds in memory is then the notes in flight, not every vector of the index."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import SAMPLE_NOTES
from search import encoding, store, writer
from search.build import build_index
from search.previous import NoteData


def test_a_row_file_is_written_at_any_row_read_in_batches_and_becomes_an_npy(tmp_path: Path) -> None:
    rows = np.arange(40, dtype=np.int8).reshape(10, 4)
    f = writer.RowFile(tmp_path / "w.npy", np.int8, 4, header=writer.NPY_HEADER)
    f.put(6, rows[6:])  # out of order, as encoding threads finish
    f.put(0, rows[:6])
    assert f.append(rows[:2]) == 10 and len(f) == 12
    assert np.array_equal(f[2:5], rows[2:5]) and np.array_equal(f[np.array([1, 11])], rows[[1, 1]])
    f.finish_npy()
    f.close()
    loaded = np.load(tmp_path / "w.npy", mmap_mode="r")
    assert loaded.shape == (12, 4) and loaded.dtype == np.int8
    assert np.array_equal(loaded[:10], rows) and np.array_equal(loaded[10:], rows[:2])
    empty = writer.RowFile(tmp_path / "o.npy", np.int16, None, header=writer.NPY_HEADER)
    empty.finish_npy()
    empty.close()
    assert np.load(tmp_path / "o.npy").shape == (0,)


def test_an_index_made_from_a_row_file_is_the_one_made_from_the_array(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((700, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    f = writer.RowFile(tmp_path / "v.f32", np.float32, 16)
    f.put(0, vectors)
    monkeypatch.setattr(writer, "BATCH", 64)  # several batches
    for ann_min in (10_000, 500):  # flat, then IVF
        monkeypatch.setattr(store, "ANN_MIN", ann_min)
        from_file, record = store.vector_index(f, 16)
        from_array, same = store.vector_index(vectors, 16)
        assert record == same and from_file.ntotal == 700
        assert np.array_equal(from_file.search(vectors[:20], 5)[1], from_array.search(vectors[:20], 5)[1])


def test_a_build_holds_notes_in_flight_not_vectors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The FAISS files are made from row files; a note handed to SQLite carries no vector; the notes read but not
    yet written stay a few however many there are (the build waits for the encoder)."""
    made_from: list[type] = []
    real_index = store.vector_index

    def vector_index(vectors: Any, dimension: int, *previous: Any) -> Any:
        made_from.append(type(vectors))
        return real_index(vectors, dimension, *previous)

    in_flight: list[int] = []
    held: list[str] = []
    real_add = writer.Writer.add_rows

    def add_rows(self: writer.Writer, data: NoteData) -> None:
        in_flight.append(self.notes - self._written)
        held.extend(
            f"{data.rel}: {k}"
            for k, v in vars(data).items()
            if isinstance(v, np.ndarray | list) and _arrays(v)
        )
        real_add(self, data)

    monkeypatch.setattr(store, "vector_index", vector_index)
    monkeypatch.setattr(writer.Writer, "add_rows", add_rows)
    monkeypatch.setattr(encoding, "QUEUED", 8)  # chunks queued at most: about one note ahead
    notes = tmp_path / "notes"
    shutil.copytree(SAMPLE_NOTES, notes)
    index = tmp_path / "index"
    report = build_index(notes, index)
    assert report.notes > 10 and len(in_flight) == report.notes
    assert made_from == [writer.RowFile, writer.RowFile]
    assert held == []
    assert max(in_flight) <= 4, in_flight
    gen = store.current_generation(index)
    names = {p.name for p in gen.iterdir()}
    assert {store.MANIFEST, store.META, store.CHUNKS, store.SEGMENTS, store.WORDS, store.WORD_OWNERS} <= names
    assert not [n for n in names if n.startswith(".")]  # the vector and origin files are gone
    db = store.open_meta(gen)
    paths = [r["path"] for r in db.execute("SELECT path FROM notes ORDER BY id")]
    db.close()
    assert list(json.loads((gen / store.MANIFEST).read_text())["notes"]) == paths  # in the notes' order
    assert not list(index.glob(".tmp-*"))


def _arrays(values: Any) -> bool:
    if isinstance(values, np.ndarray):
        return True
    return any(isinstance(v, np.ndarray) for v in values)


def test_an_interrupted_build_leaves_the_old_index_and_no_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    notes = tmp_path / "notes"
    shutil.copytree(SAMPLE_NOTES, notes)
    index = tmp_path / "index"
    build_index(notes, index)
    live = store.current_generation(index)
    (next(notes.rglob("*.md"))).write_text("---\ntitle: Edited\n---\n\nA new text [00:00:05] here.\n")

    def fail(self: writer.Writer, manifest: dict[str, Any]) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr(writer.Writer, "publish", fail)
    with pytest.raises(KeyboardInterrupt):
        build_index(notes, index)
    assert store.current_generation(index) == live
    assert sorted(p.name for p in index.iterdir() if p.name != store.LOCK) == [store.CURRENT, live.name]
