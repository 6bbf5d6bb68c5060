"""Word vectors of passages, made at build time for the second pass of ranking (see `rank`).

A passage's words are encoded in the same pass of the model as its chunk vector, so each word vector carries the
passage around it. Only informative words are kept (a question's stopwords are not compared either). They are
stored product-quantised (`Codebook`): a word vector is cut into parts of 8 dimensions, and each part stored as the
number (one byte) of the nearest of 256 centroids learnt for that part. 48 bytes a word for a 384-dimension model
(2.3 KB a passage; as int8 rows it was 384 bytes, 18 KB a passage). The codebook is the model's, learnt once from
the bundled sample notes' words (`search.word_codebook`), and every index keeps a copy of the one that coded it.
The codes are read by memory map, so a question decodes the rows of the ten passages it re-reads and nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from search import rank

if TYPE_CHECKING:
    import numpy as np

#: Which words of a passage keep a vector, "informative" or "all" (recorded in the manifest: changing it rebuilds
#: everything).
KEPT = "informative"
#: Whose a word is when it belongs to the title and heading line, not to a segment.
HEADING = -1
#: Kept words of a passage at most: the model reads 256 tokens, and a word is at least one (words further on have
#: no vector in context; without a cap a note of one huge paragraph would list hundreds of thousands).
MAX_WORDS = 256


def passage_words(text: str, segments: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[int]]:
    """The kept words of a passage's embedded text: their character spans, and for each the index of the segment
    holding it (HEADING for the title and heading line before the first segment)."""
    spans: list[tuple[int, int]] = []
    owners: list[int] = []
    seg = 0
    for a, b in rank.word_spans(text):
        if KEPT == "informative" and not rank.informative(text[a:b].casefold()):
            continue
        while seg < len(segments) and a >= segments[seg][1]:
            seg += 1
        inside = seg < len(segments) and segments[seg][0] <= a
        spans.append((a, b))
        owners.append(seg if inside else HEADING)
        if len(spans) == MAX_WORDS:
            break
    return spans, owners


#: Dimensions of a part of a word vector (the smallest divisor of the model's dimension from this up): a part is one
#: byte. scripts/word_codecs.py, the shared corpus's 103k words, dev questions of the four sets against int8 rows in
#: the same run: see the table in the README (8 dimensions a part, 48 bytes a word: no loss over 0.005 MRR@10 on any
#: set; 12 dimensions, 32 bytes, lost more).
PART_WIDTH = 8
#: Centroids a part (one byte).
CENTROIDS = 256
#: k-means iterations a part (faiss's default).
NITER = 25
#: How word vectors are stored, recorded in the manifest (another recipe is another index format: a build redoes
#: every word of it).
RECIPE = f"product-quantised, parts of {PART_WIDTH} dimensions, {CENTROIDS} centroids"


def part_width(dimension: int) -> int:
    """The dimensions of a part for a model of this dimension (it divides the dimension)."""
    return next(w for w in range(min(PART_WIDTH, dimension), dimension + 1) if dimension % w == 0)


class Codebook:
    """Product quantisation of unit word vectors: ``centroids`` (parts, CENTROIDS, dimensions a part). A word is
    stored as one byte a part, the number of that part's nearest centroid (`encode`), and read as the centroids of
    its parts, made unit length (`decode`)."""

    def __init__(self, centroids: np.ndarray) -> None:
        import numpy as np

        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.parts, self.size, self.width = self.centroids.shape
        self.dimension = self.parts * self.width
        #: Names this codebook: a build copies an unchanged passage's codes only from an index coded with it.
        self.digest = hashlib.sha256(self.centroids.tobytes()).hexdigest()[:16]
        self._quantizer: Any = None  # made by the first `encode` or `decode`

    @classmethod
    def learn(cls, sample: np.ndarray) -> Codebook:
        """The codebook of some unit vectors (word vectors of sample notes)."""
        import faiss
        import numpy as np

        data = np.ascontiguousarray(sample, dtype=np.float32)
        if len(data) < CENTROIDS:  # very few words (a model with no word vectors has none): repeated to fill
            filler = data if len(data) else np.zeros((1, data.shape[1]), dtype=np.float32)
            data = np.ascontiguousarray(np.resize(filler, (CENTROIDS, data.shape[1])), dtype=np.float32)
        dimension = data.shape[1]
        pq = faiss.ProductQuantizer(dimension, dimension // part_width(dimension), 8)
        pq.cp.niter = NITER
        pq.cp.min_points_per_centroid = 1  # the sample notes give about 23 words a centroid: no warning
        # One thread: on this 2-core machine, shared, faiss's OpenMP threads took 20 s where one thread took 5.
        with one_faiss_thread():
            pq.train(data)
        return cls(faiss.vector_to_array(pq.centroids).reshape(pq.M, CENTROIDS, -1))

    def encode(self, rows: np.ndarray) -> np.ndarray:
        """Codes (uint8, one column a part) of word vectors: int8 rows (as `search.embed` makes them) or float."""
        import numpy as np

        vectors = from_int8(rows) if rows.dtype == np.int8 else np.ascontiguousarray(rows, dtype=np.float32)
        if not len(vectors):
            return np.zeros((0, self.parts), dtype=np.uint8)
        # faiss on one thread: the build's encoding threads call this for each passage (47 words), and OpenMP's
        # threads spin on a loaded machine (6-28 ms a passage on two, 0.9 ms on one; numpy took 1.6-2.2 ms). The
        # setting is the calling thread's own (OpenMP keeps one per thread), and restored.
        if self._quantizer is None:
            self._quantizer = _quantizer(self.centroids)  # two threads may both make one: the same
        with one_faiss_thread():
            codes: np.ndarray = self._quantizer.compute_codes(vectors)
        return codes.reshape(len(vectors), self.parts)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes back as unit float32 vectors (cosine with the original 0.83 on average for MiniLM's words of the
        shared corpus)."""
        import numpy as np

        if self._quantizer is None:
            self._quantizer = _quantizer(self.centroids)
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if not len(codes):
            return np.zeros((0, self.dimension), dtype=np.float32)
        # faiss's decode, on this thread only (see `encode`): each part's centroid, as indexing the centroids
        # gives, in 0.05 ms where numpy's gather took 0.48 (470 words, an answer's passages read closely).
        with one_faiss_thread():
            vectors: np.ndarray = self._quantizer.decode(codes)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        out: np.ndarray = vectors / np.clip(norms, 1e-12, None)
        return out


@contextlib.contextmanager
def one_faiss_thread() -> Iterator[None]:
    """faiss's OpenMP on the calling thread alone meanwhile (OpenMP keeps the setting per thread), then as it was."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def _quantizer(centroids: np.ndarray) -> Any:
    """faiss's product quantizer with these centroids (it finds each part's nearest centroid)."""
    import faiss

    parts, size, width = centroids.shape
    pq = faiss.ProductQuantizer(parts * width, parts, size.bit_length() - 1)
    faiss.copy_array_to_vector(centroids.ravel(), pq.centroids)
    return pq


def to_int8(vectors: np.ndarray) -> np.ndarray:
    """Rows of unit vectors as int8, each scaled so its largest component is ±127 (the scale is not kept: a row
    is made unit length again when read)."""
    import numpy as np

    peak = np.abs(vectors).max(axis=1, keepdims=True)
    scaled = np.rint(vectors * (127.0 / np.clip(peak, 1e-12, None)))
    out: np.ndarray = scaled.astype(np.int8)
    return out


def from_int8(rows: np.ndarray) -> np.ndarray:
    """int8 rows back as unit float32 vectors (cosine with the original ≥ 0.9998)."""
    import numpy as np

    vectors = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: np.ndarray = vectors / np.clip(norms, 1e-12, None)
    return out
