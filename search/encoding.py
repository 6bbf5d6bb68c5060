"""Encoding a build's chunks in background threads, while the build is still reading notes.

A build hands each note to the pool as soon as it has read it (``submit``); the pool loads the model on the first
note that needs it (in its threads: loading overlaps with reading) and encodes with
one single-threaded onnxruntime session per core, each in its own thread (onnxruntime releases the GIL while it
computes). A chunk's vectors go straight to the new generation's files (`search.writer.Writer.put`); a note
whose chunks all have theirs is handed back (``completed``) for its rows to be written, and then forgotten. The
build waits (``throttle``) while more than a few thousand chunks are queued, so that the notes read ahead of the
encoder stay few: reading is much faster than encoding. ``finish`` waits for the rest and reports progress. A
chunk's vectors depend on its own text only (documents are encoded one at a time), so they are the same whichever
thread made them, in whatever order.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable

from search import embed, model_folder
from search.model_folder import Model
from search.previous import NoteData
from search.writer import Writer

#: Encoding threads at most (one per core up to this).
MAX_WORKERS = 4
#: Chunks a thread takes at a time: small, so that the threads finish together.
UNIT = 8

#: Chunks queued at most before the build waits for the encoder (each holds its note's text: a few KB).
QUEUED = 2048

#: Called as progress(stage, done, total).
Progress = Callable[[str, int, int], None]
#: Called with each note whose chunks all have their vectors.
Done = Callable[[NoteData], None]


class EncodingPool:
    """Threads that give chunks their vectors (chunk, segments, words) as notes are submitted."""

    def __init__(
        self, writer: Writer, encoder: embed.Encoder | None = None, model: Model | None = None
    ) -> None:
        """``encoder``: encode with this one (in one thread) instead of loading ``model`` (default: the bundled
        one) from the model cache."""
        self.writer = writer
        self.model = model
        self.given = encoder
        # One thread for a given encoder, and for sentence-transformers (torch spreads one batch over the cores).
        one = encoder is not None or embed.encoder_choice(model or model_folder.bundled()).kind != embed.ONNX
        self.workers = 1 if one else max(1, min(os.cpu_count() or 1, MAX_WORKERS))
        self.total = 0
        self.done = 0
        self._queue: queue.SimpleQueue[tuple[NoteData, list[int]] | None] = queue.SimpleQueue()
        self._completed: queue.SimpleQueue[NoteData] = queue.SimpleQueue()
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

    def submit(self, note: NoteData) -> bool:
        """Queue the chunks of a numbered note that have no vectors yet; the first call starts the threads. False
        when every chunk has its vectors already (the note is not queued)."""
        todo = [c for c, where in enumerate(note.word_rows) if where is None]
        if not todo:
            return False
        if not self._threads:
            self._start()
        self.total += len(todo)
        note.pending = len(todo)
        for start in range(0, len(todo), UNIT):
            self._queue.put((note, todo[start : start + UNIT]))
        return True

    def throttle(self, progress: Progress, done: Done, limit: int | None = None) -> None:
        """Hand each note encoded since the last call to ``done``; wait (reporting progress) while more than
        ``limit`` (default QUEUED) chunks are still queued. Raise the first error a thread met."""
        limit = QUEUED if limit is None else limit
        while True:
            self._hand_over(done)
            if self._errors:
                raise self._errors[0]
            if self.total - self.done <= limit or not any(t.is_alive() for t in self._threads):
                return
            progress("embed", self.done, self.total)
            with contextlib.suppress(queue.Empty):
                done(self._completed.get(timeout=0.1))

    def finish(self, progress: Progress, done: Done) -> None:
        """Wait until every submitted chunk is encoded, handing each note to ``done`` and reporting progress;
        raise the first error a thread met."""
        self.throttle(progress, done, limit=0)
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        if self._errors:
            raise self._errors[0]
        self._hand_over(done)
        if self.total:
            progress("embed", self.done, self.total)

    def _hand_over(self, done: Done) -> None:
        while True:
            try:
                note = self._completed.get_nowait()
            except queue.Empty:
                return
            done(note)

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
                    codes = self.writer.codebook.encode(done.words[j])  # int8 rows to the model's codes
                    self.writer.put(note, c, done.chunks[j], done.segments[j], codes, done.owners[j])
                with self._lock:
                    self.done += len(chunk_ids)
                    self._last_end = max(self._last_end, time.monotonic())
                    note.pending -= len(chunk_ids)
                    complete = note.pending == 0
                if complete:
                    self._completed.put(note)
        except BaseException as exc:  # given to the build by finish()
            self._errors.append(exc)
            self._stop.set()
