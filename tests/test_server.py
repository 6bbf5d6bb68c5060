"""`ytnotes serve`: the JSON API against real indexes of the sample notes (FastAPI's TestClient in process, and the
real `ytnotes serve` process over loopback), the hot swap under load, the command's own behaviour, `ask --open`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import EXPECTATIONS, SAMPLE_NOTES, run_cli, server_started, spawned_children
from search import store
from search.answering import IndexHolder
from search.errors import YtnotesError
from search.server import LOOPBACK_NAMES, STATIC, create_app, exposure_warning

#: A note none of the sample notes resembles, added to force a new generation and recognise answers from it.
NEW_NOTE = """---
title: The quokka umbrella
videoId: Quokka_0042
---

From: [[quokkatv]]

## Market day

<a class="yt-timestamp" data-t="00:04:02">[00:04:02]</a> The zorbulating quokka always carries a tangerine umbrella
to the harbour market.
"""
NEW_QUESTION = "What does the zorbulating quokka carry to the harbour market?"
NEW_NOTE_PATH = "quokka/Quokka_0042-umbrella.md"


@pytest.fixture(scope="module")
def client(sample_index: Path) -> TestClient:
    return TestClient(create_app(sample_index))


def cli_json(*args: str, index: Path) -> Any:
    return json.loads(run_cli(*args, "--json", index=index, check=True).stdout)


# ---- the endpoints ---------------------------------------------------------------------------------------------


def test_healthz_names_the_live_generation(client: TestClient, sample_index: Path) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "generation": (sample_index / store.CURRENT).read_text(encoding="utf-8").strip(),
    }


def test_info_is_the_cli_document(client: TestClient, sample_index: Path) -> None:
    response = client.get("/api/info")
    assert response.status_code == 200
    assert response.json() == cli_json("info", index=sample_index)


def test_ask_is_the_cli_document(client: TestClient, sample_index: Path) -> None:
    item = EXPECTATIONS["ask"][1]
    response = client.get("/api/ask", params={"q": item["q"]})
    assert response.status_code == 200
    data = response.json()
    assert data == cli_json("ask", item["q"], index=sample_index)
    top = data["results"][0]
    assert (top["note"], top["video_id"], top["seconds"]) == (item["note"], item["video"], item["t"])
    assert top["url"] == f"https://www.youtube.com/watch?v={item['video']}&t={item['t']}s"
    assert data["answer"] == {key: value for key, value in top.items() if key not in ("moments", "notes")}


def test_ask_k_channel_and_video(client: TestClient, sample_index: Path) -> None:
    question = "what happens when you lose sleep?"
    data = client.get("/api/ask", params={"q": question, "k": 2}).json()
    assert (data["k"], len(data["results"])) == (2, 2)
    assert [r["rank"] for r in data["results"]] == [1, 2]

    data = client.get("/api/ask", params={"q": question, "channel": "STANFORD", "k": 50}).json()
    assert data["channel"] == "STANFORD" and data["results"]
    assert {r["video_id"] for r in data["results"]} == {"UF8uR6Z6KLc"}

    data = client.get("/api/ask", params={"q": question, "video": "5MuIMqhT8DM"}).json()
    assert data["video"] == "5MuIMqhT8DM"
    assert [r["video_id"] for r in data["results"]] == ["5MuIMqhT8DM"]
    assert data == cli_json("ask", question, "--video", "5MuIMqhT8DM", index=sample_index)


def test_locate_is_the_cli_document(client: TestClient, sample_index: Path) -> None:
    claim = "the heaviness of being successful was replaced by the lightness of being a beginner"
    response = client.get("/api/locate", params={"q": claim})
    assert response.status_code == 200
    data = response.json()
    assert data == cli_json("locate", claim, index=sample_index)
    assert data["found"] is True and data["claim"] == claim
    assert data["result"]["video_id"] == "UF8uR6Z6KLc"
    assert "lightness of being a beginner" in data["result"]["sentence"]


def test_locate_not_found_is_still_an_answer(client: TestClient) -> None:
    response = client.get(
        "/api/locate", params={"q": "Penguins run the bakery on the third moon of Neptune."}
    )
    assert response.status_code == 200
    data = response.json()
    assert data["found"] is False
    assert data["confidence"] < data["threshold"]
    assert data["result"] is not None  # the closest sentence, as the CLI gives it


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("/api/ask", {}, "q is required: the question"),
        ("/api/ask", {"q": ""}, "the question is empty"),
        ("/api/ask", {"q": "   \t "}, "the question is empty"),
        ("/api/ask", {"q": "x" * 1001}, "the question is 1001 characters; keep it under 1,000"),
        ("/api/ask", {"q": "sleep", "k": "0"}, "k must be a whole number from 1 to 50, not '0'"),
        ("/api/ask", {"q": "sleep", "k": "51"}, "k must be a whole number from 1 to 50, not '51'"),
        ("/api/ask", {"q": "sleep", "k": "-3"}, "k must be a whole number from 1 to 50"),
        ("/api/ask", {"q": "sleep", "k": "five"}, "k must be a whole number from 1 to 50, not 'five'"),
        ("/api/ask", {"q": "sleep", "video": "nope"}, "video 'nope' is not a YouTube video id"),
        ("/api/ask", {"q": "sleep", "video": "AAAAAAAAAAA"}, "no notes about video AAAAAAAAAAA"),
        (
            "/api/ask",
            {"q": "sleep", "channel": "nobody"},
            "no notes from channel 'nobody' (the index holds notes from 10 channels)",
        ),
        ("/api/ask", {"q": "sleep", "channel": "tedd"}, "no notes from channel 'tedd'; did you mean 'ted'?"),
        ("/api/locate", {}, "q is required: the claim or quote"),
        ("/api/locate", {"q": " "}, "the claim is empty"),
        ("/api/locate", {"q": "y" * 1500}, "the claim is 1500 characters"),
    ],
)
def test_invalid_input_is_a_422_that_says_why(
    client: TestClient, path: str, params: dict[str, str], says: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"detail"}
    assert says in response.json()["detail"]


@pytest.mark.parametrize(
    "question",
    [
        'she said "stay hungry" AND NOT foolish*',
        "NEAR(sleep heart) OR ^attention -- ; DROP TABLE notes",
        "¿Por qué dejó la universidad? 为什么 🧠",
        "?!…",
        "a" * 1000,
        "\x00 sleep \x1f",
    ],
)
def test_odd_questions_get_answers(client: TestClient, question: str) -> None:
    for path in ("/api/ask", "/api/locate"):
        response = client.get(path, params={"q": question})
        assert response.status_code == 200, response.text
        assert response.json().get("question", response.json().get("claim")) == question


def test_empty_filters_mean_no_filter(client: TestClient) -> None:
    data = client.get("/api/ask", params={"q": "sleep", "channel": "", "video": ""}).json()
    assert (data["channel"], data["video"]) == (None, None) and data["results"]


# ---- the page and its headers ----------------------------------------------------------------------------------


def test_page_and_assets_come_from_ytnotes(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<input id="q"' in page.text and 'src="/static/app.js"' in page.text
    for name, kind in (("app.js", "javascript"), ("app.css", "text/css"), ("favicon.svg", "image/svg+xml")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    # No CDN, no font or script host: the only address the page itself may load is the YouTube embed.
    allowed = (
        "https://www.youtube-nocookie.com/embed/",
        "https://www.youtube.com/watch",
        "http://www.w3.org/2000/svg",
    )
    for path in STATIC.iterdir():
        for url in re.findall(r"https?://[^\s\"'`)]+", path.read_text(encoding="utf-8")):
            assert url.startswith(allowed), f"{path.name} refers to {url}"
    # The note text is only ever put in the page as text.
    script = (STATIC / "app.js").read_text(encoding="utf-8")
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", script)


def test_security_headers(client: TestClient) -> None:
    for path in ("/", "/api/info", "/static/app.js", "/api/ask?k=0"):
        headers = client.get(path).headers
        csp = dict(
            part.strip().split(" ", 1)
            for part in headers["content-security-policy"].split(";")
            if part.strip()
        )
        assert csp["default-src"] == "'none'"
        assert (
            csp["script-src"] == "'self'" and csp["style-src"] == "'self'" and csp["connect-src"] == "'self'"
        )
        assert csp["frame-src"] == "https://www.youtube-nocookie.com"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "strict-origin-when-cross-origin"


def test_no_docs_pages_from_a_cdn(client: TestClient) -> None:
    assert client.get("/docs").status_code == 404
    schema = client.get("/api/openapi.json").json()
    assert set(schema["paths"]) == {"/api/ask", "/api/locate", "/api/info", "/healthz"}


def test_loopback_server_refuses_other_host_names(sample_index: Path) -> None:
    app = create_app(sample_index, hosts=LOOPBACK_NAMES)
    for base in ("http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"):
        assert TestClient(app, base_url=base).get("/healthz").status_code == 200, base
    # A page on another site whose name was made to resolve to 127.0.0.1 (DNS rebinding) cannot read the notes.
    response = TestClient(app, base_url="http://attacker.example:8765").get("/api/ask?q=sleep")
    assert response.status_code == 400
    assert "Host" in response.json()["detail"]
    assert "content-security-policy" in response.headers


def test_exposure_warning_only_off_loopback() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert exposure_warning(host, 8765) is None, host
    for host in ("0.0.0.0", "::", "192.168.1.20", "my-laptop.local"):
        warning = exposure_warning(host, 8765)
        assert warning is not None and "read your notes" in warning and host in warning


# ---- the hot swap ------------------------------------------------------------------------------------------------


def copy_of_sample(tmp_path: Path, sample_index: Path) -> tuple[Path, Path]:
    """A writable notes folder and its index (a copy of the sample index: the next build is incremental)."""
    notes, index = tmp_path / "notes", tmp_path / "index"
    shutil.copytree(SAMPLE_NOTES, notes)
    shutil.copytree(sample_index, index)
    return notes, index


def add_note(notes: Path, rel: str, text: str) -> None:
    (notes / rel).parent.mkdir(parents=True, exist_ok=True)
    (notes / rel).write_text(text, encoding="utf-8")


def test_holder_swaps_in_a_new_build_and_old_index_keeps_answering(
    tmp_path: Path, sample_index: Path
) -> None:
    notes, index = copy_of_sample(tmp_path, sample_index)
    holder = IndexHolder(index)
    old = holder.get()
    assert holder.get() is old  # nothing changed: the same object, nothing reopened
    assert old.answer(NEW_QUESTION)[0].hit.note != NEW_NOTE_PATH

    add_note(notes, NEW_NOTE_PATH, NEW_NOTE)
    run_cli("build", str(notes), index=index, check=True)
    new = holder.get()
    assert new is not old and new.generation != old.generation
    assert holder.generation == new.generation.name == (index / store.CURRENT).read_text().strip()
    assert new.encoder is old.encoder  # the model stays loaded across builds with the same model
    top = new.answer(NEW_QUESTION)[0].hit
    assert (top.note, top.video_id, top.seconds) == (NEW_NOTE_PATH, "Quokka_0042", 242)

    # A request that got the old index before the swap finishes on it, even once a later build has deleted its
    # folder (a build keeps only the live generation and the one before).
    released_name = new.generation.name
    add_note(notes, "quokka/second.md", NEW_NOTE.replace("Quokka_0042", "Quokka_0043"))
    run_cli("build", str(notes), index=index, check=True)
    released = weakref.ref(new)
    del new
    assert holder.get().generation.name not in (old.generation.name, released_name)
    # A replaced index that no request uses any more is let go (its SQLite file closed), not kept forever.
    assert released() is None
    assert not old.generation.exists()
    assert old.answer(NEW_QUESTION)[0].hit.note != NEW_NOTE_PATH
    assert old.locate(
        "the heaviness of being successful was replaced by the lightness of being a beginner"
    ).found


def test_a_generation_that_cannot_be_opened_leaves_the_old_one_answering(
    tmp_path: Path, sample_index: Path
) -> None:
    _, index = copy_of_sample(tmp_path, sample_index)
    live = (index / store.CURRENT).read_text(encoding="utf-8").strip()
    client = TestClient(create_app(index))
    (index / "gen-broken").mkdir()
    (index / "gen-broken" / store.MANIFEST).write_text("{ not json", encoding="utf-8")
    (index / store.CURRENT).write_text("gen-broken\n", encoding="utf-8")
    assert client.get("/api/ask", params={"q": "sleep"}).status_code == 200
    health = client.get("/healthz").json()
    assert health["generation"] == live and "gen-broken" in health["warning"]

    (index / store.CURRENT).unlink()
    assert client.get("/api/locate", params={"q": "sleep"}).status_code == 200
    assert "CURRENT" in client.get("/healthz").json()["warning"]

    (index / store.CURRENT).write_text(live + "\n", encoding="utf-8")
    assert client.get("/healthz").json() == {"status": "ok", "generation": live}


# ---- the real server process -----------------------------------------------------------------------------------


@contextlib.contextmanager
def serving(index: Path, *args: str) -> Iterator[tuple[str, list[str]]]:
    """`ytnotes serve --index INDEX --port 0 ARGS` as a real process: yields its address and its stderr lines so
    far (the list grows while the server runs); stops it with SIGINT, as Ctrl-C does, and checks it exits 0."""
    with server_process(index, *args) as (url, lines, proc):
        yield url, lines
    assert proc.returncode == 0, "\n".join(lines)


@contextlib.contextmanager
def server_process(index: Path, *args: str) -> Iterator[tuple[str, list[str], subprocess.Popen[str]]]:
    """`serving`, yielding the process as well, and not checking how it ended."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("YTNOTES_INDEX", None)
    cmd = [sys.executable, "-m", "search", "serve", "--index", str(index), "--port", "0", *args]
    with server_started(cmd, env, r"Serving (http://\S+?)/? ", stdout=subprocess.PIPE) as started:
        yield started


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_answers_over_loopback_and_stops_on_ctrl_c(sample_index: Path, workers: str) -> None:
    """Answering in the server's process, or in worker processes: SIGINT (Ctrl-C) stops them all, status 0."""
    with server_process(sample_index, "--workers", workers) as (url, lines, proc):
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert not any("warning" in line for line in lines)
        item = EXPECTATIONS["ask"][1]
        data = httpx.get(f"{url}/api/ask", params={"q": item["q"]}, timeout=30).json()
        assert (data["results"][0]["video_id"], data["results"][0]["seconds"]) == (item["video"], item["t"])
        page = httpx.get(f"{url}/", timeout=30)
        assert page.status_code == 200 and "content-security-policy" in page.headers
        children = spawned_children(proc.pid)
        assert len(children) == (0 if workers == "1" else 2)
    assert proc.returncode == 0, "\n".join(lines)
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)


def test_serve_swaps_index_under_load_without_an_error(tmp_path: Path, sample_index: Path) -> None:
    """Clients keep asking while a real build replaces the index: every request is answered (from the old index
    or the new one), and once the build is done the server answers from the new one without a restart."""
    notes, index = copy_of_sample(tmp_path, sample_index)
    with serving(index) as (url, lines), httpx.Client(base_url=url, timeout=60) as http:
        before = http.get("/healthz").json()["generation"]
        assert http.get("/api/ask", params={"q": NEW_QUESTION}).json()["results"][0]["note"] != NEW_NOTE_PATH

        answers: list[tuple[int, str | None]] = []
        build_done = threading.Event()

        def keep_asking(path: str, params: dict[str, str]) -> None:
            with httpx.Client(base_url=url, timeout=60) as own:
                after = 0
                while after < 5:  # until five requests after the build has finished
                    if build_done.is_set():
                        after += 1
                    response = own.get(path, params=params)
                    body = response.json()
                    top = (
                        (body.get("results") or [body.get("result") or {}])[0] if response.is_success else {}
                    )
                    answers.append((response.status_code, top.get("note")))

        clients = [
            threading.Thread(target=keep_asking, args=("/api/ask", {"q": NEW_QUESTION})),
            threading.Thread(target=keep_asking, args=("/api/ask", {"q": NEW_QUESTION, "k": "50"})),
            threading.Thread(target=keep_asking, args=("/api/locate", {"q": "a tangerine umbrella"})),
        ]
        for thread in clients:
            thread.start()
        add_note(notes, NEW_NOTE_PATH, NEW_NOTE)
        build = run_cli("build", str(notes), index=index)
        build_done.set()
        for thread in clients:
            thread.join(timeout=120)
        assert build.returncode == 0, build.stderr

        assert answers and {status for status, _ in answers} == {200}, answers
        notes_seen = [note for _, note in answers]
        assert NEW_NOTE_PATH in notes_seen and any(n != NEW_NOTE_PATH for n in notes_seen)
        after = http.get("/healthz").json()["generation"]
        assert after != before and after == (index / store.CURRENT).read_text().strip()
        top = http.get("/api/ask", params={"q": NEW_QUESTION}).json()["results"][0]
        assert (top["note"], top["seconds"], top["url"]) == (
            NEW_NOTE_PATH,
            242,
            "https://www.youtube.com/watch?v=Quokka_0042&t=242s",
        )
        assert http.get("/api/info").json()["notes"] == 18
    assert any(f"now answering from {after}" in line for line in lines)


def _wait_for(condition: Any, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_serve_workers_share_questions_survive_a_dead_one_and_end_with_the_server(sample_index: Path) -> None:
    """With --workers 2: questions asked at once are answered by both processes; when one is killed, the
    questions go on being answered (by the other, then by a new process in its place); when the server itself is killed with SIGKILL (nothing
    can clean up), its workers end too."""
    item = EXPECTATIONS["ask"][1]

    def top(url: str) -> tuple[str, int]:
        first = httpx.get(f"{url}/api/ask", params={"q": item["q"]}, timeout=60).json()["results"][0]
        return first["video_id"], first["seconds"]

    with server_process(sample_index, "--workers", "2") as (url, lines, proc):
        assert "2 worker processes" in lines[-1]
        workers = spawned_children(proc.pid)
        assert len(workers) == 2
        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(lambda _: top(url), range(8))) == {(item["video"], item["t"])}
        busy = {pid: _cpu_seconds(pid) for pid in workers}
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: top(url), range(40)))
        assert all(_cpu_seconds(pid) > busy[pid] for pid in workers)  # both answered some

        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        assert top(url) == (item["video"], item["t"])  # the other process answers meanwhile
        assert any(f"an answering process ended (pid {killed})" in line for line in lines)
        assert _wait_for(lambda: len(spawned_children(proc.pid) - {killed}) == 2, 30)
        replaced = spawned_children(proc.pid)
        assert killed not in replaced and max(workers) in replaced  # only the one that ended is replaced
        assert set(ThreadPoolExecutor(4).map(lambda _: top(url), range(8))) == {(item["video"], item["t"])}

        os.kill(proc.pid, signal.SIGKILL)
        assert _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in replaced), 20), replaced
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=5)
    assert proc.returncode == -signal.SIGKILL


def test_pool_worker_answers_the_next_question_not_the_one_given_up(sample_index: Path) -> None:
    """A request given up while its process answers it (a client that went away): the process comes back to the
    pool only once it has replied, and the next question gets its own answer, not the late one. A process that
    ends while it answers: the question fails over to another."""
    import asyncio

    from search.answering import WorkerPool

    def ask(q: str) -> dict[str, Any]:
        return {"q": q, "k": 10, "channel": None, "video": None}

    async def scenario(pool: WorkerPool) -> list[str]:
        first = asyncio.ensure_future(pool("ask", ask("calligraphy class Macintosh")))
        await asyncio.sleep(0.002)  # sent to the process, not answered yet
        first.cancel()
        second = json.loads(await pool("ask", ask("why do we sleep")))
        third = json.loads(await pool("ask", ask("a tangerine umbrella")))
        # Errors cross the pipe as data: a user's error as its own class (the API's 422), any other as its text.
        with pytest.raises(YtnotesError, match="-k must be between 1 and 50, not 99"):
            await pool("ask", {**ask("sleep"), "k": 99})
        with pytest.raises(RuntimeError, match="ValueError: unknown request 'nope'"):
            await pool("nope", {})
        return [second["question"], third["question"]]

    async def handed_over_then_given_up(pool: WorkerPool) -> bool:
        # A request waiting for a worker is handed one, and is given up before it resumes: the worker is not lost.
        (worker,) = pool._free
        pool._free.clear()
        waiting = asyncio.ensure_future(pool._take())
        await asyncio.sleep(0)
        pool._give_back(worker)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        return pool._free == [worker]

    pool = WorkerPool(sample_index, 1)
    try:
        assert asyncio.run(scenario(pool)) == ["why do we sleep", "a tangerine umbrella"]
        assert asyncio.run(handed_over_then_given_up(pool))
    finally:
        pool.close()

    async def failover(pool: WorkerPool) -> dict[str, Any]:
        # Both processes have answered once, so the event loop watches their pipes.
        await asyncio.gather(pool("health", {}), pool("health", {}))
        busy = asyncio.ensure_future(pool("ask", ask("why do we sleep")))
        await asyncio.sleep(0.002)
        held = [w for w in pool._workers if w not in pool._free]
        assert len(held) == 1
        os.kill(held[0].process.pid, signal.SIGKILL)
        return dict(json.loads(await busy))

    pool = WorkerPool(sample_index, 2)
    try:
        assert asyncio.run(failover(pool))["question"] == "why do we sleep"
    finally:
        pool.close()


def test_serve_stopped_by_sigterm_to_its_process_group_ends_cleanly(sample_index: Path) -> None:
    """A service manager's SIGTERM reaches the server and its workers at once: the server exits 0, with no
    traceback or leaked-resource warning (uvicorn raises SIGTERM again once it has stopped; it used to kill the
    server before the pool was shut down), and no worker is left."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "search",
        "serve",
        "--index",
        str(sample_index),
        "--port",
        "0",
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    assert proc.stderr is not None
    first = proc.stderr.readline()
    url = re.match(r"Serving (http://\S+?)/? ", first)
    assert url, first
    assert httpx.get(f"{url.group(1)}/healthz", timeout=30).json()["status"] == "ok"
    workers = spawned_children(proc.pid)
    assert len(workers) == 2
    os.killpg(proc.pid, signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 0, rest
    assert rest == "", rest
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_serve_warns_when_others_can_connect(sample_index: Path) -> None:
    with serving(sample_index, "--host", "0.0.0.0") as (url, lines):
        assert "anyone who can reach this machine" in lines[0] and "read your notes" in lines[0]
        # Bound to every address: any Host name is answered (it is meant to be reached by other names).
        assert httpx.get(f"{url}/healthz", headers={"host": "my-laptop.local"}, timeout=30).status_code == 200


def test_serve_without_an_index_says_how_to_make_one(tmp_path: Path) -> None:
    proc = run_cli("serve", "--port", "0", index=tmp_path / "none")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: no index in") and "ytnotes build" in proc.stderr


def test_serve_on_a_busy_port_says_so(sample_index: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_cli("serve", "--port", str(port), index=sample_index)
    assert proc.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in proc.stderr and "Traceback" not in proc.stderr


def test_help_does_not_import_the_web_stack() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['ytnotes', '--help']\n"
        "from search import cli\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "web = {'fastapi', 'uvicorn', 'starlette', 'pydantic', 'httpx'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in web))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "serve" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    help_text = run_cli("serve", "--help").stdout
    assert "--host" in help_text and "--port" in help_text and "--index" in help_text


# ---- ask --open --------------------------------------------------------------------------------------------------


def test_ask_open_opens_the_top_moment(tmp_path: Path, sample_index: Path) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{opened}"\n', encoding="utf-8")
    browser.chmod(0o755)
    item = EXPECTATIONS["ask"][3]
    proc = run_cli("ask", item["q"], "--open", "--json", index=sample_index, env={"BROWSER": str(browser)})
    assert proc.returncode == 0, proc.stderr
    url = f"https://www.youtube.com/watch?v={item['video']}&t={item['t']}s"
    assert json.loads(proc.stdout)["results"][0]["url"] == url
    assert opened.read_text(encoding="utf-8").splitlines() == [url]
    assert f"opening {url}" in proc.stderr


def test_ask_open_with_nothing_to_open(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    add_note(notes, "plain.md", "---\ntitle: No video\n---\n\nA note about marmalade without any video id.\n")
    run_cli("build", str(notes), index=tmp_path / "index", check=True)
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> "{opened}"\n', encoding="utf-8")
    browser.chmod(0o755)
    proc = run_cli("ask", "marmalade", "--open", index=tmp_path / "index", env={"BROWSER": str(browser)})
    assert proc.returncode == 0
    assert "nothing to open: the top result's note has no videoId" in proc.stderr
    assert not opened.exists()
