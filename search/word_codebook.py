"""The codebook that stores a model's word vectors (see `search.words.Codebook`), one per model.

It is learnt once, from the words of the bundled sample notes encoded by the model (about 5,900 words for MiniLM,
3 s), and kept in the model cache beside the model's export, so builds never learn one: an index's words are coded
as they are encoded, and an unchanged passage's codes are copied by the next build. Learnt from notes that are not
the user's, it codes any index alike; on the shared corpus it loses no more than one learnt from the corpus's own
words (scripts/word_codecs.py). Each index keeps a copy of the codebook that coded it, so a reader never depends on
the cache, and a cache cleared and learnt again (possibly to other centroids) is told apart by its digest.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from search import embed, paths, words
from search.model_folder import Model

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: The codebook's file in the model's export folder (and in an index).
FILE = "word_codebook.npy"
#: The same for a model whose tokenizer counts a word's leading space into its token (`embed.offsets_take_spaces`):
#: a codebook learnt before word vectors left that space out was learnt from a few stray pieces, not words.
SPACED_FILE = "word_codebook-spaced.npy"

_LOADED: dict[Path, words.Codebook] = {}
_LOCK = threading.Lock()


def for_model(model: Model) -> words.Codebook:
    """The model's codebook: read from the model cache, or learnt and saved there on first use. Call after
    `search.embed.ensure_exported` (the build does)."""
    folder = embed.export_folder(model)
    path = folder / (SPACED_FILE if embed.offsets_take_spaces(model) else FILE)
    with _LOCK:
        book = _LOADED.get(path)
        if book is not None and path.is_file():
            return book
        try:
            book = read(path, model.dimension)
        except (OSError, ValueError):
            book = _learn(model)
            _save(path, book)
        _LOADED[path] = book
        return book


def read(path: Path, dimension: int) -> words.Codebook:
    """A saved codebook; ValueError when it is not one for vectors of ``dimension`` (OSError when unreadable)."""
    import numpy as np

    centroids = np.load(path, allow_pickle=False)
    width = words.part_width(dimension)
    if centroids.dtype != np.float32 or centroids.shape != (dimension // width, words.CENTROIDS, width):
        raise ValueError(
            f"{path} holds {centroids.dtype} {centroids.shape}, not a codebook of {dimension} dimensions"
        )
    return words.Codebook(centroids)


def save(path: Path, book: words.Codebook) -> None:
    """Write a codebook (its centroids as a .npy file), by Python's own file object: a full disk raises
    OSError(ENOSPC), which the build reports as such (np.save reports a short write with no error number)."""
    import numpy as np

    header = {"descr": np.lib.format.dtype_to_descr(book.centroids.dtype), "fortran_order": False}
    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {**header, "shape": book.centroids.shape})
        f.write(book.centroids.tobytes())


def _save(path: Path, book: words.Codebook) -> None:
    """Save into the cache atomically (another build may read it meanwhile); a cache that cannot be written only
    costs learning it again next time."""
    tmp = path.with_name(f".{FILE}.{os.getpid()}.tmp")
    try:
        save(tmp, book)
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("could not save the word codebook in %s: %s", path.parent, exc)
        tmp.unlink(missing_ok=True)


def _learn(model: Model) -> words.Codebook:
    """Learn the model's codebook from the word vectors of the bundled sample notes."""
    return words.Codebook.learn(sample_words(model))


def sample_words(model: Model, budgets: tuple[int, ...] = (0,)) -> np.ndarray:
    """The word vectors of the bundled sample notes, as a build makes them (float32 rows), for each chunk budget in
    ``budgets`` (0: the build's own; another cuts the notes into other passages, so their words have other
    contexts: more vectors to learn from)."""
    import numpy as np

    from search import chunks as chunking
    from search.errors import NoteError
    from search.notes import find_notes, read_note
    from search.segments import parse_note

    texts: list[str] = []
    spans: list[list[tuple[int, int]]] = []
    count = embed.token_counter(model)
    for path in find_notes(paths.SAMPLE_NOTES, []):
        try:
            note = read_note(path, paths.SAMPLE_NOTES)
            parsed = parse_note(note)
            for budget in budgets:
                for chunk in chunking.pack(parsed, count, budget or chunking.CHUNK_TOKENS):
                    text, where = chunking.embed_text_and_spans(note.title, chunk)
                    texts.append(text)
                    spans.append(where)
        except NoteError:  # not expected of the bundled notes; fewer words still make a codebook
            continue
    encoder = embed.load_document_encoder(model=model)
    encoded = embed.encode_chunks(encoder, texts, spans)
    rows = [w for w in encoded.words if len(w)]
    return words.from_int8(np.concatenate(rows)) if rows else np.zeros((0, model.dimension), np.float32)
