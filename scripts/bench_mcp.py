"""Speed of `ytnotes mcp` as an assistant meets it: the MCP SDK's client starts the server over stdio.

    .venv/bin/python scripts/bench_mcp.py [--notes ../shared/corpus/notes] [--index DIR] [--starts 5] [--calls 100]

The index of the notes is built into --index (a temporary folder by default; an existing index of the same notes is
brought up to date, which costs nothing when they have not changed). Then:

- first answer: --starts times, a fresh `python -m search mcp` is started by the SDK's client (`stdio_client`), the
  connection is set up and one `ask` is called; timed from just before the process is started to the answer, and
  the connection alone (start to handshake done). Medians over the starts.
- steady: one server, --calls `ask` calls one after another (after a first, untimed one), the evaluation questions
  (scripts/eval/questions.jsonl) in order; each timed from the call to its result. Median, p90 and max.

The client and the server share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters, stdio_client

REPO = Path(__file__).resolve().parents[1]
YTNOTES = [sys.executable, "-m", "search"]
QUESTIONS = REPO / "scripts" / "eval" / "questions.jsonl"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def percentile(sorted_values: list[float], p: float) -> float:
    """The nearest-rank percentile of sorted values."""
    rank = max(1, round(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def server(index: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "search", "mcp", "--index", str(index)], env=OFFLINE
    )


async def first_answer(index: Path, question: str) -> tuple[float, float]:
    """Seconds from starting a server to its handshake, and to its first answer."""
    with open(os.devnull, "w") as quiet:
        start = time.perf_counter()
        async with Client(stdio_client(server(index), errlog=quiet)) as client:
            connected = time.perf_counter() - start
            result = await client.call_tool("ask", {"question": question})
            answered = time.perf_counter() - start
    if result.is_error:
        raise SystemExit(f"ask failed: {result.content}")
    return connected, answered


async def steady(index: Path, questions: list[str], calls: int) -> list[float]:
    """Milliseconds of each of `calls` ask calls to one running server."""
    times = []
    with open(os.devnull, "w") as quiet:
        async with Client(stdio_client(server(index), errlog=quiet)) as client:
            await client.call_tool("ask", {"question": questions[-1]})
            for n in range(calls):
                start = time.perf_counter()
                result = await client.call_tool("ask", {"question": questions[n % len(questions)]})
                times.append((time.perf_counter() - start) * 1000)
                if result.is_error:
                    raise SystemExit(f"ask failed: {result.content}")
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=Path, default=REPO.parent / "shared" / "corpus" / "notes")
    ap.add_argument("--index", type=Path, help="index folder (default: a temporary one, removed afterwards)")
    ap.add_argument("--starts", type=int, default=5, help="fresh server starts for the first answer")
    ap.add_argument("--calls", type=int, default=100, help="ask calls to one server")
    args = ap.parse_args()
    if not args.notes.is_dir():
        raise SystemExit(f"no notes folder at {args.notes}; pass --notes")
    work = None
    if args.index is None:
        work = Path(tempfile.mkdtemp(prefix="ytnotes-bench-mcp-"))
        args.index = work / "index"
    try:
        build = subprocess.run(
            [*YTNOTES, "build", str(args.notes), "--index", str(args.index)],
            capture_output=True,
            text=True,
            env={**os.environ, **OFFLINE},
        )
        if build.returncode != 0:
            raise SystemExit(f"build failed:\n{build.stderr}")
        print(build.stderr.strip().splitlines()[-1])
        questions = [
            json.loads(line)["q"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line
        ]

        starts = []
        for n in range(args.starts):
            starts.append(anyio.run(first_answer, args.index, questions[n]))
        connect = statistics.median(s[0] for s in starts)
        answer = statistics.median(s[1] for s in starts)
        ms = sorted(anyio.run(steady, args.index, questions, args.calls))

        print(
            f"ytnotes mcp over stdio, the MCP SDK's client; {args.notes}; {os.cpu_count()} cores shared by both"
        )
        print(
            f"first answer after start, median of {args.starts} starts   {answer:.3f} s  "
            f"(connected after {connect:.3f} s; each: {', '.join(f'{s[1]:.2f}' for s in starts)})"
        )
        print(
            f"ask, {args.calls} calls to one server, ms            median {statistics.median(ms):.1f}  "
            f"p90 {percentile(ms, 90):.1f}  max {ms[-1]:.1f}"
        )
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
