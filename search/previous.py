"""What a rebuild can take from the live index: unchanged notes whole, and the vectors of unchanged chunks."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search import chunks as chunking
from search import lexicon, parts, store
from search.errors import IndexMissingError, IndexUnusableError

if TYPE_CHECKING:
    from search.writer import RowFile, Writer


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
    #: Where each chunk's word codes are in the new generation's words.npy (first row, count); None until the
    #: chunk has its vectors (see `search.writer.Writer.put`).
    word_rows: list[tuple[int, int] | None] = field(default_factory=list)
    #: How the note's clock was repaired, said once when the note is read (not for a note reused unchanged).
    clock_repair: str | None = None
    #: Ids in the new generation (`search.writer.Writer.number`): the note's, its first chunk's and segment's, and
    #: each chunk's first segment's.
    note_id: int = -1
    chunk_start: int = -1
    segment_start: int = -1
    chunk_segments: list[int] = field(default_factory=list)
    #: Chunks still being encoded (counted down by the encoding threads).
    pending: int = 0
    #: Its first chunk's and segment's rows in the live generation, when it is copied whole from there with its
    #: rows in order (its BM25 postings are then carried over, see `search.lexicon.Carried`).
    postings_from: tuple[int, int] | None = None

    def clear_vectors(self) -> None:
        """No vectors yet for any chunk."""
        self.word_rows = [None] * len(self.chunks)


class Previous:
    """The live generation, opened for reuse by a build that holds the lock."""

    def __init__(self, generation: Path, manifest: dict[str, Any]) -> None:
        self.generation = generation
        self.manifest = manifest
        self.db = store.open_meta(generation)
        self.tail = parts.Tail.of(manifest)
        self.chunks = parts.open_vectors(generation, manifest, "chunks")
        self.segments = parts.open_vectors(generation, manifest, "segments")
        # Checked as a reader checks them, then read by position (a rebuild reads every reused row once: mapped,
        # all of them would count in its resident memory).
        word_codes, owners, self.codebook = parts.open_words(generation, manifest)
        self._files: list[RowFile] = []
        self.words, self.owners = (
            self._by_position(generation, name, array)
            for name, array in ((store.WORDS, word_codes), (store.WORD_OWNERS, owners))
        )

    def _by_position(self, generation: Path, name: str, array: Any) -> Any:
        """A checked array (or a base and tail's `search.parts.Rows`) of the live generation, read by position."""
        from search.writer import RowFile

        if isinstance(array, parts.Rows):
            return parts.Rows(
                self._by_position(generation, name, array.base),
                self._by_position(generation, parts.tail_file(name), array.tail),
                array.first,
            )
        file = RowFile(
            generation / name,
            array.dtype,
            array.shape[1] if array.ndim == 2 else None,
            _offset(generation / name, array),
            len(array),
        )
        self._files.append(file)
        return file

    def carried(self) -> lexicon.Carried | None:
        """Its BM25 postings, for the notes copied whole; None when they cannot be read (damaged): every note is
        then given to FTS5 again, and the build makes them anew. Of a generation with a tail, only its base's
        postings are carried: the notes in its tail are given to FTS5 again (`copy_note`)."""
        try:
            found = lexicon.Lexicon.of(self.generation, self.db, self.manifest)
        except IndexUnusableError:
            return None
        terms: dict[str, list[str]] = {t: [] for t in lexicon.TABLES}
        for table, term in self.db.execute(
            "SELECT tab, term FROM lexicon WHERE tab IN (SELECT value FROM json_each(?)) ORDER BY tab, id",
            (json.dumps(lexicon.TABLES),),
        ):
            terms[table].append(term)
        return lexicon.Carried(found, terms)

    def extension(self, kept: set[str], added: int, codebook_digest: str) -> parts.Extension | None:
        """How a rebuild that keeps the notes ``kept`` as they are and reads ``added`` notes new to the index can
        extend this generation with a tail (`search.parts`); None when it should rewrite everything: the index is
        small, its word codebook is another, or the tail or the dead rows would grow past their share."""
        import numpy as np

        if self.codebook.digest != codebook_digest:
            return None
        (notes,) = self.db.execute("SELECT COALESCE(MAX(id), -1) + 1 FROM notes").fetchone()
        totals = parts.Tail(self.chunks.ntotal, self.segments.ntotal, len(self.words), int(notes))
        first = self.tail or totals
        if first.chunks < parts.EXTEND_FROM:
            return None
        killed = [
            int(r[0]) for r in self.db.execute("SELECT id, path FROM notes").fetchall() if r[1] not in kept
        ]
        dead: dict[str, np.ndarray] = {}
        for kind in parts.KINDS:
            gone = np.array(
                [
                    r[0]
                    for r in self.db.execute(
                        f"SELECT id FROM {kind} WHERE note_id IN (SELECT value FROM json_each(?))",
                        (json.dumps(killed),),
                    )
                ],
                dtype=np.int64,
            )
            dead[kind] = np.union1d(parts.dead_rows(self.generation, self.tail, kind), gone)
            live = self.manifest["counts"][kind]
            # The rows the tail will hold: its rows so far, those of the notes read again (about as many as they
            # had), and the new notes' (as many as a note has on average).
            tail = (
                totals.first(kind)
                - first.first(kind)
                + len(gone)
                + added * live / max(1, len(kept) + len(killed))
            )
            if max(tail, len(dead[kind])) > parts.TAIL_SHARE * first.first(kind):
                return None
        return parts.Extension(self.generation, self.manifest, first, totals, killed, dead)

    def kept_notes(self) -> dict[str, tuple[int, int, int, list[str]]]:
        """For each note (by path), as a generation that extends this one keeps it: its id, its chunk and segment
        counts, and the timestamps it had ignored."""
        counts = {
            kind: dict(self.db.execute(f"SELECT note_id, COUNT(*) FROM {kind} GROUP BY note_id").fetchall())
            for kind in parts.KINDS
        }
        return {
            r[1]: (r[0], counts["chunks"].get(r[0], 0), counts["segments"].get(r[0], 0), json.loads(r[2]))
            for r in self.db.execute("SELECT id, path, dropped FROM notes")
        }

    def close(self) -> None:
        self.db.close()
        for file in self._files:
            file.close()

    def dropped(self) -> dict[str, list[str]]:
        """The timestamps each note of the live index had ignored (by path)."""
        return {
            r["path"]: json.loads(r["dropped"]) for r in self.db.execute("SELECT path, dropped FROM notes")
        }

    def copy_note(self, rel: str, writer: Writer) -> NoteData:
        """An unchanged note, numbered in the new generation, with its vectors as they are in the live index;
        its rows are for the caller to write (`search.writer.Writer.add_rows`)."""
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
        writer.number(data)
        first, first_seg = chunks[0]["id"], chunks[0]["seg_start"]
        contiguous = all(
            c["id"] == first + i
            and c["seg_start"] == first_seg + (data.chunk_segments[i] - data.segment_start)
            for i, c in enumerate(chunks)
        )
        if contiguous:  # as every build writes them: a note's vectors in two reads
            if self.tail is None or first < self.tail.chunks:  # in the base, whose postings are carried
                data.postings_from = (first, first_seg)
            writer.put_segments_of_note(
                data,
                _rows(self.chunks, first, len(chunks)),
                _rows(self.segments, first_seg, len(segs)),
                (first, first_seg),
            )
            for c, row in enumerate(chunks):
                a, b = row["word_start"], row["word_end"]
                writer.put_words(data, c, self._codes(a, b, writer), self.owners[a:b])
        else:
            for c, row in enumerate(chunks):
                self._put_one(data, c, row, writer)
        return data

    def reuse_chunks(self, data: NoteData, writer: Writer) -> None:
        """Give the chunks of a numbered note whose key (text and segments) is in the live index that index's
        vectors."""
        keys = [c[4] for c in data.chunks]
        found = {
            r["key"]: r
            for r in self.db.execute(
                "SELECT * FROM chunks WHERE key IN (SELECT value FROM json_each(?))", (json.dumps(keys),)
            )
        }
        for c, key in enumerate(keys):
            if key in found:
                self._put_one(data, c, found[key], writer)

    def _put_one(self, data: NoteData, c: int, chunk: sqlite3.Row, writer: Writer) -> None:
        """Chunk c of a note gets the vectors of the live index's chunk row ``chunk`` (same text)."""
        a, b = chunk["word_start"], chunk["word_end"]
        writer.put(
            data,
            c,
            _rows(self.chunks, chunk["id"], 1)[0],
            _rows(self.segments, chunk["seg_start"], chunk["seg_end"] - chunk["seg_start"]),
            self._codes(a, b, writer),
            self.owners[a:b],
            (chunk["id"], chunk["seg_start"]),
        )

    def _codes(self, a: int, b: int, writer: Writer) -> Any:
        """Word rows ``a`` .. ``b`` of the live index, as codes of the new generation's codebook."""
        codes = self.words[a:b]
        if self.codebook.digest == writer.codebook.digest:
            return codes
        # The model's codebook was learnt again (its cache was cleared): coded anew, from the decoded words.
        return writer.codebook.encode(self.codebook.decode(codes))


def _offset(path: Path, array: Any) -> int:
    """Where an .npy file's rows start: after its header (they run to its end)."""
    return int(path.stat().st_size - array.nbytes)


def _rows(index: Any, first: int, count: int) -> Any:
    """Vectors ``first`` .. ``first + count`` of a FAISS index, read by id (an IVF's direct map). Not reconstruct_n:
    on an IVF it scans every list for the ids in range, so a rebuild copying every note took time quadratic in the
    notes (7.9 of the 27.9 s of a one-note rebuild of 30 times the shared corpus)."""
    import numpy as np

    return index.reconstruct_batch(np.arange(first, first + count, dtype=np.int64))


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
