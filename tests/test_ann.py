"""Approximate search past a size: an index of many vectors is an IVF, recorded in the manifest, searched with the
probes it was written with; every path that reads vectors back (ranking, filters, a rebuild's reuse) still works.
The real bundled model and real FAISS files; the threshold is lowered so the sample notes cross it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import EXPECTATIONS, SAMPLE_NOTES, run_cli
from search import store
from search.build import build_index
from search.retrieve import open_index


def _clustered(n: int, dimension: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dimension))
    vectors = centres[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, dimension))
    out: np.ndarray = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return out


def test_past_the_threshold_vectors_go_in_an_ivf_that_finds_what_exact_search_finds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import faiss

    vectors = _clustered(6000, 48, seed=5)
    monkeypatch.setattr(store, "ANN_MIN", 5000)
    index, record = store.vector_index(vectors, 48)
    assert record == {"type": "ivf", "lists": int(4 * np.sqrt(6000)), "probe": store.IVF_PROBE}
    faiss.write_index(index, str(tmp_path / "v.faiss"))
    read = store.read_vectors(tmp_path, "v.faiss")
    assert read.nprobe == store.IVF_PROBE  # the probes are kept in the file
    assert np.allclose(read.reconstruct_batch(np.asarray([0, 4321])), vectors[[0, 4321]])
    exact = faiss.IndexFlatIP(48)
    exact.add(vectors)
    questions = _clustered(200, 48, seed=6)
    _, found = read.search(questions, 10)
    _, truth = exact.search(questions, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.95, recall
    small, small_record = store.vector_index(vectors[:5000], 48)
    assert small_record == {"type": "flat"} and small.ntotal == 5000


def _answers(index: Path, **filters: Any) -> list[str]:
    idx = open_index(index)
    try:
        out = []
        for item in EXPECTATIONS["ask"]:
            results = idx.answer(item["q"], k=5, **filters)
            out.append(json.dumps([r.to_json() for r in results], sort_keys=True))
        return out
    finally:
        idx.close()


def test_an_ivf_index_probing_every_list_answers_as_the_exact_one(
    sample_index: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import faiss

    notes = tmp_path / "notes"
    shutil.copytree(SAMPLE_NOTES, notes)
    index = tmp_path / "index"
    monkeypatch.setattr(store, "ANN_MIN", 100)  # the sample notes' 139 chunks and 384 segments cross it
    monkeypatch.setattr(
        store, "IVF_PROBE", 10_000
    )  # every list: the same vectors scored as exact search does
    build_index(notes, index)
    manifest = store.read_manifest(store.current_generation(index))
    assert {r["type"] for r in manifest["vectors"].values()} == {"ivf"}
    shown = run_cli("info", index=index, check=True).stdout
    lists = manifest["vectors"]["segments.faiss"]["lists"]
    assert f"segments approximately (IVF, {lists} of {lists} lists probed)" in shown
    exact = store.read_manifest(store.current_generation(sample_index))
    assert {r["type"] for r in exact["vectors"].values()} == {"flat"}

    # Ranking reads vectors back by id (segments, passages, neighbours): the same answers as the flat index.
    def comparable(answers: list[str]) -> list[Any]:
        return [[(r["note"], r["seconds"], r["score"]) for r in json.loads(a)] for a in answers]

    assert comparable(_answers(index)) == comparable(_answers(sample_index))
    # A filter scores its few vectors exactly.
    channel = {"channel": "stanford"}
    assert comparable(_answers(index, **channel)) == comparable(_answers(sample_index, **channel))

    # A rebuild reuses the unchanged notes' vectors, read back from the IVF files.
    edited = next(notes.glob("ted/*procrastinator*.md"))
    sentence = "Urban keeps a rubber duck named Gerald on his desk to explain deadlines to"
    edited.write_text(
        edited.read_text(encoding="utf-8")
        + f'\n{sentence} <a class="yt-timestamp" data-t="00:14:05">[00:14:05]</a>.\n',
        encoding="utf-8",
    )
    before = {
        name: store.read_vectors(store.current_generation(index), name)
        for name in (store.CHUNKS, store.SEGMENTS)
    }
    report = build_index(notes, index)
    assert report.embedded_chunks <= 2 and report.chunks > 100
    # It keeps the IVFs' lists (not learnt again), and every vector is in the list of its nearest centroid, as
    # adding them all to those lists would put it.
    gen = store.current_generation(index)
    for name, old in before.items():
        new = store.read_vectors(gen, name)
        centroids = new.quantizer.reconstruct_n(0, new.nlist)
        assert np.array_equal(centroids, old.quantizer.reconstruct_n(0, old.nlist)), name
        vectors = new.reconstruct_n(0, new.ntotal)
        lists = faiss.vector_to_array(new.direct_map.array) >> 32
        nearest = np.argmax(vectors @ centroids.T, axis=1)
        assert np.array_equal(lists, nearest), name
    idx = open_index(index)
    try:
        located = idx.locate(sentence)
        assert located.found and located.hit is not None and located.hit.seconds == 14 * 60 + 5
    finally:
        idx.close()
