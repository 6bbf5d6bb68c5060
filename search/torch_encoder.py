"""Encoding with sentence-transformers (torch, fp32, on CPU), for a model the torch-free path cannot reproduce.

A model with a Dense module after pooling (EmbeddingGemma has two), another pooling than mean, or an export that
failed or disagreed with sentence-transformers is encoded here, for documents and questions alike, and the
manifest says so (``encoder`` ``kind``: "sentence-transformers"). The model is loaded from its local folder only.

The second pass of ranking needs a vector for each kept word (and the build one for each segment) from the one
pass of the model over the passage, as the torch-free path makes them (`search.fast_encoder.OnnxEncoder
.encode_spans`). Here they come from the same place: the Transformer module's token vectors (sentence-transformers'
``token_embeddings``, before pooling), averaged over the span's tokens (the word pieces whose characters are inside
it, found by the tokenizer's offsets). A mean-pooling model's own pooling over those tokens gives exactly that; the
modules after pooling (Dense, Normalize) are then applied to each span's mean as to a pooled vector, so that a
word's vector is in the same space as a passage's and a question's. A model with another pooling (cls, max, last
token) has no such span vector: it gives none, and its segments are encoded on their own (no word vectors; the
second pass skips its passages).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search import embed, pooling
from search.errors import YtnotesError
from search.model_folder import Model

if TYPE_CHECKING:
    import numpy as np

#: Texts encoded at once. fp32 vectors do not depend on their batch (unlike dynamically quantised int8 ones, which
#: the torch-free documents are encoded one by one for), and torch on 2 cores is fastest at 32 (PROBES.md).
BATCH_SIZE = 32


class TorchEncoder(embed.SentenceTransformerEncoder):
    """sentence-transformers on torch, fp32: unit vectors for texts, with a prompt put before each (the reference
    encoder, loading a model folder it may not know with a one-line error)."""

    #: Documents are batched (see `search.embed.encode_chunks`).
    document_batch = BATCH_SIZE

    def __init__(self, model: Model, prompt: str = "") -> None:
        try:
            super().__init__(model, prompt)
        except Exception as exc:  # transformers raises its own types for an architecture it does not know
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise YtnotesError(
                f"sentence-transformers cannot load the model {model.path} either ({type(exc).__name__}: {first}); "
                "is it a complete sentence-transformers model folder?"
            ) from None
        self.model.eval()

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """An ``(n, dim)`` float32 array of unit vectors, as `SentenceTransformer.encode` gives them."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of strings, not a string")
        return super().encode(texts, batch_size)


class TorchSpanEncoder(TorchEncoder):
    """A mean-pooling model: also vectors for character spans inside each text, from the same pass."""

    def encode_spans(
        self,
        texts: list[str],
        spans: list[list[tuple[int, int]]],
        batch_size: int = BATCH_SIZE,
        keep: list[int] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors for texts, and for character spans inside each (as `OnnxEncoder.encode_spans`: a span cut off by
        truncation is encoded on its own; with ``keep``, only the first keep[i] spans of text i are, and a later
        one cut off gets a zero vector)."""
        import numpy as np
        import torch
        from sentence_transformers.util import batch_to_device

        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        span_out = [np.empty((len(s), self.dim), dtype=np.float32) for s in spans]
        missing: list[tuple[int, int]] = []
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        # The tokenizer's character offsets come with the features (sentence-transformers keeps them out of the
        # model's inputs); they are offsets in the prompted text.
        offsets_wanted = {"text": {"return_offsets_mapping": True}}
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            features = self.model.preprocess(
                [texts[i] for i in idx], prompt=self.prompt or None, processing_kwargs=offsets_wanted
            )
            offset_mapping = features["offset_mapping"].numpy()
            with torch.inference_mode():
                found = self.model(batch_to_device(features, "cpu"))
            out[idx] = _unit(found["sentence_embedding"].float().numpy())
            tokens = found["token_embeddings"].float().numpy()
            mask = found["attention_mask"].numpy()
            means: list[np.ndarray] = []
            where: list[tuple[int, np.ndarray]] = []
            for row, i in enumerate(idx):
                if not spans[i]:
                    continue
                found_means, inside = pooling.span_means(
                    offset_mapping[row],
                    mask[row],
                    tokens[row],
                    spans[i],
                    len(self.prompt),
                    self.prompt + texts[i],
                )
                means.append(found_means)
                where.append((i, inside))
                cut = np.flatnonzero(~inside)
                if keep is not None:
                    span_out[i][cut[cut >= keep[i]]] = 0.0
                    cut = cut[cut < keep[i]]
                missing += [(i, int(s)) for s in cut]
            if means:
                pooled = self._after_pooling(np.concatenate(means))
                pos = 0
                for i, inside in where:
                    count = int(inside.sum())
                    span_out[i][inside] = pooled[pos : pos + count]
                    pos += count
        if missing:
            vecs = self.encode([texts[i][slice(*spans[i][s])] for i, s in missing])
            for (i, s), vec in zip(missing, vecs, strict=True):
                span_out[i][s] = vec
        return out, span_out

    def _after_pooling(self, pooled: np.ndarray) -> np.ndarray:
        """Pooled vectors through the model's modules after pooling (Dense, Normalize), as unit vectors."""
        import torch

        if not len(pooled):
            return pooled.reshape(0, self.dim)
        features: dict[str, Any] = {"sentence_embedding": torch.from_numpy(pooled)}
        with torch.inference_mode():
            for module in list(self.model)[2:]:
                features = module(features)
        return _unit(features["sentence_embedding"].float().numpy())


def load(model: Model, prompt: str = "") -> embed.Encoder:
    """The sentence-transformers encoder for ``model`` (with span vectors when it pools by mean)."""
    if model.pooling == "mean":
        return TorchSpanEncoder(model, prompt)
    return TorchEncoder(model, prompt)


_unit = pooling.unit
