"""`ytnotes serve`: the index and the question encoder stay loaded behind a JSON API and a search page.

    GET /api/ask?q=&k=&channel=&video=   the document `ytnotes ask --json` prints
    GET /api/locate?q=                   the document `ytnotes locate --json` prints
    GET /api/info                        the document `ytnotes info --json` prints
    GET /healthz                         {"status": "ok", "generation": "gen-…"}
    GET /                                the search page (search/static/)

Invalid input gets a 422 whose body is ``{"detail": "<one line saying what to change>"}``, never a 500.

The questions are answered by `search.answering`: by default in one worker process per core (each with the index
loaded), or in this process with `--workers 1`. A build that swaps in a new index is noticed on the next question.
FastAPI, uvicorn and the index are imported inside functions, so `ytnotes --help` stays fast.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search import store
from search.errors import YtnotesError

if TYPE_CHECKING:
    from fastapi import FastAPI

STATIC = Path(__file__).parent / "static"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: Processes answering questions by default: one per core (see `search.answering`).
WORKERS = os.cpu_count() or 1
#: The Host headers a server bound to a loopback address answers to. Any other name is refused, so that a web page
#: elsewhere cannot read the notes through DNS rebinding (its own name resolved to 127.0.0.1).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
#: The only place the page may load a frame from: YouTube's embed without tracking cookies.
EMBED_ORIGIN = "https://www.youtube-nocookie.com"
#: Everything the page needs comes from ytnotes itself; the embed is the one outside request.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    f"frame-src {EMBED_ORIGIN}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    # YouTube's embed refuses to play without a referrer (its "error 153"); this sends the origin only.
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"DENY"),
]
#: What each query parameter must be, said when it is not ({what}: what q is on that path).
PARAMETER_RULES = {
    "q": "q is required: the {what} to look for",
    "k": "k must be a whole number from 1 to 50",
}


def create_app(index_dir: Path, hosts: Sequence[str] | None = None, workers: int = 1) -> FastAPI:
    """The web app over the index in a folder. `hosts`: the Host names to answer to (None: any); `workers`:
    processes answering questions (1: this process answers them; see `search.answering`); `app.state.answerer`
    is to be closed when the app is done.

    Opens the index now, so a missing or unusable one is a YtnotesError here rather than on the first request."""
    from fastapi import FastAPI, Query, Request, Response
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    from search.answering import InProcess, WorkerPool
    from search.timestamps import valid_video_id

    answerer = (
        InProcess(index_dir, at_once=os.cpu_count() or 1) if workers == 1 else WorkerPool(index_dir, workers)
    )
    app = FastAPI(
        title="ytnotes",
        summary="Search notes taken from videos; the JSON mirrors `ytnotes ask|locate|info --json`.",
        # The interactive docs pages load their scripts from a CDN; the schema stays available.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.answerer = answerer

    def unprocessable(message: str) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=422)

    async def document(kind: str, **params: Any) -> Response:
        return Response(await answerer(kind, params), media_type="application/json")

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        what = "claim or quote" if request.url.path == "/api/locate" else "question"
        return unprocessable(_validation_message(exc.errors(), what))

    @app.exception_handler(YtnotesError)
    async def user_error(request: Request, exc: YtnotesError) -> JSONResponse:
        return unprocessable(str(exc))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception after this response, so uvicorn logs its traceback.
        return JSONResponse(
            {"detail": f"internal error: {type(exc).__name__}: {exc} (the server's log has the traceback)"},
            status_code=500,
        )

    @app.get("/api/ask", response_model=None)
    async def ask(
        q: str = Query(description="The question, at most 1,000 characters."),
        k: int = Query(5, ge=1, le=50, description="How many videos to answer with."),
        channel: str | None = Query(None, description="Only notes from this channel."),
        video: str | None = Query(None, description="Only notes about this YouTube video id."),
    ) -> Response:
        """`ytnotes ask QUESTION --json`: the best videos, each with its best passage and other moments."""
        if video and not valid_video_id(video):
            return unprocessable(f"video {video!r} is not a YouTube video id (11 letters, digits, - or _)")
        return await document("ask", q=q, k=k, channel=channel or None, video=video or None)

    @app.get("/api/locate", response_model=None)
    async def locate(q: str = Query(description="The claim or quote, at most 1,000 characters.")) -> Response:
        """`ytnotes locate CLAIM --json`: the one sentence a claim comes from, and a confidence."""
        return await document("locate", q=q)

    @app.get("/api/info", response_model=None)
    async def info() -> Response:
        """`ytnotes info --json`: what is indexed."""
        return await document("info")

    @app.get("/healthz", response_model=None)
    async def healthz() -> Response:
        """Up, and answering from this generation (plus why a newer one could not be opened, if so)."""
        return await document("health")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False, response_model=None)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(_Headers, hosts=hosts)
    return app


def _validation_message(errors: Sequence[Any], what: str) -> str:
    """One line from FastAPI's list of parameter errors: what each parameter must be, and what it was."""
    parts: list[str] = []
    for err in errors:
        loc = err.get("loc") or ()
        name = str(loc[-1]) if loc else "request"
        rule = PARAMETER_RULES.get(name, f"{name}: {err.get('msg', 'invalid')}").format(what=what)
        if err.get("type") != "missing" and err.get("input") is not None:
            rule += f", not {str(err['input'])[:40]!r}"
        parts.append(rule)
    return "; ".join(dict.fromkeys(parts)) or "invalid request"


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Headers:
    """ASGI middleware: refuse unknown Host names (when given) and add the security headers to every response."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], hosts: Sequence[str] | None):
        self.app = app
        self.hosts = None if hosts is None else {h.lower() for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        if self.hosts is not None and _host_name(scope) not in self.hosts:
            body = b'{"detail":"unknown Host header: use the address ytnotes printed when it started"}'
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", b"%d" % len(body)),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send_with_headers)


def _host_name(scope: Scope) -> str:
    """The name in the request's Host header, without the port (``[::1]:8765`` -> ``::1``)."""
    raw = next((v for k, v in scope.get("headers", []) if k == b"host"), b"").decode("latin-1").lower()
    if raw.startswith("["):
        return raw[1:].split("]", 1)[0]
    return raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw


def allowed_hosts(host: str) -> list[str] | None:
    """The Host names a server bound to `host` answers to: the loopback names and its own when it is bound to
    loopback (DNS-rebinding protection), any (None) when other machines are meant to reach it."""
    return [*LOOPBACK_NAMES, host] if is_loopback(host) else None


def guarded(app: Callable[[Scope, Receive, Send], Awaitable[None]], hosts: Sequence[str] | None) -> _Headers:
    """An ASGI app behind the Host check and the security headers of `ytnotes serve` (for `ytnotes mcp --http`)."""
    return _Headers(app, hosts)


def is_loopback(host: str) -> bool:
    """True when only this machine can reach an address (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int) -> str | None:
    """What to tell a person who binds an address other machines can reach; None for loopback."""
    if is_loopback(host):
        return None
    return (
        f"warning: listening on {host}:{port}, so anyone who can reach this machine on that port can read your "
        f"notes; use --host {DEFAULT_HOST} to keep them to yourself"
    )


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, or a YtnotesError that says what to change."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[
            0
        ]
    except socket.gaierror as exc:
        raise YtnotesError(
            f"cannot listen on {host!r}: {exc.strerror}; pass --host an address or name"
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise YtnotesError(
                f"port {port} on {host} is in use; pass --port another number (0: any free one)"
            ) from None
        raise YtnotesError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    return sock


def page_url(sock: socket.socket) -> str:
    """The address to open in a browser."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(
    index_dir: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, workers: int | None = None
) -> None:
    """Open the index, listen, print the address, and answer until interrupted (Ctrl-C)."""
    import uvicorn

    from search.answering import log_to_stderr

    log_to_stderr()
    workers = workers or WORKERS
    warning = exposure_warning(host, port)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    hosts = allowed_hosts(host)
    sock = listen(host, port)  # first: a busy port is said at once, before the index is loaded
    try:
        app = create_app(index_dir, hosts=hosts, workers=workers)
    except BaseException:
        sock.close()
        raise
    try:
        generation = store.current_generation(index_dir).name
        answering = f"{workers} worker processes" if workers > 1 else "answering in this process"
        print(
            f"Serving {page_url(sock)}  (index {index_dir}, {generation}, {answering}; Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", server_header=False
        )
        # uvicorn stops on SIGINT or SIGTERM once the requests in flight are answered, then raises the signal
        # again: SIGTERM then ends like Ctrl-C (KeyboardInterrupt) rather than killing this process before the
        # worker processes are stopped.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        app.state.answerer.close()
        sock.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
