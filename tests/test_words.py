"""Word vectors made at build time for the second pass: which words are kept, whose they are, the codebook that
stores them (product quantisation), and that the stored codes are what the model says of those words in their
passage, close enough that the second pass scores as it would with the words unquantised."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from conftest import EXPECTATIONS
from search import chunks as chunking
from search import embed, model_folder, pooling, rank, retrieve, store, word_codebook, words
from search.fast_encoder import OnnxEncoder


def test_passage_words_keep_informative_words_and_say_whose_each_is() -> None:
    text = "Rockets — Why they fail\nThe engine lost pressure. Then the rocket tumbled"
    first = text.index("The engine")
    second = text.index("Then the")
    spans, owners = words.passage_words(text, [(first, second - 1), (second, len(text))])
    kept = [text[a:b] for a, b in spans]
    assert kept == ["Rockets", "fail", "engine", "lost", "pressure", "rocket", "tumbled"]
    assert owners == [words.HEADING, words.HEADING, 0, 0, 0, 1, 1]


def spaced_tokenizer(words_: list[str]) -> Tokenizer:
    """A SentencePiece-style tokenizer, as Gemma's: a space becomes "▁" and opens the next word's token, so the
    token of " engine" is "▁engine" and its character offsets take in the space."""
    vocab = {"<unk>": 0}
    for w in words_:
        vocab.setdefault(w, len(vocab))
        vocab.setdefault("▁" + w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split("▁", behavior="merged_with_next"),
            pre_tokenizers.Split("\n", behavior="isolated"),
        ]
    )
    return tok


def test_a_word_whose_token_takes_in_the_space_before_it_gets_that_tokens_vector(tmp_path: Path) -> None:
    text = "The engine lost pressure then the rocket tumbled"
    tok = spaced_tokenizer(text.split())
    spans = rank.word_spans(text)
    for prompt in ("", "query: "):
        enc = tok.encode(prompt + text)
        assert (prompt + text)[slice(*enc.offsets[-1])] == " tumbled"  # the tokenizer is as described
        tokens = np.eye(len(enc.ids), dtype=np.float32)  # each token a direction of its own
        mask = np.ones(len(enc.ids), dtype=np.int64)
        offsets = np.asarray(enc.offsets)
        means, inside = pooling.span_means(offsets, mask, tokens, spans, len(prompt), prompt + text)
        # Every word holds exactly its own token (before, a word whose token took in the space held none).
        assert inside.all()
        own = [
            next(n for n, (a, b) in enumerate(enc.offsets) if (prompt + text)[a:b].strip() == w)
            for w in text.split()
        ]
        np.testing.assert_array_equal(means, tokens[own])
        # A sentence holds its first word's token too.
        then = text.index("then")
        means, inside = pooling.span_means(
            offsets, mask, tokens, [(then, len(text))], len(prompt), prompt + text
        )
        np.testing.assert_allclose(means[0], tokens[own[4:]].mean(axis=0))
    tok.save(str(tmp_path / "tokenizer.json"))
    assert embed._offsets_take_spaces(tmp_path / "tokenizer.json")
    assert not embed.offsets_take_spaces(model_folder.bundled())  # WordPiece: its offsets hold no spaces
    # So a build with such a model records it (its older indexes are rebuilt); the bundled model's settings are as
    # before (its indexes are kept).
    from search.build import settings

    assert settings(128, embed.ONNX, True) == {**settings(128), "token_spans": "leading whitespace left out"}


def test_the_torch_free_encoder_reads_each_word_of_a_spaced_tokenizer_in_its_passage(
    sample_index: Path, tmp_path: Path
) -> None:
    """The build's path (`encode_chunks` over the torch-free encoder) with a SentencePiece-style tokenizer: every
    kept word gets a vector from its passage; none is dropped as if truncation had cut it off. (The bundled model's
    weights read the tokenizer's ids: what they mean does not matter here, where each word's tokens are.)"""
    from search.fast_encoder import OnnxEncoder

    text = "Rockets why they fail\nThe engine lost pressure then the rocket tumbled"
    tok = spaced_tokenizer(text.split())
    tok.save(str(tmp_path / "tokenizer.json"))
    encoder = OnnxEncoder(embed.export_folder() / embed.ONNX_FILE, tmp_path / "tokenizer.json", threads=1)
    first = text.index("The engine")
    segments = [(first, text.index(" then")), (text.index("then"), len(text))]
    encoded = embed.encode_chunks(encoder, [text], [segments])
    kept, owners = words.passage_words(text, segments)
    assert [text[a:b] for a, b in kept] == [
        "Rockets",
        "fail",
        "engine",
        "lost",
        "pressure",
        "rocket",
        "tumbled",
    ]
    assert len(encoded.words[0]) == len(kept) and encoded.owners[0].tolist() == owners


def test_int8_rows_keep_the_direction_of_unit_vectors() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((500, embed.DIMENSION)).astype(np.float32)
    vectors[:10] *= 0.0  # a zero row must not become NaN
    vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    back = words.from_int8(words.to_int8(vectors))
    assert np.isfinite(back).all()
    cosines = np.sum(vectors[10:] * back[10:], axis=1)
    assert cosines.min() >= 0.9995, cosines.min()


def clustered_words(n: int, seed: int) -> np.ndarray:
    """Unit vectors around 40 directions (a model's word vectors cluster)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, embed.DIMENSION)).astype(np.float32)
    vectors = centres[rng.integers(0, 40, n)] + 0.3 * rng.standard_normal((n, embed.DIMENSION))
    out: np.ndarray = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return out


def test_a_codebook_codes_and_decodes_the_vectors_it_learnt_from(tmp_path: Path) -> None:
    vectors = clustered_words(2000, 11)
    book = words.Codebook.learn(vectors)
    assert (book.parts, book.size, book.width) == (embed.DIMENSION // 8, 256, 8)
    codes = book.encode(vectors)
    assert codes.shape == (2000, book.parts) and codes.dtype == np.uint8
    back = book.decode(codes)
    assert np.allclose(np.linalg.norm(back, axis=1), 1.0, atol=1e-5)
    # A word decodes to its parts' centroids, made unit length (faiss does the gather: the same floats).
    gathered = book.centroids[np.arange(book.parts), codes.astype(np.intp)].reshape(len(codes), -1)
    assert np.array_equal(back, gathered / np.linalg.norm(gathered, axis=1, keepdims=True))
    assert book.decode(codes[:0]).shape == (0, embed.DIMENSION)
    cosines = np.sum(vectors * back, axis=1)
    unrelated = np.sum(vectors * np.roll(vectors, 1, axis=0), axis=1)
    assert cosines.mean() > 0.9 and cosines.mean() > unrelated.mean() + 0.3, (
        cosines.mean(),
        unrelated.mean(),
    )
    # Each part's code is its nearest centroid; int8 rows code as their floats do.
    parts = vectors.reshape(len(vectors), book.parts, 1, book.width)
    nearest = np.argmin(np.sum((parts - book.centroids[None]) ** 2, axis=3), axis=2)
    assert float((codes == nearest).mean()) > 0.999  # but for float rounding between two equally near
    assert (book.encode(words.to_int8(vectors)) == codes).mean() > 0.99
    # Saved and read back (as an index keeps it), it codes and decodes alike and keeps its digest.
    word_codebook.save(tmp_path / "book.npy", book)
    again = word_codebook.read(tmp_path / "book.npy", embed.DIMENSION)
    assert again.digest == book.digest and np.array_equal(again.encode(vectors), codes)
    assert np.array_equal(again.decode(codes), back)
    with pytest.raises(ValueError, match="not a codebook of 768 dimensions"):
        word_codebook.read(tmp_path / "book.npy", 768)


def test_a_codebook_of_few_words_keeps_them() -> None:
    vectors = clustered_words(20, 3)
    book = words.Codebook.learn(vectors)  # fewer words than centroids: each its own
    cosines = np.sum(vectors * book.decode(book.encode(vectors)), axis=1)
    assert cosines.min() > 0.99, cosines.min()
    # A model whose dimension 8 does not divide: parts of the next width that does.
    assert words.part_width(100) == 10 and words.part_width(32) == 8 and words.part_width(7) == 7


def test_stored_word_vectors_are_the_models_words_in_their_passage(sample_index: Path) -> None:
    gen = store.current_generation(sample_index)
    manifest = store.read_manifest(gen)
    stored, owners, book = store.read_words(gen, manifest["counts"]["words"], manifest["model"]["dimension"])
    assert manifest["counts"]["words"] > 1000 and stored.dtype == np.uint8 and stored.shape[1] == 48
    # Coded with the model's codebook, learnt once from the sample notes and kept in the model cache.
    assert manifest["word_codebook"] == book.digest == word_codebook.for_model(model_folder.bundled()).digest
    db = store.open_meta(gen)
    encoder = embed.load_document_encoder()
    assert isinstance(encoder, OnnxEncoder)
    same = 0
    cosines = []
    # Each passage as the build embedded it: title and heading path, then its segments.
    for p in chunking.stored_passages(db, limit=40):
        text, seg_spans = p.text, p.spans
        spans, own = words.passage_words(text, seg_spans)
        assert p.word_end - p.word_start == len(spans)
        assert owners[p.word_start : p.word_end].tolist() == own
        _, (fresh,) = encoder.encode_spans([text], [seg_spans + spans], batch_size=1)
        codes = stored[p.word_start : p.word_end]
        same += int((codes == book.encode(words.to_int8(fresh[len(seg_spans) :]))).sum())
        cosines.append(np.sum(fresh[len(seg_spans) :] * book.decode(codes), axis=1))
    every = np.concatenate(cosines)
    assert len(every) > 300
    # The codes are the fresh vectors' (but for a part whose rounding fell the other side of two centroids), and
    # decode to about the same direction (0.86 on average over the shared corpus's words).
    assert same / (len(every) * book.parts) > 0.99, same / (len(every) * book.parts)
    assert every.mean() > 0.8 and every.min() > 0.6, (every.mean(), every.min())


class Unquantised:
    """Decodes word rows that are float vectors already (the words before storage)."""

    @staticmethod
    def decode(rows: np.ndarray) -> np.ndarray:
        return np.asarray(rows, dtype=np.float32)


def test_the_second_pass_scores_as_with_unquantised_words(sample_index: Path) -> None:
    # Every passage of the index encoded again, its words kept as float vectors (no storage), in word row order
    # (a build appends words as its threads encode them: each passage's rows are where its chunk row says).
    idx = retrieve.open_index(sample_index)
    passages = chunking.stored_passages(idx.db)
    encoder = embed.load_document_encoder()
    fresh = np.zeros((len(idx.words), idx.word_codebook.dimension), dtype=np.int8)
    for p in passages:
        (passage,) = embed.encode_chunks(encoder, [p.text], [p.spans]).words
        assert len(passage) == p.word_end - p.word_start
        fresh[p.word_start : p.word_end] = passage
    assert sum(p.word_end - p.word_start for p in passages) == len(idx.words)
    stored = (idx.words, idx.word_codebook)
    unquantised = (words.from_int8(fresh), Unquantised())
    gaps, same_best = [], 0
    questions = [item["q"] for item in EXPECTATIONS["ask"]]
    for question in questions:
        query, asked = idx._encode_question(question)
        assert asked is not None
        lead = idx._candidates(question, query, None, rank.HYBRID)[0][: rank.HYBRID.rerank]
        idx.words, idx.word_codebook = stored
        coded = idx._read_words(asked, lead).scores()
        idx.words, idx.word_codebook = unquantised
        exact = idx._read_words(asked, lead).scores()
        assert coded.keys() == exact.keys()
        gaps += [abs(coded[s] - exact[s]) for s in exact]
        same_best += max(coded, key=coded.__getitem__) == max(exact, key=exact.__getitem__)
    idx.close()
    # The bound, on the sample notes' 16 questions (447 segments): each segment's MaxSim within 0.15 of its score
    # with unquantised words (measured: at most 0.091, 0.016 on average, 95 % within 0.041), and the best segment of
    # the passages read closely the same for nearly every question (measured: all 16).
    assert max(gaps) < 0.15 and float(np.mean(gaps)) < 0.03, (max(gaps), float(np.mean(gaps)))
    assert float(np.percentile(gaps, 95)) < 0.06, float(np.percentile(gaps, 95))
    assert same_best >= 0.9 * len(questions), (same_best, len(questions))
