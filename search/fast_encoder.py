"""Torch-free sentence encoder: onnxruntime + tokenizers + numpy only.

Reproduces sentence-transformers' pipeline for a model of Transformer, mean
Pooling and Normalize (prepend the prompt, truncate to max_seq_length tokens,
pad to the longest text in the batch, mean pooling over the attention mask, L2
normalisation) on an ONNX file written by ``search.onnx_export``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from search import pooling

MAX_SEQ_LENGTH = 256


class OnnxEncoder:
    """Encode texts into L2-normalised float32 vectors with an ONNX transformer."""

    def __init__(
        self,
        onnx_path: Path,
        tokenizer_path: Path,
        threads: int | None = None,
        max_seq_length: int = MAX_SEQ_LENGTH,
        optimized: bool = False,
        prepack: bool = True,
        disabled_fusions: tuple[str, ...] = (),
        prompt: str = "",
    ) -> None:
        """Load the tokenizer and create the inference session.

        ``threads`` sets onnxruntime's intra-op thread count (``None``: its
        default, one per core). Worker threads do not spin after a run, so
        work that follows (e.g. a FAISS search) is not slowed down.
        ``optimized``: the file holds a graph onnxruntime has already optimised
        (see ``search.question_model``), so the session does not optimise it
        again. ``prepack=False`` skips re-laying out the weights at load: a
        session ready in milliseconds, each run a little slower.
        ``disabled_fusions``: onnxruntime graph optimisers not to apply.
        ``prompt``: prepended to every text, as sentence-transformers does
        with a model's query or document prompt (the prompt's tokens are
        pooled too, as there).
        """
        self.path = onnx_path
        self.prompt = prompt
        tok = Tokenizer.from_file(str(tokenizer_path))
        # The bundled tokenizer.json pads/truncates to a fixed 128; match
        # sentence-transformers instead: truncate at 256, pad to batch longest.
        tok.enable_truncation(max_length=max_seq_length)
        # Padding is masked out: its id changes nothing, but it must be one the model knows.
        pad = next((t for t in ("[PAD]", "<pad>") if tok.token_to_id(t) is not None), "[PAD]")
        pad_id = tok.token_to_id(pad)
        tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad)
        self._tokenizer = tok

        opts = ort.SessionOptions()
        opts.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            if optimized
            else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        if not prepack:
            opts.add_session_config_entry("session.disable_prepacking", "1")
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(onnx_path),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(disabled_fusions) or None,
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        out = self._session.get_outputs()[0]
        self.dim: int = int(out.shape[-1]) if isinstance(out.shape[-1], int) else 0
        if not self.dim:  # a graph that leaves its hidden size symbolic: ask it
            self.dim = int(self._hidden(self._tokenizer.encode_batch(["a"]))[0].shape[-1])

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        """Encode one batch (already padded to its longest text)."""
        hidden, mask = self._hidden(self._tokenizer.encode_batch([self.prompt + t for t in texts]))
        return _normalise(_mean(hidden, mask))

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Return an ``(n, dim)`` float32 array of L2-normalised embeddings.

        Texts are sorted by length (longest first, as sentence-transformers
        does) so that each batch pads little; the input order is restored.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of strings, not a string")
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._embed_batch([texts[i] for i in idx])
        return out

    def encode_spans(
        self,
        texts: list[str],
        spans: list[list[tuple[int, int]]],
        batch_size: int = 32,
        keep: list[int] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors for texts, and for character spans inside each, from one pass of the model.

        A span's vector is the mean of the token vectors inside it (the tokens saw the whole text, so each span
        vector carries its context), L2-normalised. A span cut off by truncation is encoded on its own; with
        ``keep``, only the first keep[i] spans of text i are, and a later span cut off gets a zero vector.
        """
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        span_out = [np.empty((len(s), self.dim), dtype=np.float32) for s in spans]
        missing: list[tuple[int, int]] = []
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            encs = self._tokenizer.encode_batch([self.prompt + texts[i] for i in idx])
            hidden, mask = self._hidden(encs)
            out[idx] = _normalise(_mean(hidden, mask))
            for row, i in enumerate(idx):
                if not spans[i]:
                    continue
                means, inside = pooling.span_means(
                    np.asarray(encs[row].offsets),
                    mask[row],
                    hidden[row],
                    spans[i],
                    len(self.prompt),
                    self.prompt + texts[i],
                )
                span_out[i][inside] = _normalise(means)
                cut = np.flatnonzero(~inside)
                if keep is not None:
                    span_out[i][cut[cut >= keep[i]]] = 0.0
                    cut = cut[cut < keep[i]]
                missing += [(i, int(s)) for s in cut]
        if missing:
            vecs = self.encode([texts[i][slice(*spans[i][s])] for i, s in missing])
            for (i, s), vec in zip(missing, vecs, strict=True):
                span_out[i][s] = vec
        return out, span_out

    def _hidden(self, encs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        feeds: dict[str, np.ndarray] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return np.asarray(self._session.run(None, feeds)[0], dtype=np.float32), mask


def _mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[:, :, None].astype(np.float32)
    summed: np.ndarray = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    return summed


_normalise = pooling.unit
