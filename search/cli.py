"""The `ytnotes` command line: parses arguments, calls the library, prints results.

Results go to stdout, progress and warnings to stderr. Exit status: 0 ok, 1 a problem the user can fix (the
message says how), 2 an internal error, 130 interrupted (Ctrl-C; `serve` stopped by it ends with 0).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.exceptions import TyperException

from search.errors import YtnotesError

#: Commands that only read: they may leave without tearing the interpreter down.
QUICK_EXIT = ("ask", "locate", "info")


def _examples(*lines: str) -> str:
    """A help epilog listing example commands, one a line (click's \\b keeps them from being re-wrapped)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


app = typer.Typer(
    # --install-completion / --show-completion: tab completion for bash, zsh, fish and PowerShell.
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Search notes taken from videos and jump to the exact second. Start with `ytnotes build NOTES_DIR`.",
    epilog=_examples(
        "ytnotes build ~/notes",
        'ytnotes ask "why did he drop out of college?"',
        "ytnotes --install-completion   # then open a new shell",
    ),
)

IndexOption = Annotated[
    Path | None,
    typer.Option(
        "--index",
        envvar="YTNOTES_INDEX",
        show_default=False,
        help="Index folder (default: ~/.local/share/ytnotes/index, or ytnotes/index in $XDG_DATA_HOME).",
    ),
]
NotesArgument = Annotated[
    Path | None,
    typer.Argument(
        envvar="YTNOTES_NOTES",
        show_default=False,
        help="Folder of .md notes (default: the folder the index was built from; for a new index, the bundled "
        "sample notes).",
    ),
]
ModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model",
        envvar="YTNOTES_MODEL",
        show_default=False,
        help="A local sentence-transformers model folder to embed with, or 'bundled' for the bundled "
        "all-MiniLM-L6-v2 (default: the index's own model; the bundled one for a new index). The index remembers "
        "it: later builds, ask, locate and serve need no flag. Another model rebuilds everything. The flag wins "
        "over YTNOTES_MODEL.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (schema in the README).")]
#: The words of a question or claim: quoted or not (joined with spaces); `-` reads it from stdin; after `--` it may
#: start with `-`.
WORDS_HELP = " Quotes are optional; - reads it from stdin; put -- before one that starts with -."


def _index(index: Path | None) -> Path:
    """The index folder: --index or YTNOTES_INDEX (Typer reads both), else the user's default."""
    from search.paths import default_index

    return (index or default_index()).absolute()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"ytnotes {version('ytnotes')}")
        except PackageNotFoundError:
            typer.echo("ytnotes (not installed: run from its source folder)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Search notes taken from videos and jump to the exact second. Start with `ytnotes build NOTES_DIR`."""


@app.command(
    short_help="Build or update the index of a folder of notes.",
    epilog=_examples(
        "ytnotes build ~/notes              # index your notes (the first time)",
        "ytnotes build                      # update it after editing notes",
        "ytnotes build ~/other --replace    # index another folder instead",
        "ytnotes build --model ~/models/all-mpnet-base-v2   # embed with a model of your own",
        "ytnotes build --model bundled      # back to the bundled model",
    ),
)
def build(
    notes_dir: NotesArgument = None,
    index: IndexOption = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="List every ignored timestamp; say how fast chunks were encoded."
        ),
    ] = False,
    full: Annotated[bool, typer.Option("--full", help="Re-read and re-embed every note.")] = False,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Index NOTES_DIR even though the index holds another folder's notes."),
    ] = False,
    model: ModelOption = None,
) -> None:
    """Build (or update) the index of a folder of notes.

    The index remembers its folder: later, `ytnotes build` alone updates it. Building another folder into it
    is refused unless --replace is given.
    """
    from search.build import build_index
    from search.present import build_summary, printable, readable

    with _progress() as progress:
        report = build_index(
            notes_dir, _index(index), progress=progress, full=full, replace=replace, model=model
        )
    if verbose:
        dropped = report.dropped_before + report.dropped_timestamps
        report_lines = [printable(readable(f"timestamp ignored: {d}")) for d in dropped]
        typer.echo("\n".join(report_lines), err=True) if report_lines else None
        report.dropped_timestamps = []
        if report.embedded_chunks and report.encode_seconds > 0:
            rate = report.embedded_chunks / report.encode_seconds
            typer.echo(
                f"encoded {report.embedded_chunks} chunks in {report.encode_seconds:.1f} s ({rate:.1f} chunks/s, "
                "not counting loading the model)",
                err=True,
            )
    for line in build_summary(report):
        typer.echo(line, err=True)


@app.command(
    short_help="Answer a question, linked to the moment.",
    epilog=_examples(
        'ytnotes ask "why did he drop out of college?"',
        'ytnotes ask "how are attention scores scaled" -k 3 --channel andrejkarpathy --json',
    ),
)
def ask(
    question_words: Annotated[
        list[str],
        typer.Argument(
            metavar="QUESTION", help="A question in your own words." + WORDS_HELP, show_default=False
        ),
    ],
    k: Annotated[int, typer.Option("-k", min=1, max=50, help="How many results (videos).")] = 5,
    channel: Annotated[str | None, typer.Option("--channel", help="Only notes from this channel.")] = None,
    video: Annotated[str | None, typer.Option("--video", help="Only notes about this video id.")] = None,
    index: IndexOption = None,
    as_json: JsonOption = False,
    open_top: Annotated[
        bool, typer.Option("--open", help="Also open the top moment in the web browser [env BROWSER].")
    ] = False,
) -> None:
    """Answer a question with the closest passages, each linked to its moment in the video."""
    from search.language import hint
    from search.present import ask_json, ask_text, screen
    from search.retrieve import open_index

    question = _words(question_words)
    idx = open_index(_index(index), one_shot=True)
    results = idx.answer(question, k=k, channel=channel, video=video)
    told = hint(question, idx.bundled_model)
    if told and not as_json:
        typer.echo(f"hint: {told}", err=True)
    if open_top:
        _open_in_browser(results)
    if as_json:
        _json(ask_json(question, k, channel, video, results, idx.bundled_model))
    else:
        typer.echo(ask_text(results, screen(sys.stdout)))


@app.command(
    short_help="Find the sentence a claim or quote comes from.",
    epilog=_examples(
        'ytnotes locate "the lightness of being a beginner"',
        'ytnotes locate "stay hungry, stay foolish" --json',
    ),
)
def locate(
    claim_words: Annotated[
        list[str],
        typer.Argument(
            metavar="CLAIM",
            help="A claim or quote to find the source moment of." + WORDS_HELP,
            show_default=False,
        ),
    ],
    index: IndexOption = None,
    as_json: JsonOption = False,
) -> None:
    """Find the one sentence that a claim or quote comes from, with its time and link."""
    from search.present import locate_json, locate_text, screen
    from search.retrieve import LOCATE_THRESHOLD, open_index

    claim = _words(claim_words)
    result = open_index(_index(index), one_shot=True).locate(claim)
    if as_json:
        _json(locate_json(claim, result, LOCATE_THRESHOLD))
    else:
        typer.echo(locate_text(result, LOCATE_THRESHOLD, screen(sys.stdout)))


@app.command(
    short_help="Show what is indexed.",
    epilog=_examples("ytnotes info", "ytnotes info --json --index ~/work-index"),
)
def info(index: IndexOption = None, as_json: JsonOption = False) -> None:
    """Show what is indexed: notes, chunks, model, when it was built, size on disk."""
    from search.describe import describe
    from search.present import info_text

    data = describe(_index(index))
    typer.echo(json.dumps(data, indent=2) if as_json else info_text(data))


@app.command(
    short_help="Serve a search page and a JSON API.",
    epilog=_examples(
        "ytnotes serve                # then open http://127.0.0.1:8765", "ytnotes serve --port 0"
    ),
)
def serve(
    index: IndexOption = None,
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on. Any but loopback lets other machines read your notes."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free one).")
    ] = 8765,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Processes answering questions, each with the index loaded (default: one per core; 1: answer "
            "in the server's own process).",
        ),
    ] = None,
) -> None:
    """Serve a search page and a JSON API (the `--json` documents) with the index kept loaded."""
    from search.server import serve as run_server

    # Ctrl-C is how a server is stopped (uvicorn has shut down when it re-raises it): a normal end, status 0.
    with contextlib.suppress(KeyboardInterrupt):
        run_server(_index(index), host=host, port=port, workers=workers)


@app.command(
    short_help="Rebuild the index whenever the notes change.",
    epilog=_examples(
        "ytnotes watch              # the folder the index was built from",
        "ytnotes watch ~/notes      # a new index of ~/notes",
    ),
)
def watch(
    notes_dir: NotesArgument = None,
    index: IndexOption = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Index NOTES_DIR even though the index holds another folder's notes."),
    ] = False,
    model: ModelOption = None,
) -> None:
    """Build the index, then rebuild it whenever a note is added, changed or deleted, until Ctrl-C.

    Each rebuild reads only what changed and prints its summary line on stderr, as `ytnotes build` does; a
    running `ytnotes serve` answers from the new index at once. Ctrl-C (or SIGTERM) ends it with status 0; a
    rebuild it interrupts leaves the index as it was.
    """
    import signal
    import time

    from search.present import build_summary
    from search.watch import watch as watch_notes

    def built(report: Any, first: bool) -> None:
        if report.up_to_date and not first:
            return  # a change that changed nothing the index holds (a file saved unchanged)
        lines = build_summary(report)
        lines[-1] = f"{time.strftime('%H:%M:%S')} {lines[-1]}"
        typer.echo("\n".join(lines), err=True)
        if first:
            typer.echo(f"watching {report.notes_dir} for changes (Ctrl-C to stop)", err=True)

    def failed(exc: Exception) -> None:
        typer.echo(f"{time.strftime('%H:%M:%S')} error: {exc}", err=True)

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        watch_notes(notes_dir, _index(index), replace, built, failed, model=model)
    except KeyboardInterrupt:
        # Stopping is how a watch ends: status 0, as for `serve`. (Not through the interpreter's teardown: see
        # `_interrupted`.)
        typer.echo("stopped watching", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@app.command(
    "mcp",
    short_help="Let AI assistants search the notes (a Model Context Protocol server).",
    epilog=_examples(
        "ytnotes mcp                  # over stdio: an MCP client starts it", "ytnotes mcp --http --port 8766"
    ),
)
def mcp_command(
    index: IndexOption = None,
    http: Annotated[
        bool,
        typer.Option(
            "--http", help="Serve Streamable HTTP at /mcp instead of stdio (one process, many clients)."
        ),
    ] = False,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            show_default=False,
            help="With --http: address to listen on [default: 127.0.0.1]. Any but loopback lets other machines "
            "read your notes.",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=0,
            max=65535,
            show_default=False,
            help="With --http: port to listen on [default: 8766; 0: any free one].",
        ),
    ] = None,
) -> None:
    """Let AI assistants and agents search the notes: a Model Context Protocol server (tools ask, locate, info)."""
    from search.mcp_server import DEFAULT_HTTP_PORT, run
    from search.server import DEFAULT_HOST

    if not http and (host is not None or port is not None):
        raise YtnotesError(
            "--host and --port are for --http; over stdio the client starts `ytnotes mcp` itself"
        )
    # Ctrl-C is how the HTTP server is stopped: a normal end, status 0 (as `serve`).
    with contextlib.suppress(KeyboardInterrupt):
        run(
            _index(index),
            http=http,
            host=host or DEFAULT_HOST,
            port=DEFAULT_HTTP_PORT if port is None else port,
        )


def _words(words: list[str]) -> str:
    """The question or claim: its words joined with spaces, or stdin when it is `-`."""
    if words == ["-"]:
        if sys.stdin.isatty():
            raise YtnotesError("- reads the text from stdin: pipe it in, e.g. echo 'why …' | ytnotes ask -")
        return sys.stdin.read().strip()
    return " ".join(words)


def _open_in_browser(results: list[Any]) -> None:
    """Open the top moment with Python's webbrowser (which honours $BROWSER); say so on stderr."""
    import webbrowser

    url = results[0].hit.url if results else None
    if url is None:
        why = "the top result's note has no videoId" if results else "no passages found"
        typer.echo(f"nothing to open: {why}", err=True)
        return
    typer.echo(f"opening {url}", err=True)
    if not webbrowser.open(url):
        typer.echo(f"warning: no web browser could be started; open {url} yourself", err=True)


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


#: What a first build says while it exports the model (the one step that imports torch).
EXPORTING = "Preparing the model: a one-time export that takes a few seconds…"


class _progress:
    """Progress on stderr while a build works: a spinner line while a first build exports the model (one plain line
    when stderr is not a terminal), then bars with counts and ETA while it reads and embeds. NO_COLOR (any value
    but empty) turns off colour and bold."""

    def __enter__(self) -> Any:
        from rich.console import Console

        from search.present import no_color

        self.console = Console(stderr=True, color_system=None if no_color() else "auto")
        self.bar: Any = None
        self.status: Any = None
        self.export_started = 0.0
        self.tasks: dict[str, Any] = {}
        return self.update

    def update(self, stage: str, done: int, total: int) -> None:
        if stage == "export":
            self.export_started = time.monotonic()
            if self.console.is_terminal:
                self.status = self.console.status(EXPORTING)
                self.status.start()
            else:
                typer.echo(EXPORTING, err=True)
            return
        self._exported()
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("{task.description:<14}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.bar.start()
        if stage not in self.tasks:
            label = {"read": "Reading notes", "embed": "Embedding"}.get(stage, stage)
            self.tasks[stage] = self.bar.add_task(label, total=total)
        self.bar.update(self.tasks[stage], completed=done, total=total)

    def _exported(self) -> None:
        """The export is over: the spinner gives way to a line saying how long it took."""
        if self.status is not None:
            self.status.stop()
            self.status = None
            seconds = time.monotonic() - self.export_started
            self.console.print(
                f"Prepared the model in {seconds:.1f} s; later builds reuse it.", highlight=False
            )

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.stop()
        if self.bar is not None:
            self.bar.stop()


def main() -> None:
    """Entry point: run the app and turn errors into one line and an exit status."""
    try:
        # Typer turns Ctrl-C into exit status 130 and, outside standalone mode, returns it rather than exiting.
        status = app(prog_name="ytnotes", standalone_mode=False)
        if status == 130:
            _interrupted()
        if isinstance(status, int) and status != 0:
            sys.exit(status)
        if len(sys.argv) > 1 and sys.argv[1] in QUICK_EXIT:
            # A read-only command is done once its output is out: skip the interpreter's teardown of torch-free
            # but large native modules (onnxruntime, FAISS), about 0.1 s of a 0.5 s question.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    except YtnotesError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _interrupted()
    except TyperException as exc:  # a usage error: bad option, missing argument, value out of range
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("YTNOTES_DEBUG"):
            raise
        typer.echo(
            f"internal error: {type(exc).__name__}: {exc} (set YTNOTES_DEBUG=1 for the traceback; please report it)",
            err=True,
        )
        sys.exit(2)


def _interrupted() -> NoReturn:
    """Say so and exit with 130 at once: the interrupted command cleaned up while the interrupt unwound.

    Not through the interpreter's teardown: when the KeyboardInterrupt is raised inside code that `exec` runs
    from a string (dataclasses and namedtuples are made so, and the first build's export imports many), CPython
    records it as unhandled even though it was caught, and under `python -m` then ends the process by SIGINT
    instead of with our status (3 interrupted first builds in 10 here, and once in CI)."""
    typer.echo("interrupted", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


if __name__ == "__main__":
    main()
