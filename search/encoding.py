"""Encoding a build's chunks in background threads, while the build is still reading notes.

A build hands each note to the pool as soon as it has read it (``submit``); the pool loads the model on the first
note that needs it (in its threads: loading overlaps with reading) and encodes with
one single-threaded onnxruntime session per core, each in its own thread (onnxruntime releases the GIL while it
computes). ``finish`` waits for the rest and reports progress. A chunk's vectors depend on its own text only
(documents are encoded one at a time), so they are the same whichever thread made them, in whatever order.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable

from search import embed, model_folder, words
from search.model_folder import Model
from search.previous import NoteData

#: Encoding threads at most (one per core up to this).
MAX_WORKERS = 4
#: Chunks a thread takes at a time: small, so that the threads finish together.
UNIT = 8

#: Called as progress(stage, done, total).
Progress = Callable[[str, int, int], None]


class EncodingPool:
    """Threads that give chunks their vectors (chunk, segments, words) as notes are submitted."""

    def __init__(
        self, spill: words.Spill, encoder: embed.Encoder | None = None, model: Model | None = None
    ) -> None:
        """``encoder``: encode with this one (in one thread) instead of loading ``model`` (default: the bundled
        one) from the model cache."""
        self.spill = spill
        self.model = model
        self.given = encoder
        # One thread for a given encoder, and for sentence-transformers (torch spreads one batch over the cores).
        one = encoder is not None or embed.encoder_choice(model or model_folder.bundled()).kind != embed.ONNX
        self.workers = 1 if one else max(1, min(os.cpu_count() or 1, MAX_WORKERS))
        self.total = 0
        self.done = 0
        self._queue: queue.SimpleQueue[tuple[NoteData, list[int]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._stop = threading.Event()
        self._first_start: float | None = None
        self._last_end = 0.0

    @property
    def seconds(self) -> float:
        """Wall time from the first chunk encoded to the last (not loading the model)."""
        return 0.0 if self._first_start is None else self._last_end - self._first_start

    def submit(self, note: NoteData) -> None:
        """Queue the note's chunks that have no vectors yet; the first call starts the threads."""
        todo = [c for c, vec in enumerate(note.chunk_vectors) if vec is None]
        if not todo:
            return
        if not self._threads:
            self._start()
        self.total += len(todo)
        for start in range(0, len(todo), UNIT):
            self._queue.put((note, todo[start : start + UNIT]))

    def finish(self, progress: Progress) -> None:
        """Wait until every submitted chunk is encoded, reporting progress; raise the first error a thread met."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            while thread.is_alive():
                progress("embed", self.done, self.total)
                thread.join(0.1)
        self._threads = []
        if self._errors:
            raise self._errors[0]
        if self.total:
            progress("embed", self.done, self.total)

    def close(self) -> None:
        """Stop the threads (after an error in the build): each ends after the chunks it is encoding."""
        self._stop.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(0.2)  # each is done in the milliseconds its chunk takes

    def _start(self) -> None:
        import numpy  # noqa: F401  (imported here, not by two threads at once)

        for part in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"ytnotes-encode-{part}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _encoder(self) -> embed.Encoder:
        if self.given is not None:
            return self.given
        return embed.load_document_encoder(threads=1, model=self.model)  # the build has checked the export

    def _work(self) -> None:
        try:
            encoder = self._encoder()
            while not self._stop.is_set():
                item = self._queue.get()
                if item is None:
                    break
                note, chunk_ids = item
                started = time.monotonic()
                with self._lock:
                    if self._first_start is None:
                        self._first_start = started
                done = embed.encode_chunks(
                    encoder, [note.chunks[c][5] for c in chunk_ids], [note.spans[c] for c in chunk_ids]
                )
                for j, c in enumerate(chunk_ids):
                    note.chunk_vectors[c] = done.chunks[j]
                    note.segment_vectors[c] = done.segments[j]
                    note.word_rows[c] = self.spill.add(done.words[j])
                    note.word_owners[c] = done.owners[j]
                with self._lock:
                    self.done += len(chunk_ids)
                    self._last_end = max(self._last_end, time.monotonic())
        except BaseException as exc:  # given to the build by finish()
            self._errors.append(exc)
            self._stop.set()
