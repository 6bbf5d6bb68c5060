"""Word vectors made at build time for the second pass: which words are kept, whose they are, and that the stored
int8 rows are what the model says of those words in their passage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from search import chunks as chunking
from search import embed, store, words
from search.fast_encoder import OnnxEncoder


def test_passage_words_keep_informative_words_and_say_whose_each_is() -> None:
    text = "Rockets — Why they fail\nThe engine lost pressure. Then the rocket tumbled"
    first = text.index("The engine")
    second = text.index("Then the")
    spans, owners = words.passage_words(text, [(first, second - 1), (second, len(text))])
    kept = [text[a:b] for a, b in spans]
    assert kept == ["Rockets", "fail", "engine", "lost", "pressure", "rocket", "tumbled"]
    assert owners == [words.HEADING, words.HEADING, 0, 0, 0, 1, 1]


def test_int8_rows_keep_the_direction_of_unit_vectors() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((500, embed.DIMENSION)).astype(np.float32)
    vectors[:10] *= 0.0  # a zero row must not become NaN
    vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    back = words.from_int8(words.to_int8(vectors))
    assert np.isfinite(back).all()
    cosines = np.sum(vectors[10:] * back[10:], axis=1)
    assert cosines.min() >= 0.9995, cosines.min()


def test_stored_word_vectors_are_the_models_words_in_their_passage(sample_index: Path) -> None:
    gen = store.current_generation(sample_index)
    manifest = store.read_manifest(gen)
    stored, owners = store.read_words(gen, manifest["counts"]["words"])
    assert manifest["counts"]["words"] > 1000
    db = store.open_meta(gen)
    rows = db.execute(
        "SELECT c.id, c.heading, c.seg_start, c.seg_end, c.word_start, c.word_end, n.title FROM chunks c "
        "JOIN notes n ON n.id = c.note_id ORDER BY c.id LIMIT 40"
    ).fetchall()
    encoder = embed.load_document_encoder()
    assert isinstance(encoder, OnnxEncoder)
    checked = 0
    for row in rows:
        parts = [
            r[0]
            for r in db.execute(
                "SELECT text FROM segments WHERE id >= ? AND id < ? ORDER BY id",
                (row["seg_start"], row["seg_end"]),
            )
        ]
        # The passage as the build embedded it: title and heading path, then its segments.
        text = chunking.describe(row["title"], tuple(json.loads(row["heading"]))) + "\n"
        seg_spans = []
        for n, part in enumerate(parts):
            text += " " if n else ""
            seg_spans.append((len(text), len(text) + len(part)))
            text += part
        spans, own = words.passage_words(text, seg_spans)
        assert row["word_end"] - row["word_start"] == len(spans)
        assert owners[row["word_start"] : row["word_end"]].tolist() == own
        _, (fresh,) = encoder.encode_spans([text], [seg_spans + spans], batch_size=1)
        kept = words.from_int8(stored[row["word_start"] : row["word_end"]])
        cosines = np.sum(fresh[len(seg_spans) :] * kept, axis=1)
        assert len(cosines) == 0 or cosines.min() >= 0.999, (row["id"], cosines.min())
        checked += len(cosines)
    assert checked > 300
