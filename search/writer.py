"""A new generation written while a build reads and encodes notes, so that a build's memory stays bounded.

Before, a build kept every note's rows and vectors in memory until it wrote the index (about 43 KB a chunk: 9 GB
at 220k chunks). Now each note is numbered as it is read (its notes, chunks and segments rows get their ids, which
are their vectors' rows); each chunk's vectors go to files as soon as they are encoded (or copied from the live
index), at their rows, from any encoding thread; and a note's rows go into the new SQLite database once all its
chunks have vectors, after which nothing of it stays in memory. The FAISS files are made at the end from the
vector files, read a batch at a time.

Everything is written in a ``.tmp-*`` folder beside the live generation: an interrupted build leaves the old index
as it was (the next build removes the folder), and `publish` makes the new one live atomically (see `search.store`).

Word vectors are appended as codes (`search.words.Codebook`, the model's) in the order they are encoded, not in
chunk order: a chunk's rows ``word_start`` .. ``word_end`` say where its words are, and ``words.npy`` is the
appended file itself, given its .npy header at the
end (the room for it is kept at the file's head), so the largest part of an index is written once and never copied.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search import lexicon, parts, store, word_codebook

if TYPE_CHECKING:
    import numpy as np

    from search.previous import NoteData
    from search.words import Codebook

#: Bytes kept at the head of a .npy file written row by row, for its header (the header of any 2-D shape fits).
NPY_HEADER = 128
#: Rows read at a time when the FAISS files are made: 16k segment vectors are 24 MB.
BATCH = 16_384
#: Notes written to SQLite between commits.
COMMIT_EVERY = 500


class RowFile:
    """Rows of one dtype and width (``width`` None: one value a row) in a file, written at a given row or appended,
    from any thread (positional writes need no lock); read back a batch at a time, never mapped whole (pages of a
    mapped file count in a build's resident memory)."""

    def __init__(
        self, path: Path, dtype: Any, width: int | None, header: int = 0, existing: int | None = None
    ) -> None:
        """A new, empty file; ``existing``: read the file there, of that many rows after ``header`` bytes."""
        import numpy as np

        self.path = path
        self.dtype = np.dtype(dtype)
        self.width = width
        self.header = header
        self.row_bytes = self.dtype.itemsize * (width or 1)
        self.rows = existing or 0
        self._lock = threading.Lock()  # the row count
        # Writes and close: an encoding thread still writing after the build failed must not write to a file
        # descriptor closed, and perhaps reused by another file since.
        self._io = threading.Lock()
        if existing is None:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        else:
            self._fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.rows

    def put(self, row: int, values: np.ndarray) -> None:
        """Write rows starting at ``row`` (the file grows as needed)."""
        import numpy as np

        data = np.ascontiguousarray(values, dtype=self.dtype).tobytes()
        if len(data) % self.row_bytes:
            raise ValueError(f"rows of {self.row_bytes} bytes expected in {self.path}, got {len(data)} bytes")
        self._pwrite(data, self.header + row * self.row_bytes)
        with self._lock:
            self.rows = max(self.rows, row + len(data) // self.row_bytes)

    def append(self, values: np.ndarray) -> int:
        """Write rows after the last ones; gives the first row's number."""
        count = len(values)
        with self._lock:
            start = self.rows
            self.rows += count
        self.put(start, values)
        return start

    def grow(self, rows: int) -> None:
        """Make the file ``rows`` rows long at least (the new rows read as zeros)."""
        with self._lock:
            if rows > self.rows:
                os.ftruncate(self._fd, self.header + rows * self.row_bytes)
                self.rows = rows

    def __getitem__(self, rows: Any) -> np.ndarray:
        """Rows ``a:b`` (a slice) or the rows of an ascending array of row numbers, as a new array."""
        import numpy as np

        if isinstance(rows, slice):
            start, stop, step = rows.indices(self.rows)
            assert step == 1
            return self._read(start, max(0, stop - start))
        picked = [self._read(int(r), 1) for r in np.asarray(rows)]
        shape = (0, self.width) if self.width else (0,)
        return np.concatenate(picked) if picked else np.zeros(shape, dtype=self.dtype)

    def _read(self, start: int, count: int) -> np.ndarray:
        import numpy as np

        size = count * self.row_bytes
        data = bytearray()
        while len(data) < size:
            part = os.pread(self._fd, size - len(data), self.header + start * self.row_bytes + len(data))
            if not part:
                raise OSError(f"{self.path} ends before row {start + count}")
            data += part
        array = np.frombuffer(bytes(data), dtype=self.dtype)
        return array.reshape(-1, self.width) if self.width else array

    def _pwrite(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        with self._io:
            if self._fd < 0:
                raise OSError(f"{self.path} is closed")
            while view:  # a short write is followed by the error saying why (ENOSPC, EFBIG)
                done = os.pwrite(self._fd, view, offset)
                view, offset = view[done:], offset + done

    def finish_npy(self) -> None:
        """Write the .npy header in the room kept for it: the file is then an .npy of every row."""
        import numpy as np

        assert self.header == NPY_HEADER
        shape = (self.rows, self.width) if self.width else (self.rows,)
        text = repr(
            {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        )
        room = NPY_HEADER - 10  # magic (6), version (2), header length (2)
        if len(text) + 1 > room:
            raise ValueError(f"the .npy header of {self.path} does not fit in {NPY_HEADER} bytes")
        head = (
            b"\x93NUMPY\x01\x00" + room.to_bytes(2, "little") + (text.ljust(room - 1) + "\n").encode("latin1")
        )
        self._pwrite(head, 0)
        if self.rows == 0:
            os.ftruncate(self._fd, NPY_HEADER)

    def close(self) -> None:
        with self._io:
            if self._fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = -1


class Writer:
    """One generation being written: number each note as it is read (`number`), give each chunk its vectors
    (`put`, from any thread), write a note's rows once its chunks all have vectors (`add_rows`, in the build's
    thread), then `publish`. `discard` removes everything after an error."""

    def __init__(
        self,
        index_dir: Path,
        dimension: int,
        codebook: Codebook,
        previous: tuple[Any, Any] | None = None,
        carried: lexicon.Carried | None = None,
        extension: parts.Extension | None = None,
    ) -> None:
        """``codebook``: the model's, which codes the word vectors (`put` and `put_words` take codes made with it).
        ``previous``: the live generation's chunk and segment vectors (`search.parts.Vectors`), when vectors are
        copied from there (an IVF's lists are then kept, see `search.store.vector_index`). ``carried``: its BM25
        postings, which the notes it copies whole (`NoteData.postings_from`) keep. ``extension``: write a
        generation that extends the live one with a tail (`search.parts`): the notes not killed stay as they are,
        and only the notes numbered here are written."""
        import numpy as np

        self.index_dir = index_dir
        self.dimension = dimension
        self.codebook = codebook
        self.dir = index_dir / f".tmp-{secrets.token_hex(6)}"
        self.dir.mkdir(parents=True)
        self.extension = extension
        start = extension.totals if extension is not None else None
        self.notes = start.notes if start else 0
        self.chunks = start.chunks if start else 0
        self.segments = start.segments if start else 0
        self.numbered = self._written = 0
        # The first row each file holds (a tail's files hold the rows after its base's).
        first = extension.first if extension is not None else None
        self._first_chunk = first.chunks if first else 0
        self._first_segment = first.segments if first else 0
        self._first_word = first.words if first else 0
        self.previous = previous
        self.carried = carried
        self._files: list[RowFile] = []
        try:  # a full disk may fail any of these: nothing is left behind
            name = parts.tail_file if extension is not None else (lambda n: n)
            header = NPY_HEADER if extension is not None else 0
            self.chunk_vectors = self._file(name("chunks.npy"), np.float32, dimension, header)
            self.segment_vectors = self._file(name("segments.npy"), np.float32, dimension, header)
            self.words = self._file(name(store.WORDS), np.uint8, codebook.parts, NPY_HEADER)
            self.owners = self._file(name(store.WORD_OWNERS), np.int16, None, NPY_HEADER)
            # For each chunk and segment row, 1 + its row in the live generation when its vector was copied from
            # there (0, as a file's unwritten bytes read: encoded anew).
            self.chunk_origins = self._file(".chunks.origin", np.int64, None)
            self.segment_origins = self._file(".segments.origin", np.int64, None)
            if extension is None:
                self.db = sqlite3.connect(self.dir / store.META)
                # A file no reader sees until it is complete, fsynced and renamed: no journal, no syncs while
                # writing.
                self.db.executescript(
                    "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;\n" + store.SCHEMA + store.FTS_SCHEMA
                )
            else:
                self._start_tail(extension)
        except BaseException:
            self.discard()
            raise

    def _start_tail(self, extension: parts.Extension) -> None:
        """Begin a generation that extends the live one: its metadata copied without the killed notes' rows, its
        tail's vectors and words so far copied, and those rows' texts given to FTS5 (the tail's postings are
        made anew: the tail is small)."""
        import shutil

        from search import chunks as chunking

        shutil.copyfile(extension.live / store.META, self.dir / store.META)
        self.db = sqlite3.connect(self.dir / store.META)
        self.db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;\n" + store.FTS_SCHEMA)
        killed = json.dumps(extension.killed_notes)
        for table in ("segments", "chunks", "notes"):
            column = "id" if table == "notes" else "note_id"
            self.db.execute(
                f"DELETE FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))", (killed,)
            )
        old = parts.Tail.of(extension.live_manifest)
        if old is not None:
            for file, name in (
                (self.chunk_vectors, "chunks.npy"),
                (self.segment_vectors, "segments.npy"),
                (self.words, store.WORDS),
                (self.owners, store.WORD_OWNERS),
            ):
                rows = parts.load(extension.live / parts.tail_file(name), file.dtype, file.width)
                for at in range(0, len(rows), BATCH):
                    file.put(at, rows[at : at + BATCH])
                file.grow(len(rows))
        self.db.executemany(
            "INSERT INTO segments_fts(rowid, body) VALUES (?,?)",
            self.db.execute("SELECT id, text FROM segments WHERE id >= ?", (self._first_segment,)).fetchall(),
        )
        self.db.executemany(
            "INSERT INTO chunks_fts(rowid, body) VALUES (?,?)",
            ((p.id, p.text) for p in chunking.stored_passages(self.db, first=self._first_chunk)),
        )

    def _file(self, name: str, dtype: Any, width: int | None, header: int = 0) -> RowFile:
        self._files.append(RowFile(self.dir / name, dtype, width, header))
        return self._files[-1]

    def number(self, data: NoteData) -> None:
        """Give a note, and its chunks and segments, the next ids (the rows of their vectors)."""
        data.note_id = self.notes
        data.chunk_start = self.chunks
        data.segment_start = self.segments
        data.chunk_segments = []
        first = self.segments
        for chunk in data.chunks:
            data.chunk_segments.append(first)
            first += chunk[3]
        self.notes += 1
        self.numbered += 1
        self.chunks += len(data.chunks)
        self.segments = first

    def put(
        self,
        data: NoteData,
        c: int,
        chunk: np.ndarray,
        segments: np.ndarray,
        word_codes: np.ndarray,
        owners: np.ndarray,
        origin: tuple[int, int] | None = None,
    ) -> None:
        """Chunk c of a numbered note gets its vectors: its own, its segments' and its words' (codes of
        `self.codebook`, with whose each word is, see `search.words`). ``origin``: the rows of the chunk and of its first segment in the live generation,
        when the vectors are copied from there. Safe from any thread."""
        import numpy as np

        if len(segments) != data.chunks[c][3] or len(word_codes) != len(owners):
            raise ValueError(f"vectors of chunk {c} of {data.rel} do not match its rows")
        chunk_row, segment_row = (
            data.chunk_start + c - self._first_chunk,
            data.chunk_segments[c] - self._first_segment,
        )
        self.chunk_vectors.put(chunk_row, chunk.reshape(1, -1))
        self.segment_vectors.put(segment_row, segments)
        if origin is not None:
            self.chunk_origins.put(chunk_row, np.array([origin[0] + 1]))
            self.segment_origins.put(segment_row, np.arange(len(segments)) + origin[1] + 1)
        self.put_words(data, c, word_codes, owners)

    def put_segments_of_note(
        self, data: NoteData, chunks: np.ndarray, segments: np.ndarray, origin: tuple[int, int]
    ) -> None:
        """All the chunk and segment vectors of a numbered note at once (a note reused whole), from the rows
        ``origin`` on (its first chunk's and segment's) of the live generation."""
        import numpy as np

        chunk_row, segment_row = (
            data.chunk_start - self._first_chunk,
            data.segment_start - self._first_segment,
        )
        self.chunk_vectors.put(chunk_row, chunks)
        self.segment_vectors.put(segment_row, segments)
        self.chunk_origins.put(chunk_row, np.arange(len(chunks)) + origin[0] + 1)
        self.segment_origins.put(segment_row, np.arange(len(segments)) + origin[1] + 1)

    def put_words(self, data: NoteData, c: int, word_codes: np.ndarray, owners: np.ndarray) -> None:
        """Chunk c's word vectors only, as codes of `self.codebook` (its other vectors given by
        `put_segments_of_note`, or by `put`)."""
        start = self.words.append(word_codes)
        self.owners.put(start, owners)
        data.word_rows[c] = (start + self._first_word, len(word_codes))

    def add_rows(self, data: NoteData) -> None:
        """Write a numbered note's rows, its chunks' vectors all given; the note is then no longer needed."""
        note_id, seg = data.note_id, data.segment_start
        self.db.execute(
            "INSERT INTO notes VALUES (?,?,?,?,?,?,?,?)",
            (
                note_id,
                data.rel,
                data.title,
                data.channel,
                data.channel_key,
                data.video_id,
                data.sha256,
                json.dumps(data.dropped),
            ),
        )
        chunk_rows, chunk_texts, seg_rows = [], [], []
        segments = iter(data.segments)
        for c, (heading, _, line, n_segs, key, embed_text) in enumerate(data.chunks):
            where = data.word_rows[c]
            assert where is not None, f"chunk {c} of {data.rel} has no vectors"
            chunk_id = data.chunk_start + c
            seg_start = seg
            for _ in range(n_segs):
                s_text, times, link_time, s_line = next(segments)
                seg_rows.append((seg, note_id, chunk_id, s_text, times, link_time, s_line))
                seg += 1
            chunk_rows.append(
                (chunk_id, note_id, heading, line, seg_start, seg, key, where[0], where[0] + where[1])
            )
            chunk_texts.append((chunk_id, embed_text))
        self.db.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?)", chunk_rows)
        self.db.executemany("INSERT INTO segments VALUES (?,?,?,?,?,?,?)", seg_rows)
        if self.carried is not None and data.postings_from is not None:
            # Its postings are the live generation's, renumbered: FTS5 need not read its texts again.
            self.carried.ranges["chunks_fts"].append(
                (data.postings_from[0], data.chunk_start, len(chunk_rows))
            )
            self.carried.ranges["segments_fts"].append(
                (data.postings_from[1], data.segment_start, len(seg_rows))
            )
        else:
            self.db.executemany("INSERT INTO chunks_fts(rowid, body) VALUES (?,?)", chunk_texts)
            self.db.executemany(
                "INSERT INTO segments_fts(rowid, body) VALUES (?,?)", ((r[0], r[3]) for r in seg_rows)
            )
        self._written += 1
        if self._written % COMMIT_EVERY == 0:
            self.db.commit()

    def publish(self, manifest: dict[str, Any]) -> Path:
        """Make the FAISS files from the vectors written, complete the files, and make the generation live."""
        import faiss

        if self._written != self.numbered:
            raise RuntimeError(f"{self.numbered - self._written} notes numbered but never written")
        if self.extension is not None:
            return self._publish_tail(manifest, self.extension)
        self.db.commit()
        # The full-text indexes merged into one b-tree each (before their postings are read from them).
        for table in lexicon.TABLES:
            self.db.execute(f"INSERT INTO {table}({table}) VALUES ('optimize')")
        self.db.commit()
        postings = lexicon.write(
            self.db, self.dir, {"chunks_fts": self.chunks, "segments_fts": self.segments}, self.carried
        )
        # BM25 is computed from the postings: the full-text tables were there to tokenize and count (450 B a
        # passage); the file is vacuumed without them.
        for table in lexicon.TABLES:
            self.db.execute(f"DROP TABLE {table}")
        self.db.commit()
        self.db.execute("VACUUM")
        self.db.close()
        word_codebook.save(self.dir / word_codebook.FILE, self.codebook)
        manifest = {**manifest, "lexicon": postings, "vectors": {}, "word_codebook": self.codebook.digest}
        previous = (self.previous[0].base, self.previous[1].base) if self.previous else (None, None)
        for name, rows, count, origins, live in (
            (store.CHUNKS, self.chunk_vectors, self.chunks, self.chunk_origins, previous[0]),
            (store.SEGMENTS, self.segment_vectors, self.segments, self.segment_origins, previous[1]),
        ):
            if len(rows) != count:
                raise RuntimeError(f"{len(rows)} vectors written for {count} rows of {name}")
            origins.grow(count)  # rows encoded anew at the end were never written: they read as 0
            index, record = store.vector_index(rows, self.dimension, live, origins)
            faiss.write_index(index, str(self.dir / name))
            del index  # before the next one is made: one FAISS index in memory at a time
            manifest["vectors"][name] = record
            for part in (rows, origins):
                part.close()
                part.path.unlink()
        for part in (self.words, self.owners):
            part.finish_npy()
            part.close()
        manifest["counts"] = {**manifest.get("counts", {}), "words": self.words.rows}
        return store.publish(self.index_dir, self.dir, manifest)

    def _publish_tail(self, manifest: dict[str, Any], extension: parts.Extension) -> Path:
        """Complete a generation that extends the live one (`search.parts`) and make it live."""
        import numpy as np

        self.db.commit()
        for table in lexicon.TABLES:
            self.db.execute(f"INSERT INTO {table}({table}) VALUES ('optimize')")
        self.db.execute("DELETE FROM lexicon WHERE tab LIKE ?", (parts.TAIL_PREFIX + "%",))  # the live tail's
        first = {"chunks_fts": self._first_chunk, "segments_fts": self._first_segment}
        rows = {
            "chunks_fts": self.chunks - self._first_chunk,
            "segments_fts": self.segments - self._first_segment,
        }
        postings = lexicon.write(self.db, self.dir, rows, prefix=parts.TAIL_PREFIX, first_row=first)
        for table in lexicon.TABLES:
            self.db.execute(f"DROP TABLE {table}")
        self.db.commit()  # not vacuumed: the pages the killed rows freed are used again by the next tail
        self.db.close()
        for file, count in (
            (self.chunk_vectors, rows["chunks_fts"]),
            (self.segment_vectors, rows["segments_fts"]),
        ):
            file.grow(count)
            if len(file) != count:
                raise RuntimeError(f"{len(file)} vectors written for {count} rows of {file.path.name}")
        for file in (self.chunk_vectors, self.segment_vectors, self.words, self.owners):
            file.finish_npy()
            file.close()
        for file in (self.chunk_origins, self.segment_origins):
            file.close()
            file.path.unlink()
        for kind, dead in extension.dead.items():
            np.save(self.dir / parts.dead_file(kind), np.asarray(dead, dtype=np.int64), allow_pickle=False)
        parts.link_base(extension.live, self.dir)
        live = extension.live_manifest
        record: dict[str, Any] = {}
        for table, kind in lexicon.KINDS.items():
            base_lengths = parts.load(self.dir / f"{table}.lengths.npy", np.int32)
            dead = extension.dead[kind]
            dead = dead[dead < len(base_lengths)]
            tokens = int(base_lengths.sum()) - int(base_lengths[dead].sum()) + postings[table]["tokens"]
            record[table] = {
                "rows": manifest["counts"][kind],
                "tokens": tokens,
                "terms": live["lexicon"][table]["terms"],  # the base's
                "tail_terms": postings[table]["terms"],
            }
        first_rows = extension.first
        manifest = {
            **manifest,
            "format_version": store.TAIL_FORMAT_VERSION,
            "lexicon": record,
            "vectors": live["vectors"],
            "word_codebook": self.codebook.digest,
            "tail": {
                "chunks": first_rows.chunks,
                "segments": first_rows.segments,
                "words": first_rows.words,
                "notes": first_rows.notes,
            },
        }
        manifest["counts"] = {**manifest.get("counts", {}), "words": self._first_word + self.words.rows}
        return store.publish(self.index_dir, self.dir, manifest)

    def discard(self) -> None:
        """Remove the unfinished generation (after an error; the live index is untouched)."""
        import shutil

        db = getattr(self, "db", None)
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
        for part in self._files:
            part.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def batches(rows: Any, count: int) -> Iterator[np.ndarray]:
    """Rows 0..count of an array or a `RowFile`, a batch at a time, as contiguous float32 arrays."""
    import numpy as np

    for start in range(0, count, BATCH):
        yield np.ascontiguousarray(rows[start : start + BATCH], dtype=np.float32)
