"""`ytnotes mcp`: the real server process (`python -m search mcp`) driven by the MCP SDK's own client, over stdio
and over Streamable HTTP on loopback. No part of the protocol is mocked."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx
from mcp import Client, StdioServerParameters, stdio_client
from mcp.types import CallToolResult

from conftest import EXPECTATIONS, SAMPLE_NOTES, run_cli, server_started
from search import store

#: The environment the server gets on top of the SDK's allow-list (HOME, PATH, ...): no model download, ever.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
#: A note unlike the sample notes, added between two calls to see the rebuilt index answer.
NEW_NOTE = """---
title: The lighthouse pastry
videoId: Lighthous42
---

From: [[harbourtv]]

## Night shift

<a class="yt-timestamp" data-t="00:07:13">[00:07:13]</a> The keeper of the granite lighthouse bakes cardamom pastries
for the fishing boats every night at two.
"""
NEW_QUESTION = "What does the lighthouse keeper bake for the fishing boats?"
NEW_NOTE_PATH = "harbour/Lighthous42-pastry.md"
MOMENT = re.compile(r"\[\d\d:\d\d:\d\d\] https://www\.youtube\.com/watch\?v=[\w-]{11}&t=\d+s")


def run(test: Callable[[], Awaitable[None]]) -> None:
    anyio.run(test)


@contextlib.asynccontextmanager
async def connected(index: Path, errlog: TextIO | None = None) -> AsyncIterator[Client]:
    """The SDK's client, connected over stdio to `python -m search mcp --index INDEX` (started here, stopped on
    leaving)."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "search", "mcp", "--index", str(index)], env=OFFLINE
    )
    async with Client(stdio_client(params, errlog=errlog or sys.stderr)) as client:
        yield client


def document(result: CallToolResult) -> Any:
    """The JSON document of a successful call (its structured content), checked against its JSON text."""
    assert not result.is_error, result.content
    assert len(result.content) == 2
    assert json.loads(result.content[1].text) == result.structured_content  # type: ignore[union-attr]
    return result.structured_content


def text(result: CallToolResult) -> str:
    return result.content[0].text  # type: ignore[union-attr]


def cli_json(*args: str, index: Path) -> Any:
    return json.loads(run_cli(*args, "--json", index=index, check=True).stdout)


# ---- over stdio --------------------------------------------------------------------------------------------------


def test_tools_are_listed_with_descriptions_and_input_schemas(sample_index: Path) -> None:
    async def test() -> None:
        async with connected(sample_index) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert client.instructions is not None and "[HH:MM:SS]" in client.instructions
        assert set(tools) == {"ask", "locate", "info"}
        for tool in tools.values():
            assert tool.description and "Use " in tool.description, tool.name
            assert tool.annotations is not None and tool.annotations.read_only_hint is True
        ask = tools["ask"].input_schema
        assert ask["required"] == ["question"]
        assert set(ask["properties"]) == {"question", "k", "channel", "video"}
        k = ask["properties"]["k"]
        assert (k["type"], k["minimum"], k["maximum"], k["default"]) == ("integer", 1, 50, 5)
        assert tools["locate"].input_schema["required"] == ["claim"]
        assert tools["info"].input_schema["properties"] == {}
        assert "timestamp" in (tools["ask"].description or "") and "quote" in (
            tools["locate"].description or ""
        )

    run(test)


def test_ask_locate_and_info_answer_as_the_cli_does(sample_index: Path) -> None:
    item = EXPECTATIONS["ask"][1]
    claim = "the heaviness of being successful was replaced by the lightness of being a beginner"
    unrelated = "Penguins run the bakery on the third moon of Neptune."

    got: dict[str, CallToolResult] = {}

    async def test() -> None:
        async with connected(sample_index) as client:
            got["ask"] = await client.call_tool("ask", {"question": item["q"]})
            got["ask2"] = await client.call_tool(
                "ask", {"question": "what happens when you lose sleep?", "k": 2, "channel": "STANFORD"}
            )
            got["locate"] = await client.call_tool("locate", {"claim": claim})
            got["unfound"] = await client.call_tool("locate", {"claim": unrelated})
            got["info"] = await client.call_tool("info", {})

    run(test)
    ask = document(got["ask"])
    assert ask == cli_json("ask", item["q"], index=sample_index)
    top = ask["results"][0]
    assert (top["video_id"], top["seconds"]) == (item["video"], item["t"])
    rendering = text(got["ask"])
    assert rendering.startswith("Answer: ")
    assert f"https://www.youtube.com/watch?v={item['video']}&t={item['t']}s" in rendering.splitlines()[0]
    assert len(MOMENT.findall(rendering)) >= len(ask["results"])

    ask2 = document(got["ask2"])
    assert ask2 == cli_json(
        "ask", "what happens when you lose sleep?", "-k", "2", "--channel", "STANFORD", index=sample_index
    )
    assert ask2["k"] == 2 and {r["video_id"] for r in ask2["results"]} == {"UF8uR6Z6KLc"}

    located = document(got["locate"])
    assert located == cli_json("locate", claim, index=sample_index)
    assert located["found"] is True and MOMENT.search(text(got["locate"]))
    unfound = document(got["unfound"])
    assert unfound["found"] is False and text(got["unfound"]).startswith("Not found")

    info = document(got["info"])
    assert info == cli_json("info", index=sample_index)
    assert f"{info['notes']} from" in text(got["info"])


BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("ask", {"question": "sleep", "k": 0}, "k must be a whole number from 1 to 50, not 0"),
    ("ask", {"question": "sleep", "k": 51}, "k must be a whole number from 1 to 50, not 51"),
    ("ask", {"question": "   "}, "the question is empty"),
    ("ask", {"question": "x" * 1001}, "keep it under 1,000"),
    ("ask", {"question": "sleep", "channel": "no-such-channel"}, "no notes from channel 'no-such-channel'"),
    ("ask", {"question": "sleep", "video": "not-an-id"}, "'not-an-id' is not a YouTube video id"),
    ("locate", {"claim": ""}, "the claim is empty"),
]


def test_bad_arguments_are_tool_errors_and_the_server_keeps_answering(sample_index: Path) -> None:
    results: list[CallToolResult] = []

    async def test() -> None:
        async with connected(sample_index) as client:
            for tool, arguments, _ in BAD_CALLS:
                results.append(await client.call_tool(tool, arguments))
            # A type the schema does not allow is refused by the SDK before the tool runs: a tool error too.
            results.append(await client.call_tool("ask", {"question": "sleep", "k": "many"}))
            results.append(await client.call_tool("ask", {"question": "what happens when you lose sleep?"}))

    run(test)
    for (tool, arguments, says), result in zip(BAD_CALLS, results, strict=False):
        assert result.is_error, (tool, arguments)
        message = text(result)
        assert says in message, message
        assert "\n" not in message and "Traceback" not in message
    assert results[-2].is_error and "k" in text(results[-2])
    assert document(results[-1])["results"]


def copy_of_sample(tmp_path: Path, sample_index: Path) -> tuple[Path, Path]:
    """A writable notes folder and its index (a copy of the sample index: the next build is incremental)."""
    notes, index = tmp_path / "notes", tmp_path / "index"
    shutil.copytree(SAMPLE_NOTES, notes)
    shutil.copytree(sample_index, index)
    return notes, index


def test_a_build_between_two_calls_is_answered_from(tmp_path: Path, sample_index: Path) -> None:
    notes, index = copy_of_sample(tmp_path, sample_index)
    before: list[Any] = []
    after: list[Any] = []

    async def test() -> None:
        async with connected(index) as client:
            before.append(document(await client.call_tool("ask", {"question": NEW_QUESTION})))
            before.append(document(await client.call_tool("info", {})))
            (notes / NEW_NOTE_PATH).parent.mkdir(parents=True)
            (notes / NEW_NOTE_PATH).write_text(NEW_NOTE, encoding="utf-8")
            await anyio.to_thread.run_sync(lambda: run_cli("build", str(notes), index=index, check=True))
            after.append(document(await client.call_tool("ask", {"question": NEW_QUESTION})))
            after.append(document(await client.call_tool("info", {})))

    run(test)
    assert before[0]["results"][0]["note"] != NEW_NOTE_PATH
    top = after[0]["results"][0]
    assert (top["note"], top["video_id"], top["seconds"]) == (NEW_NOTE_PATH, "Lighthous42", 433)
    assert after[1]["notes"] == before[1]["notes"] + 1
    assert after[1]["generation"] != before[1]["generation"]
    assert after[1]["generation"] == (index / store.CURRENT).read_text(encoding="utf-8").strip()


def test_without_an_index_each_call_says_how_to_build_one_until_there_is_one(
    tmp_path: Path, sample_index: Path
) -> None:
    index = tmp_path / "index"
    results: list[CallToolResult] = []
    errlog = tmp_path / "stderr.txt"

    async def test() -> None:
        with errlog.open("w", encoding="utf-8") as log:
            async with connected(index, errlog=log) as client:
                results.append(await client.call_tool("ask", {"question": "sleep"}))
                results.append(await client.call_tool("info", {}))
                shutil.copytree(sample_index, index)  # an index appears, as a build makes one
                results.append(await client.call_tool("info", {}))

    run(test)
    for result in results[:2]:
        assert result.is_error and f"no index in {index}" in text(result) and "ytnotes build" in text(result)
    assert document(results[2]) == cli_json("info", index=index)
    assert f"no index in {index}" in errlog.read_text(encoding="utf-8")


def test_stdout_carries_only_protocol_messages(sample_index: Path) -> None:
    """Read as bytes, not through the SDK: every line the server writes to stdout is a JSON-RPC message, even while
    it loads the index and logs; it ends with status 0 when the client closes its stdin."""
    messages: list[dict[str, Any]] = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "info", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "ask", "arguments": {"k": 0}}},
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "search", "mcp", "--index", str(sample_index)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **OFFLINE},
    )
    assert proc.stdin is not None and proc.stdout is not None
    replies = []
    try:
        for message in messages:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
            if "id" in message:  # a request: wait for its reply before the next one
                replies.append(json.loads(proc.stdout.readline()))
        proc.stdin.close()
        rest, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert rest == ""
    assert all(reply["jsonrpc"] == "2.0" for reply in replies)
    assert [reply["id"] for reply in replies] == [1, 2, 3]
    assert replies[1]["result"]["structuredContent"] == cli_json("info", index=sample_index)
    assert replies[2]["result"]["isError"] is True  # k=0 and no question: refused, not a crash
    assert "answering from gen-" in stderr


# ---- over HTTP ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def http_server(index: Path, *args: str) -> Iterator[tuple[str, list[str], subprocess.Popen[str]]]:
    """`ytnotes mcp --http --port 0` as a real process: yields its URL and stderr lines so far; stops it with SIGINT."""
    cmd = [sys.executable, "-m", "search", "mcp", "--http", "--port", "0", "--index", str(index), *args]
    with server_started(cmd, {**os.environ, **OFFLINE}, r"Serving MCP at (http://\S+) ") as started:
        yield started


def test_http_transport_answers_on_loopback_and_refuses_other_host_names(sample_index: Path) -> None:
    item = EXPECTATIONS["ask"][0]
    got: list[CallToolResult] = []
    with http_server(sample_index) as (url, lines, proc):
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/mcp", url)

        async def test() -> None:
            async with Client(url) as client:
                assert {tool.name for tool in (await client.list_tools()).tools} == {"ask", "locate", "info"}
                got.append(await client.call_tool("ask", {"question": item["q"]}))
                got.append(await client.call_tool("ask", {"question": item["q"], "k": 99}))

        run(test)
        # A page elsewhere whose name was made to resolve to 127.0.0.1 (DNS rebinding) cannot read the notes.
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        headers = {"accept": "application/json, text/event-stream", "host": "attacker.example"}
        refused = httpx.post(url, json=initialize, headers=headers, timeout=30)
        assert refused.status_code == 400 and "Host" in refused.json()["detail"]
    assert proc.returncode == 0, "\n".join(lines)
    assert document(got[0]) == cli_json("ask", item["q"], index=sample_index)
    assert got[1].is_error and "k must be a whole number from 1 to 50, not 99" in text(got[1])


def test_mcp_command_checks_its_options(sample_index: Path) -> None:
    proc = run_cli("mcp", "--port", "9000", index=sample_index)
    assert proc.returncode == 1 and "--host and --port are for --http" in proc.stderr
    help_text = run_cli("mcp", "--help").stdout
    assert all(option in help_text for option in ("--index", "--http", "--host", "--port"))


def test_help_does_not_import_the_mcp_sdk() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['ytnotes', '--help']\n"
        "from search import cli\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'mcp', 'mcp_types'} or m == 'search.mcp_server'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "mcp" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"
