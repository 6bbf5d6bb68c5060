"""Ways to store the second pass's word vectors, side by side in one process (issue 15: the index's size on disk).

    .venv/bin/python scripts/word_codecs.py --index DIR [--split dev] QUESTIONS.jsonl...

The index's passages are encoded again as its build encoded them, giving every word's vector before storage (int8
rows, as `search.embed` makes them). Each codec then stores every word and the index answers the questions with
the words it decodes; the table prints scripts/eval.py's columns for each, in the same run, beside int8 rows (the
storage before product quantisation). Also printed: bytes a word and a passage, the time to learn the codec (when
it learns), to code all the index's words, and to decode the ~470 words of the ten passages a question reads
closely (median of 200), and the words' cosine with their vectors before storage.

Codebooks: "samples book" is learnt from the bundled sample notes' words (what `search.word_codebook` does: the
model's codebook); "index book" from an even sample of 16k of the index's own words.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import eval as ev  # noqa: E402

from search import chunks as chunking  # noqa: E402
from search import embed, model_folder, rank, word_codebook, words  # noqa: E402

#: A codec made: (encode int8 rows, decode codes).
Pair = tuple[Callable[[np.ndarray], Any], Callable[[Any], np.ndarray]]
#: Makes a codec from the index's words and the sample notes' words (int8 rows / float rows).
Learn = Callable[[np.ndarray, np.ndarray], Pair]
#: (bytes a word, how it is made)
Codec = tuple[int, Learn]


#: The index's model (set by main).
MODEL: list[Any] = []


class Decoder:
    """What `Index` asks of its codebook: decode(codes)."""

    def __init__(self, decode: Callable[[Any], np.ndarray]) -> None:
        self.decode = decode


def index_words(idx: Any) -> np.ndarray:
    """Every word vector of the index, as its build made it before storage (int8 rows, in word row order)."""
    passages = chunking.stored_passages(idx.db)
    texts = [p.text for p in passages]
    spans = [p.spans for p in passages]
    encoder = embed.load_document_encoder(model=model_folder.chosen(Path(idx.manifest["model_path"])))
    out = []
    for start in range(0, len(texts), 64):
        done = embed.encode_chunks(encoder, texts[start : start + 64], spans[start : start + 64])
        out += done.words
    vectors = np.concatenate(out)
    assert len(vectors) == idx.manifest["counts"]["words"], (len(vectors), idx.manifest["counts"]["words"])
    return vectors


def sample(vectors: np.ndarray, n: int) -> np.ndarray:
    picks = np.unique(np.linspace(0, len(vectors) - 1, min(n, len(vectors))).astype(np.int64))
    return np.ascontiguousarray(vectors[picks])


def unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = v / np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)
    return out.astype(np.float32)


def int8(index: np.ndarray, teacher: np.ndarray) -> Pair:
    return words.to_int8, words.from_int8


def product(book_from: str, width: int = words.PART_WIDTH) -> Learn:
    """Product quantisation with this project's codebook (`search.words.Codebook`), parts of ``width``."""

    def learn(index: np.ndarray, teacher: np.ndarray) -> Pair:
        keep = words.PART_WIDTH
        words.PART_WIDTH = width
        try:
            if book_from == "samples x3":  # the sample notes cut at 64, 128 and 256 tokens: 3 contexts a word
                teacher = word_codebook.sample_words(MODEL[0], (64, 128, 256))
            elif book_from == "index":
                teacher = words.from_int8(sample(index, 16_384))
            book = words.Codebook.learn(teacher)
        finally:
            words.PART_WIDTH = keep
        return book.encode, book.decode

    return learn


def opq(parts: int) -> Learn:
    """Product quantisation after a learnt rotation (faiss OPQ), codebook from the sample notes."""

    def learn(index: np.ndarray, teacher: np.ndarray) -> Pair:
        import faiss

        faiss.omp_set_num_threads(1)
        d = teacher.shape[1]
        rot = faiss.OPQMatrix(d, parts)
        rot.train(np.ascontiguousarray(teacher))
        book = words.Codebook.learn(rot.apply_py(np.ascontiguousarray(teacher)))

        def enc(v: np.ndarray) -> np.ndarray:
            return book.encode(rot.apply_py(np.ascontiguousarray(words.from_int8(v))))

        def dec(c: np.ndarray) -> np.ndarray:
            return unit(rot.reverse_transform(np.ascontiguousarray(book.decode(c))))

        return enc, dec

    return learn


def signs(index: np.ndarray, teacher: np.ndarray) -> Pair:
    def enc(v: np.ndarray) -> np.ndarray:
        return np.packbits(v > 0, axis=1)

    def dec(c: np.ndarray) -> np.ndarray:
        return unit(np.unpackbits(np.asarray(c), axis=1).astype(np.float32) * 2 - 1)

    return enc, dec


def pca_4bit(dims: int) -> Learn:
    """Rotation to the ``dims`` principal directions of the index's words, each stored in 4 bits."""

    def learn(index: np.ndarray, teacher: np.ndarray) -> Pair:
        data = words.from_int8(sample(index, 16_384))
        mean = data.mean(axis=0)
        _, _, vt = np.linalg.svd(data - mean, full_matrices=False)
        basis = vt[:dims].astype(np.float32)
        proj = (data - mean) @ basis.T
        lo, hi = np.percentile(proj, 0.5, axis=0), np.percentile(proj, 99.5, axis=0)

        def enc(v: np.ndarray) -> np.ndarray:
            p = (words.from_int8(v) - mean) @ basis.T
            return np.clip(np.rint((p - lo) / (hi - lo) * 15), 0, 15).astype(np.uint8)

        def dec(c: np.ndarray) -> np.ndarray:
            p = np.asarray(c).astype(np.float32) / 15 * (hi - lo) + lo
            return unit(p @ basis + mean)

        return enc, dec

    return learn


CODECS: dict[str, Codec] = {
    "int8 rows (before)": (384, int8),
    "pq48 samples book": (48, product("samples")),
    "pq48 index book": (48, product("index")),
    "pq48 samples x3 book": (48, product("samples x3")),
    "pq32 samples book": (32, product("samples", width=12)),
    "pq64 samples book": (64, product("samples", width=6)),
    "opq48 samples book": (48, opq(48)),
    "pca96 4-bit": (48, pca_4bit(96)),
    "sign bits": (48, signs),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("questions", type=Path, nargs="+")
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    ap.add_argument("--only", help="comma-separated codec names")
    args = ap.parse_args()

    questions = [
        q for p in args.questions for q in ev.load(p) if args.split == "all" or q.split == args.split
    ]
    idx = ev.open_for_eval(args.index)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    reference = index_words(idx)
    encoded_in = time.perf_counter() - started
    MODEL.append(model_folder.chosen(Path(idx.manifest["model_path"])))
    teacher = word_codebook.sample_words(MODEL[0])
    vectors = words.from_int8(reference)
    n_chunks = idx.manifest["counts"]["chunks"]
    codecs = {k: v for k, v in CODECS.items() if not args.only or k in args.only.split(",")}
    print(
        f"# load average {load:.2f}; {len(vectors)} words, {n_chunks} chunks ({len(vectors) / n_chunks:.1f} words a "
        f"chunk, encoded again in {encoded_in:.0f} s); {len(questions)} {args.split} questions; "
        f"{len(teacher)} words in the sample notes",
        flush=True,
    )
    rng = np.random.default_rng(0)
    rows, summary = [], []
    for name, (nbytes, make) in codecs.items():
        t0 = time.perf_counter()
        enc, dec = make(reference, teacher)
        learn = time.perf_counter() - t0
        t0 = time.perf_counter()
        codes = np.concatenate([enc(reference[i : i + 4096]) for i in range(0, len(reference), 4096)])
        encode = time.perf_counter() - t0
        decoded = np.concatenate([dec(codes[i : i + 4096]) for i in range(0, len(codes), 4096)])
        cos = np.sum(decoded * vectors, axis=1)
        timings = []
        for _ in range(200):
            start = int(rng.integers(0, len(codes) - 470))
            part = codes[start : start + 470]
            t0 = time.perf_counter()
            dec(part)
            timings.append(time.perf_counter() - t0)
        idx.words, idx.word_codebook = codes, Decoder(dec)
        results = ev.score(idx, questions, rank.HYBRID)
        rows += [(name, *r) for r in ev.summarise(questions, results, False) if r[1] == args.split]
        summary.append(
            f"{name:<20} {nbytes:>4} B/word {nbytes * len(vectors) / n_chunks:>6.0f} B/chunk  learn {learn:5.1f} s  "
            f"code all {encode:5.2f} s  decode 470 words {np.median(timings) * 1e3:5.3f} ms  "
            f"cosine mean {cos.mean():.4f} min {cos.min():.4f}"
        )
        print(summary[-1], flush=True)
        print(ev.table([r for r in rows if r[0] == name]), flush=True)
    print("\n".join(summary))
    print(ev.table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
