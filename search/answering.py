"""Answering the server's questions: in the server's own process, or in a pool of worker processes.

Each answer is the JSON document the API returns, made where the index is open (`respond`). The server process
parses HTTP; the questions go to `InProcess` (threads, one question at a time by default) or to `WorkerPool` (one
process per core, each with the index loaded). About half of a question's time is Python, and Python runs one
thread of a process at a time: only processes answer on every core. The pool hands each question to the next free
process, so a client whose connection happens to land on a busy process does not wait longer than the others.

A build writes a new generation and points CURRENT at it. Each question reads CURRENT (one small file) and, when
it names another generation, the first such question opens it (under a lock, so only once per process) and swaps
it in; a question that started on the old index keeps its reference and finishes on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search import store
from search.children import end_with_parent
from search.errors import YtnotesError

if TYPE_CHECKING:
    from search.retrieve import Index

log = logging.getLogger("ytnotes.serve")


class IndexHolder:
    """The live index of a folder, swapped for the new generation when a build replaces CURRENT.

    `get()` costs one read of CURRENT. The Index it returns stays usable after a swap (its SQLite file is open
    and its vectors are in memory, even once a later build deletes its folder), so a request uses the one it got
    from start to end. A generation that fails to open is logged once and the old index keeps answering."""

    def __init__(self, index_dir: Path) -> None:
        from search.retrieve import open_index

        self.dir = index_dir
        self._lock = threading.Lock()
        self._index: Index = open_index(index_dir)
        # The first run of an ONNX session is slow: not a user's question.
        self._index.encoder.encode(["warm up"])
        self._name = self._index.generation.name
        #: The generation that could not be opened and why (not retried until CURRENT names another).
        self.failed: tuple[str, str] | None = None

    def get(self) -> Index:
        """The index to answer from: the one CURRENT names, once it has been opened."""
        name = self._current_name()
        if name is None:
            return self._index
        if self.failed is not None:
            if self.failed[0] == name:
                return self._index
            self.failed = None  # CURRENT is readable again, or names another generation
        if name == self._name:
            return self._index
        # One request opens the new generation; the others meanwhile answer from the old one rather than wait.
        if self._lock.acquire(blocking=False):
            try:
                if name != self._name:  # another request may have swapped it in just before
                    self._swap(name)
            finally:
                self._lock.release()
        return self._index

    @property
    def generation(self) -> str:
        return self._name

    def close(self) -> None:
        self._index.close()

    def _current_name(self) -> str | None:
        try:
            return (self.dir / store.CURRENT).read_text(encoding="utf-8").strip()
        except OSError as exc:
            if self.failed is None or self.failed[0] != "":
                log.warning(
                    "cannot read %s (%s); answering from %s", self.dir / store.CURRENT, exc, self._name
                )
                self.failed = ("", str(exc))
            return None

    def _swap(self, name: str) -> None:
        from search.retrieve import open_index

        old = self._index
        try:
            manifest = store.read_manifest(store.current_generation(self.dir))
            same_encoder = _encoder_path(manifest) == _encoder_path(old.manifest)
            # The model stays loaded across generations built with the same one.
            new = open_index(self.dir, old.encoder if same_encoder else None)
            if not same_encoder:
                new.encoder.encode(["warm up"])
        except Exception as exc:  # whatever it is, the index in use keeps answering
            log.warning("cannot open the new index %s (%s); still answering from %s", name, exc, self._name)
            self.failed = (name, str(exc))
            return
        # Each step reads CURRENT again: a build that finished meanwhile is the one opened, which is right.
        self._index = new
        self._name = new.generation.name
        self.failed = None
        log.info("now answering from %s (%s notes)", self._name, new.manifest["counts"]["notes"])


def _encoder_path(manifest: dict[str, Any]) -> object:
    """What identifies the question encoder of an index: the export's path, or (an index encoded with
    sentence-transformers, which has none) its model."""
    encoder = manifest.get("encoder") or {}
    return encoder.get("path") or (encoder.get("kind"), json.dumps(manifest.get("model"), sort_keys=True))


def respond(holder: IndexHolder, kind: str, params: dict[str, Any]) -> bytes:
    """The JSON document of one request: ``kind`` "ask", "locate", "info" or "health"; ``params`` its checked
    query parameters. A question the index cannot answer raises YtnotesError (the API's 422)."""
    from search.present import ask_json, locate_json
    from search.retrieve import LOCATE_THRESHOLD

    body: dict[str, Any]
    if kind == "ask":
        q, k, channel, video = params["q"], params["k"], params["channel"], params["video"]
        body = ask_json(q, k, channel, video, holder.get().answer(q, k=k, channel=channel, video=video))
    elif kind == "locate":
        body = locate_json(params["q"], holder.get().locate(params["q"]), LOCATE_THRESHOLD)
    elif kind == "info":
        body = holder.get().info()
    elif kind == "health":
        holder.get()
        body = {"status": "ok", "generation": holder.generation}
        if holder.failed is not None:
            body["warning"] = f"cannot use {holder.failed[0] or store.CURRENT}: {holder.failed[1]}"
    else:
        raise ValueError(f"unknown request {kind!r}")
    # As Starlette's JSONResponse renders it.
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


#: Requests that answer a question (the others are quick, and never wait their turn behind one).
QUESTIONS = ("ask", "locate")


class InProcess:
    """Answers in the server's process, in threads: ``at_once`` questions at a time, the others waiting."""

    def __init__(self, index_dir: Path, at_once: int = 1) -> None:
        one_thread_per_question()
        self.holder = IndexHolder(index_dir)
        self._turns = threading.BoundedSemaphore(at_once)

    async def __call__(self, kind: str, params: dict[str, Any]) -> bytes:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self._respond, kind, params)

    def _respond(self, kind: str, params: dict[str, Any]) -> bytes:
        if kind not in QUESTIONS:
            return respond(self.holder, kind, params)
        with self._turns:
            return respond(self.holder, kind, params)

    def close(self) -> None:
        self.holder.close()


class WorkerPool:
    """Answers in ``workers`` processes, each with the index loaded; a question goes to the next free one.

    The processes are started afresh (multiprocessing's "spawn"), never forked. They ignore Ctrl-C (it reaches
    the whole process group; the server stops them) and end with the server, even one killed with SIGKILL. When
    one dies, the questions it held fail over once to a new pool. Creating the pool waits until its processes
    have opened the index, so a missing or damaged one is a YtnotesError here."""

    def __init__(self, index_dir: Path, workers: int) -> None:
        self.dir = index_dir
        self.workers = workers
        self._lock = threading.Lock()
        store.read_manifest(store.current_generation(index_dir))  # the usual mistakes said before any process
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        import multiprocessing

        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(str(self.dir), os.getpid()),
        )
        try:
            # A process opens the index before it takes a task: waiting for these shows a failure now, once.
            for ready in [pool.submit(_ready) for _ in range(self.workers)]:
                ready.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        return pool

    async def __call__(self, kind: str, params: dict[str, Any]) -> bytes:
        loop = asyncio.get_running_loop()
        pool = self._pool
        try:
            return await loop.run_in_executor(pool, _work, kind, params)
        except BrokenProcessPool:
            await loop.run_in_executor(None, self._replace, pool)
            return await loop.run_in_executor(self._pool, _work, kind, params)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:  # not replaced by another request meanwhile
                log.warning("an answering process ended; starting %d new ones", self.workers)
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = self._start()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


#: In a worker process: its index, or why it could not be opened.
_holder: IndexHolder | None = None
_failure: YtnotesError | None = None


def _start_worker(index_dir: str, parent: int) -> None:
    global _holder, _failure
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    end_with_parent(parent)
    log_to_stderr()
    one_thread_per_question()
    try:
        _holder = IndexHolder(Path(index_dir))
    except YtnotesError as exc:
        _failure = exc


def _ready() -> int:
    if _failure is not None:
        raise _failure
    return os.getpid()


def _work(kind: str, params: dict[str, Any]) -> bytes:
    if _failure is not None:
        raise _failure
    assert _holder is not None
    return respond(_holder, kind, params)


def one_thread_per_question() -> None:
    """Each question is answered on one core (a worker process per core, or as many threads as cores): the
    threads FAISS (OpenMP) and numpy (OpenBLAS) would start for one question only contend with the other
    questions, and OpenBLAS's wait for more work spins. Measured on the shared corpus with OpenBLAS's threads: an
    answer cost 27 ms of CPU for 13.5 ms of wall time."""
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(1)
    threadpool_limits(1, user_api="blas")


def log_to_stderr() -> None:
    """The server's log lines (a swapped index, a failed one) on stderr, with the time."""
    if log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
