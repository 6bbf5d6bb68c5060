"""`ytnotes mcp`: the notes as Model Context Protocol tools, for AI assistants and agents.

    ask(question, k=5, channel=None, video=None)   what `ytnotes ask QUESTION --json` prints
    locate(claim)                                  what `ytnotes locate CLAIM --json` prints
    info()                                         what `ytnotes info --json` prints

Each result carries that document as the structured content, and as content a text rendering with the
``[HH:MM:SS] link`` of each moment (what the CLI prints without --json) followed by the document as JSON text.
A bad argument or a missing index is a tool error (``isError``) with a one-line message; the server keeps running.

Over stdio (the default) stdout carries only protocol messages; logs go to stderr. With ``--http`` the same tools
are served over Streamable HTTP at ``/mcp``, with the Host checks of `ytnotes serve`.

The index and the question encoder are opened once, at start, and a build that swaps in a new generation is
picked up on the next call (`search.answering.IndexHolder`, as `serve` does). When no usable index is there at
start, the server runs anyway: each call answers with the error (which names `ytnotes build`) until one is built.
The MCP SDK and the index are imported inside functions, so `ytnotes --help` stays fast. (No `from __future__
import annotations` here: the SDK reads the tools' parameter types, which are imported inside `create_server`.)
"""

import contextlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from search.errors import YtnotesError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from mcp.types import CallToolResult

    from search.answering import IndexHolder
    from search.retrieve import Index

log = logging.getLogger("ytnotes.serve")

#: Where `--http` serves the protocol; the port is one above `ytnotes serve`'s, so both can run at once.
HTTP_PATH = "/mcp"
DEFAULT_HTTP_PORT = 8766
#: What the k of `ask` may be: the CLI's -k range.
K_RANGE = (1, 50)

INSTRUCTIONS = (
    "Searches the user's notes taken from YouTube videos (talks, lectures, podcasts). Every passage comes with "
    "the [HH:MM:SS] moment and a YouTube link to that second: cite it when you use the passage. Use `ask` for a "
    "question, `locate` to find where a claim or quote comes from, `info` for what is indexed (channels are "
    "named in the results and in ask's error for an unknown one)."
)
ASK_DESCRIPTION = (
    "Answer a question from the user's video notes: the k best videos, each with its best passage, the moment "
    "(timestamp and a YouTube link to that second) of the sentence that answers best, and other moments of that "
    "video. Use it whenever the user asks about something they watched or took notes on, or asks what a speaker "
    "said about a subject. The text starts with 'Answer:' and the best sentence when a passage answers closely, "
    "or with 'No good answer' when none does (the closest passages are listed either way; `found` in the JSON). "
    "Cite the [HH:MM:SS] link of the passage you use."
)
LOCATE_DESCRIPTION = (
    "Find the one sentence in the notes that a claim or quote comes from, with its timestamp, YouTube link to "
    "that second, the note and line, and a confidence (cosine similarity, 0-1). Use it to check or source a "
    "specific statement ('who said ...', 'where is this quote from'); use `ask` for open questions. Says "
    "'Not found' when no sentence is close enough."
)
INFO_DESCRIPTION = (
    "What is indexed: the number of notes, chunks and timestamped segments, the notes folder, the embedding "
    "model, when the index was built and its size. Use it to tell the user what the notes cover or whether the "
    "index is up to date; it takes no arguments."
)


class Notes:
    """The index behind the tools: opened once, then `IndexHolder` swaps in each new generation a build makes.
    Until an index can be opened (none built yet, or a damaged one), each call tries again and raises the
    YtnotesError that says how to fix it."""

    def __init__(self, index_dir: Path) -> None:
        self.dir = index_dir
        self._lock = threading.Lock()
        self._holder: IndexHolder | None = None
        try:
            self._open()
        except YtnotesError as exc:
            log.warning("%s; the tools answer with this error until an index is built", exc)

    def index(self) -> "Index":
        """The live index, or the YtnotesError that says why there is none."""
        holder = self._holder or self._open()
        return holder.get()

    @property
    def generation(self) -> str | None:
        return self._holder.generation if self._holder else None

    def close(self) -> None:
        if self._holder is not None:
            self._holder.close()

    def _open(self) -> "IndexHolder":
        from search.answering import IndexHolder

        with self._lock:
            if self._holder is None:
                self._holder = IndexHolder(self.dir)
                log.info("answering from %s in %s", self._holder.generation, self.dir)
            return self._holder


def create_server(index_dir: Path, notes: Notes | None = None) -> "MCPServer":
    """The MCP server over the index in a folder (opened now; see `Notes`)."""
    from importlib.metadata import version

    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import CallToolResult, ToolAnnotations
    from pydantic import Field

    from search.present import Screen, ask_json, ask_text, info_text, locate_json, locate_text
    from search.retrieve import LOCATE_THRESHOLD
    from search.timestamps import valid_video_id

    notes = notes or Notes(index_dir)
    server: MCPServer = MCPServer(
        "ytnotes",
        title="ytnotes: video notes",
        instructions=INSTRUCTIONS,
        version=version("ytnotes"),
        # The SDK's INFO lines (one per request) would cost each call a log record on stderr.
        log_level="WARNING",
    )
    # Read-only, the same answer for the same index, and nothing outside the notes.
    reading = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
    low, high = K_RANGE

    @contextlib.contextmanager
    def told_to_the_model() -> Iterator[None]:
        """A YtnotesError (no index, an unknown channel, an empty question, ...) as a tool error: its one line."""
        try:
            yield
        except YtnotesError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(description=ASK_DESCRIPTION, annotations=reading)
    def ask(
        question: Annotated[
            str,
            Field(
                description="The question, in the user's words (at most 1,000 characters). To find what came "
                "after something, state it first, then ask ('Apple grew to $2 billion. What happened to Jobs?'): "
                "the moment then favours the sentence after the one the statement matches."
            ),
        ],
        k: Annotated[
            int,
            # Checked in the body, for a one-line message; the schema still tells the client the range.
            Field(
                description="How many videos to answer with.",
                json_schema_extra={"minimum": low, "maximum": high},
            ),
        ] = 5,
        channel: Annotated[
            str | None, Field(description="Only notes from this channel (as the results name it).")
        ] = None,
        video: Annotated[
            str | None, Field(description="Only notes about this YouTube video id (11 characters).")
        ] = None,
    ) -> CallToolResult:
        if not low <= k <= high:
            raise ToolError(f"k must be a whole number from {low} to {high}, not {k}")
        channel, video = channel or None, video or None
        if video and not valid_video_id(video):
            raise ToolError(f"video {video!r} is not a YouTube video id (11 letters, digits, - or _)")
        with told_to_the_model():
            idx = notes.index()
            results = idx.answer(question, k=k, channel=channel, video=video)
        body = ask_json(question, k, channel, video, results, idx.bundled_model)
        return _result(body, ask_text(results, Screen()))

    @server.tool(description=LOCATE_DESCRIPTION, annotations=reading)
    def locate(
        claim: Annotated[str, Field(description="The claim or quote to find (at most 1,000 characters).")],
    ) -> CallToolResult:
        with told_to_the_model():
            found = notes.index().locate(claim)
        return _result(locate_json(claim, found, LOCATE_THRESHOLD), locate_text(found, LOCATE_THRESHOLD))

    @server.tool(description=INFO_DESCRIPTION, annotations=reading)
    def info() -> CallToolResult:
        with told_to_the_model():
            data = notes.index().info()
        return _result(data, info_text(data))

    return server


def _result(document: dict[str, Any], text: str) -> "CallToolResult":
    """A tool's result: the `--json` document as structured content; for the model, the text rendering and
    (as the protocol asks of a tool with structured content) the same document as JSON text."""
    from mcp.types import CallToolResult, TextContent

    as_json = json.dumps(document, ensure_ascii=False, allow_nan=False)
    return CallToolResult(
        content=[TextContent(type="text", text=text), TextContent(type="text", text=as_json)],
        structured_content=document,
    )


def run(index_dir: Path, http: bool = False, host: str = "127.0.0.1", port: int = DEFAULT_HTTP_PORT) -> None:
    """Open the index and answer MCP requests: over stdio until the client closes stdin, or over HTTP until
    interrupted (Ctrl-C, SIGTERM)."""
    import anyio

    from search.answering import log_to_stderr, one_thread_per_question

    log_to_stderr()
    one_thread_per_question()
    if not http:
        notes = Notes(index_dir)
        try:
            anyio.run(create_server(index_dir, notes).run_stdio_async)
        finally:
            notes.close()
        return
    _run_http(index_dir, host, port)


def _run_http(index_dir: Path, host: str, port: int) -> None:
    import signal

    import uvicorn

    from search import server as web

    warning = web.exposure_warning(host, port)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    sock = web.listen(host, port)  # first: a busy port is said at once, before the index is loaded
    notes = Notes(index_dir)
    try:
        app = create_server(index_dir, notes).streamable_http_app(streamable_http_path=HTTP_PATH, host=host)
        url = web.page_url(sock).rstrip("/") + HTTP_PATH
        print(
            f"Serving MCP at {url}  (index {index_dir}, {notes.generation or 'no index yet'}; Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )
        config = uvicorn.Config(
            web.guarded(app, web.allowed_hosts(host)),
            log_level="warning",
            access_log=False,
            server_header=False,
        )
        previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM ends like Ctrl-C, as in `serve`
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        notes.close()
        sock.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
