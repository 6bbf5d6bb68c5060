"""What a rebuild can take from the live index: unchanged notes whole, and the vectors of unchanged chunks."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search import chunks as chunking
from search import store, words
from search.errors import IndexMissingError, IndexUnusableError

if TYPE_CHECKING:
    import numpy as np


@dataclass
class NoteData:
    """One note's rows, ready to be numbered and written; vectors filled by reuse or by the encoder."""

    rel: str
    title: str
    channel: str | None
    channel_key: str | None
    video_id: str | None
    sha256: str
    dropped: list[str]
    #: (heading_json, text, line, n_segments, key, embed_text)
    chunks: list[tuple[str, str, int, int, str, str]]
    #: (text, times_json, link_time, line), in chunk order
    segments: list[tuple[str, str, int | None, int]]
    #: [(start, end)] of each segment's text inside its chunk's embed_text, per chunk
    spans: list[list[tuple[int, int]]] = field(default_factory=list)
    chunk_vectors: list[np.ndarray | None] = field(default_factory=list)
    segment_vectors: list[np.ndarray | None] = field(default_factory=list)
    #: Where each chunk's kept words' codes are in the build's `words.Spill` (first row, count), and whose
    #: each word is (see `search.words`)
    word_rows: list[tuple[int, int] | None] = field(default_factory=list)
    word_owners: list[np.ndarray | None] = field(default_factory=list)
    #: How the note's clock was repaired, said once when the note is read (not for a note reused unchanged).
    clock_repair: str | None = None

    def clear_vectors(self) -> None:
        """No vectors yet for any chunk."""
        self.chunk_vectors = [None] * len(self.chunks)
        self.segment_vectors = [None] * len(self.chunks)
        self.word_rows = [None] * len(self.chunks)
        self.word_owners = [None] * len(self.chunks)


class Previous:
    """The live generation, opened for reuse by a build that holds the lock."""

    def __init__(self, generation: Path, manifest: dict[str, Any]) -> None:
        #: Where reused word vectors are copied to; the build sets it.
        self.spill: words.Spill | None = None
        self.generation = generation
        self.manifest = manifest
        self.db = store.open_meta(generation)
        self.chunks = store.read_vectors(generation, store.CHUNKS)
        self.segments = store.read_vectors(generation, store.SEGMENTS)
        self.words, self.owners, self.codebook = store.read_words(
            generation, manifest["counts"]["words"], manifest["model"]["dimension"]
        )

    def close(self) -> None:
        self.db.close()

    def note(self, rel: str) -> NoteData:
        """An unchanged note's rows and vectors, as they are in the live index."""
        n = self.db.execute("SELECT * FROM notes WHERE path = ?", (rel,)).fetchone()
        chunks = self.db.execute(
            "SELECT * FROM chunks WHERE note_id = ? ORDER BY id",
            (n["id"],),
        ).fetchall()
        segs = self.db.execute(
            "SELECT id, text, times, link_time, line FROM segments WHERE note_id = ? ORDER BY id", (n["id"],)
        ).fetchall()
        first = segs[0]["id"] if segs else 0
        # A chunk's text: its segments' (`search.chunks.Chunk.text`).
        texts = [
            " ".join(s["text"] for s in segs[c["seg_start"] - first : c["seg_end"] - first]) for c in chunks
        ]
        data = NoteData(
            rel=rel,
            title=n["title"],
            channel=n["channel"],
            channel_key=n["channel_key"],
            video_id=n["video_id"],
            sha256=n["sha256"],
            dropped=json.loads(n["dropped"]),
            chunks=[
                (
                    c["heading"],
                    text,
                    c["line"],
                    c["seg_end"] - c["seg_start"],
                    c["key"],
                    chunking.stored_embed_text(n["title"], tuple(json.loads(c["heading"])), text),
                )
                for c, text in zip(chunks, texts, strict=True)
            ],
            segments=[(s["text"], s["times"], s["link_time"], s["line"]) for s in segs],
        )
        data.clear_vectors()
        for c, row in enumerate(chunks):
            self._fill_one(data, c, row)
        return data

    def reuse_chunks(self, notes: list[NoteData]) -> None:
        """Give chunks whose key (text and segments) is in the live index that index's vectors."""
        for data in notes:
            keys = [c[4] for c in data.chunks]
            found = {
                r["key"]: r
                for r in self.db.execute(
                    "SELECT * FROM chunks WHERE key IN (SELECT value FROM json_each(?))", (json.dumps(keys),)
                )
            }
            data.clear_vectors()
            for c, key in enumerate(keys):
                if key in found:
                    self._fill_one(data, c, found[key])

    def _fill_one(self, data: NoteData, c: int, chunk: sqlite3.Row) -> None:
        """Chunk c of a note gets the vectors of the live index's chunk row ``chunk`` (same text)."""
        import numpy as np

        data.chunk_vectors[c] = self.chunks.reconstruct(chunk["id"])
        data.segment_vectors[c] = self.segments.reconstruct_n(
            chunk["seg_start"], chunk["seg_end"] - chunk["seg_start"]
        )
        assert self.spill is not None
        codes = self.words[chunk["word_start"] : chunk["word_end"]]
        if self.codebook.digest == self.spill.codebook.digest:
            data.word_rows[c] = self.spill.add_codes(codes)
        else:  # the model's codebook was learnt again (its cache was cleared): coded anew, from the decoded words
            data.word_rows[c] = self.spill.add(self.codebook.decode(codes))
        data.word_owners[c] = np.array(self.owners[chunk["word_start"] : chunk["word_end"]])


def _model_name(fingerprint: Any) -> str:
    """How a message names a model: its package (the bundled one), else its name."""
    if not isinstance(fingerprint, dict):
        return "another model"
    return str(fingerprint.get("package") or fingerprint.get("name") or "another model")


def open_previous(index_dir: Path, wanted: dict[str, Any]) -> tuple[Previous | None, str | None]:
    """The live index if a build may reuse it, else None and (when there is an index) why everything is rebuilt."""
    try:
        generation = store.current_generation(index_dir)
        manifest = store.read_manifest(generation)
    except IndexMissingError:
        return None, None
    except IndexUnusableError as exc:
        return None, f"the existing index cannot be reused ({exc}); building everything"
    if manifest.get("model") != wanted["model"]:
        old, new = _model_name(manifest.get("model")), _model_name(wanted["model"])
        if old == new:  # the same name: its weights, prompts or settings changed
            old, new = f"{old} as built", f"{new} now"
        return None, f"the model changed ({old} -> {new}): rebuilding everything"
    if manifest.get("chunking") != wanted["chunking"]:
        return None, f"the chunk settings changed ({manifest.get('chunking')}): rebuilding everything"
    try:
        return Previous(generation, manifest), None
    except (IndexUnusableError, sqlite3.DatabaseError) as exc:
        return None, f"the existing index cannot be reused ({exc}); building everything"
