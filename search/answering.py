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
import collections
import json
import logging
import os
import signal
import struct
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search import store
from search.children import end_with_parent
from search.errors import (
    BuildLockedError,
    IndexMissingError,
    IndexUnusableError,
    IndexWriteError,
    YtnotesError,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection

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
        idx = holder.get()
        results = idx.answer(q, k=k, channel=channel, video=video)
        body = ask_json(q, k, channel, video, results, idx.bundled_model)
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
    """Answers in ``workers`` processes, each with the index loaded; a question goes to a free one, the one freed
    last first (its caches are the warm ones: with one client, one process answers everything, 0.8 ms sooner
    than two taking turns), or waits its turn in order.

    Each process has a pipe each way; the server's event loop reads the replies as they come (no thread between
    them, where the standard library's process pool passed each question through two). The processes are started
    afresh (multiprocessing's "spawn"), never forked. They ignore Ctrl-C (it reaches the whole process group; the
    server stops them) and end with the server, even one killed with SIGKILL. A process that ends is replaced
    when the next question comes, and the question it held fails over once to another. Creating the pool waits
    until its processes have opened the index, so a missing or damaged one is a YtnotesError here."""

    def __init__(self, index_dir: Path, workers: int) -> None:
        self.dir = index_dir
        self.size = workers
        store.read_manifest(store.current_generation(index_dir))  # the usual mistakes said before any process
        self._workers: list[_Worker] = []
        try:
            for _ in range(workers):
                self._workers.append(_Worker.start(index_dir))
        except BaseException:
            self.close()
            raise
        self._free = list(self._workers)  # the one freed last at the end
        self._waiting: collections.deque[asyncio.Future[_Worker]] = collections.deque()
        self._starting = 0  # replacements being started

    async def __call__(self, kind: str, params: dict[str, Any]) -> bytes:
        try:
            return await self._ask(kind, params)
        except _WorkerEnded:
            return await self._ask(kind, params)

    async def _ask(self, kind: str, params: dict[str, Any]) -> bytes:
        worker = await self._take()
        # The worker comes back to the pool when its reply has been read, even the reply to a request given up
        # meanwhile: never while it is still answering.
        status, value = await worker.ask(kind, params, self._give_back)
        if status == "error":
            raise value
        document: bytes = value
        return document

    async def _take(self) -> _Worker:
        self._replace_ended()
        if self._free:
            return self._free.pop()
        waiter: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Given up (the client went away) after a worker was handed over but before this resumed: pass it on.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._give_back(waiter.result())
            raise

    def _give_back(self, worker: _Worker) -> None:
        if worker.ended:
            return
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():  # its request may have been cancelled (the client went away)
                waiter.set_result(worker)
                return
        self._free.append(worker)

    def _replace_ended(self) -> None:
        """Start a process for each one that ended, or that could not be started before (in a thread: opening
        the index takes seconds, during which the others answer)."""
        for worker in [w for w in self._workers if w.ended]:
            self._workers.remove(worker)
            if worker in self._free:
                self._free.remove(worker)
            worker.stop(at_once=True)
            log.warning("an answering process ended (pid %d); starting a new one", worker.process.pid)
        loop = asyncio.get_running_loop()
        for _ in range(self.size - len(self._workers) - self._starting):
            self._starting += 1
            loop.run_in_executor(None, _Worker.start, self.dir).add_done_callback(self._started)

    def _started(self, future: asyncio.Future[_Worker]) -> None:
        self._starting -= 1
        try:
            worker = future.result()
        except Exception as exc:
            log.warning("cannot start an answering process (%s)", exc)
            if not self._workers and not self._starting:
                for waiter in self._waiting:
                    if not waiter.done():
                        waiter.set_exception(exc)
                self._waiting.clear()
            return
        self._workers.append(worker)
        self._give_back(worker)

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()
        self._workers = []


class _WorkerEnded(Exception):
    """The answering process ended while it held a question."""


class _Worker:
    """One answering process and its two pipes, as the server sees them."""

    def __init__(self, process: Any, requests: Connection, replies: Connection) -> None:
        self.process = process
        self._requests = requests
        self._replies = replies
        self._pending: asyncio.Future[tuple[str, Any]] | None = None
        self._done: Callable[[_Worker], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buffer = bytearray()
        self.ended = False

    @classmethod
    def start(cls, index_dir: Path) -> _Worker:
        """A new process with the index open (YtnotesError when it cannot be opened)."""
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        their_requests, requests = context.Pipe(duplex=False)
        replies, their_replies = context.Pipe(duplex=False)
        process = context.Process(
            target=_serve_worker,
            args=(str(index_dir), os.getpid(), their_requests, their_replies),
            name="ytnotes-answering",
            daemon=True,
        )
        process.start()
        their_requests.close()
        their_replies.close()
        worker = cls(process, requests, replies)
        try:
            status, value = _decoded(_receive(replies.fileno()))
        except (EOFError, OSError):
            worker.stop()
            raise YtnotesError(
                f"an answering process ended before it opened the index (exit {process.exitcode})"
            ) from None
        if status == "error":
            worker.stop()
            raise value
        return worker

    async def ask(
        self, kind: str, params: dict[str, Any], done: Callable[[_Worker], None]
    ) -> tuple[str, Any]:
        """("ok", the JSON document) or ("error", the exception); _WorkerEnded when the process ends first.
        ``done`` is called with this worker once its reply is read."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # the first question (the pool is made before the server's loop runs)
            self._loop = loop
            loop.add_reader(self._replies.fileno(), self._read)
        self._pending = loop.create_future()
        self._done = done
        try:
            _send(self._requests.fileno(), json.dumps([kind, params]).encode("utf-8"))
        except OSError:
            self._end()
        return await self._pending

    def _read(self) -> None:
        """What the pipe holds now (the event loop made it non-blocking): a part of a reply, a whole one, or its
        end (the process ended)."""
        try:
            data = os.read(self._replies.fileno(), 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._end()
            return
        self._buffer += data
        if len(self._buffer) < _HEADER.size:
            return
        (size,) = _HEADER.unpack_from(self._buffer)
        if len(self._buffer) < _HEADER.size + size:
            return
        reply = _decoded(bytes(self._buffer[_HEADER.size : _HEADER.size + size]))
        del self._buffer[: _HEADER.size + size]  # empty: a process writes one reply a question
        if self._pending is not None and not self._pending.done():
            self._pending.set_result(reply)
        done, self._done = self._done, None
        if done is not None:
            done(self)

    def _end(self) -> None:
        self.ended = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._replies.fileno())
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(_WorkerEnded())

    def stop(self, at_once: bool = False) -> None:
        """End the process: closing its pipe ends its loop; it is killed if it does not end within 5 s, or
        ``at_once``."""
        self._requests.close()
        if at_once:
            self.process.kill()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._replies.close()


def _serve_worker(index_dir: str, parent: int, requests: Connection, replies: Connection) -> None:
    """An answering process: opens the index, says so (or why not), then answers each question it reads until
    the server closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    end_with_parent(parent)
    log_to_stderr()
    one_thread_per_question()
    try:
        holder = IndexHolder(Path(index_dir))
    except YtnotesError as exc:
        _send(replies.fileno(), _failure(_USER, exc))
        return
    _send(replies.fileno(), _READY)
    while True:
        try:
            kind, params = json.loads(_receive(requests.fileno()))
        except EOFError:
            return
        try:
            message = _OK + respond(holder, kind, params)
        except YtnotesError as exc:  # the API's 422
            message = _failure(_USER, exc)
        except Exception as exc:  # its 500
            message = _failure(_INTERNAL, exc)
        _send(replies.fileno(), message)


#: A reply's first byte: a JSON document follows; the process is ready; or an error (a user's, then any other),
#: its class's name and text follow as JSON. (Plain bytes and JSON, no pickle: nothing but data crosses the pipe.)
_OK, _READY, _USER, _INTERNAL = b"o", b"r", b"u", b"e"
#: The user errors made again by name in the server (those made from their message alone).
_USER_ERRORS = {
    cls.__name__: cls
    for cls in (YtnotesError, IndexMissingError, IndexUnusableError, BuildLockedError, IndexWriteError)
}


def _failure(kind: bytes, exc: Exception) -> bytes:
    return kind + json.dumps([type(exc).__name__, str(exc)]).encode("utf-8")


def _decoded(message: bytes) -> tuple[str, Any]:
    """("ok", a JSON document), ("ready", None) or ("error", the exception to raise) from a reply."""
    kind, body = message[:1], message[1:]
    if kind == _OK:
        return "ok", body
    if kind == _READY:
        return "ready", None
    name, text = json.loads(body)
    if kind == _USER:
        return "error", _USER_ERRORS.get(name, YtnotesError)(text)
    return "error", RuntimeError(f"{name}: {text}")


#: A message's length, before it on the pipe (a question one way, its reply the other).
_HEADER = struct.Struct("!Q")


def _send(fd: int, payload: bytes) -> None:
    """One message on a pipe: its length, then itself."""
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


def _receive(fd: int) -> bytes:
    """One message from a blocking pipe (EOFError when it ends first)."""
    (size,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size))
    return _read_exactly(fd, size)


def _read_exactly(fd: int, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return bytes(data)


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
