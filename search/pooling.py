"""Span vectors from one pass of a model: the mean of the token vectors inside each character span of a text,
shared by the torch-free encoder (`search.fast_encoder`) and the sentence-transformers one
(`search.torch_encoder`), so that both make the same word and segment vectors."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def span_means(
    offsets: np.ndarray,
    mask: np.ndarray,
    tokens: np.ndarray,
    spans: list[tuple[int, int]],
    shift: int,
    text: str,
) -> tuple[np.ndarray, np.ndarray]:
    """For one text of a batch: its tokens' character ``offsets`` (n, 2), attention ``mask`` (n) and vectors
    ``tokens`` (n, dim), and character ``spans`` in the text before a prompt of ``shift`` characters was put
    before it (``text``: the text the model read, prompt included). Gives the mean vector (float32) of each span
    that holds a token, and which spans do (a span cut off by truncation holds none)."""
    import numpy as np

    offsets = np.array(offsets, dtype=np.int64).reshape(-1, 2)
    # A SentencePiece-style tokenizer (Gemma's, XLM-R's) counts the space before a word as part of its token:
    # " cat" at (3, 7) for the word "cat" at (4, 7). Its start is moved past that whitespace, or the word would
    # hold no token of its own and get no vector. (WordPiece tokens never start with whitespace.)
    for n, (start, end) in enumerate(offsets.tolist()):
        if start < end and text[start].isspace():
            while start < end and text[start].isspace():
                start += 1
            offsets[n, 0] = start
    # Real tokens (not special tokens or padding, on whichever side; not whitespace alone) in text order; those
    # inside a span are consecutive, so each span's mean is a difference of running sums.
    real = np.flatnonzero((mask > 0) & (offsets[:, 1] > offsets[:, 0]))
    starts, ends = offsets[real, 0], offsets[real, 1]
    wanted = np.asarray(spans, dtype=np.int64).reshape(-1, 2) + shift
    first = np.searchsorted(starts, wanted[:, 0], side="left")
    last = np.searchsorted(ends, wanted[:, 1], side="right")
    counts = last - first
    sums = np.zeros((len(real) + 1, tokens.shape[-1]), dtype=np.float64)
    np.cumsum(tokens[real], axis=0, out=sums[1:])
    inside = counts > 0
    means = (sums[last[inside]] - sums[first[inside]]) / counts[inside, None]
    return means.astype(np.float32), inside


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float32)."""
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: np.ndarray = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
    return result
