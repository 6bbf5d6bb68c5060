"""Living with ytnotes (issue 13): the version, help and completion, one index per user found from any folder,
an index that remembers its notes folder, one exported model per user cache, and `ytnotes watch`. Real CLI
processes on real files; the home, data and cache folders are the tests' own (conftest.user_folders)."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE_NOTES, run_cli
from search import store

COMMANDS = ["build", "ask", "locate", "info", "serve", "watch", "mcp"]
TWO_NOTES = sorted(SAMPLE_NOTES.glob("stanford/*.md"))[:1] + sorted(SAMPLE_NOTES.glob("ted/*.md"))[:1]


def notes_folder(path: Path, notes: list[Path] = TWO_NOTES) -> Path:
    path.mkdir(parents=True)
    for note in notes:
        shutil.copy(note, path / note.name)
    return path


# --- version, help, completion -------------------------------------------------------------------------------


def test_version_and_short_help() -> None:
    expected = f"ytnotes {version('ytnotes')}"
    for flag in ("--version", "-V"):
        proc = run_cli(flag, check=True)
        assert proc.stdout.strip() == expected
    assert run_cli("-h", check=True).stdout == run_cli("--help", check=True).stdout
    assert run_cli("ask", "-h", check=True).stdout == run_cli("ask", "--help", check=True).stdout


def test_shell_completion_script_and_completions() -> None:
    # Typer's --show-completion names no shell: it detects the one that started the process, which a test run may
    # not have (pytest started from a script, or in the background, passed only when its parent was bash). Typer's
    # own switch for tests makes it take the shell as its value.
    detect_off = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    script = run_cli("--show-completion", "bash", env=detect_off, check=True).stdout
    assert "_YTNOTES_COMPLETE" in script and "complete " in script
    env = {"_YTNOTES_COMPLETE": "complete_bash", "COMP_WORDS": "ytnotes wa", "COMP_CWORD": "1"}
    assert run_cli(env=env, check=True).stdout.split() == ["watch"]
    env = {"_YTNOTES_COMPLETE": "complete_bash", "COMP_WORDS": "ytnotes build --rep", "COMP_CWORD": "2"}
    assert run_cli(env=env, check=True).stdout.split() == ["--replace"]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_at_80_columns_is_not_cut_off_and_shows_examples(command: str) -> None:
    proc = run_cli(*([command] if command else []), "--help", env={"COLUMNS": "80"}, check=True)
    lines = proc.stdout.splitlines()
    cut = [line for line in lines[1:] if line.rstrip().endswith(("...", "…"))]  # not "Usage: … [ARGS]..."
    assert not cut, cut
    examples = lines[lines.index("  Examples:") + 1 :]
    assert examples and all(line.strip().startswith(f"ytnotes {command}".strip()) for line in examples)


# --- one index per user --------------------------------------------------------------------------------------


def test_the_default_index_is_the_users_and_found_from_any_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    notes = notes_folder(tmp_path / "notes")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"XDG_DATA_HOME": str(data)}
    run_cli("build", str(notes), env=env, check=True, cwd=notes)
    assert (data / "ytnotes" / "index" / store.CURRENT).is_file()
    proc = run_cli("ask", "why did he drop out of college", "--json", env=env, check=True, cwd=elsewhere)
    assert json.loads(proc.stdout)["results"][0]["path"].startswith(str(notes))
    info = json.loads(run_cli("info", "--json", env=env, check=True, cwd=elsewhere).stdout)
    assert info["index"] == str(data / "ytnotes" / "index")
    assert not (notes / "index").exists() and not (elsewhere / "index").exists()


def test_a_missing_index_names_its_absolute_path_and_both_ways_out(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # XDG_DATA_HOME empty: the XDG default under $HOME.
    proc = run_cli("ask", "anything", env={"HOME": str(home), "XDG_DATA_HOME": ""}, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    message = proc.stderr.strip()
    assert str(home / ".local" / "share" / "ytnotes" / "index") in message
    assert "ytnotes build NOTES_DIR" in message and "--index" in message and "YTNOTES_INDEX" in message
    proc = run_cli("info", env={"YTNOTES_INDEX": "relative/index"}, cwd=tmp_path)
    assert proc.returncode == 1 and str(tmp_path / "relative" / "index") in proc.stderr


# --- an index remembers its notes folder ---------------------------------------------------------------------


def test_an_index_remembers_its_notes_folder_and_refuses_another_without_replace(tmp_path: Path) -> None:
    index = tmp_path / "index"
    proc = run_cli("build", index=index, check=True)
    assert "a new index" in proc.stderr and "bundled sample notes" in proc.stderr
    assert json.loads(run_cli("info", "--json", index=index, check=True).stdout)["notes_dir"] == str(
        SAMPLE_NOTES.resolve()
    )

    mine = notes_folder(tmp_path / "mine")
    proc = run_cli(
        "build", str(mine), index=index, check=True
    )  # the samples are no one's notes: no --replace
    assert f"now holds {mine} instead of {SAMPLE_NOTES.resolve()}" in proc.stderr

    note = mine / TWO_NOTES[0].name
    note.write_text(note.read_text(encoding="utf-8") + "\nA new line about the garage [00:20:00].\n", "utf-8")
    proc = run_cli("build", index=index, check=True)  # no folder: the index's own
    assert "1 notes read, 1 unchanged" in proc.stderr

    other = notes_folder(tmp_path / "other", TWO_NOTES[1:])
    live = store.current_generation(index)
    proc = run_cli("build", str(other), index=index)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"holds the notes of {mine}, not {other}" in proc.stderr and "--replace" in proc.stderr
    assert store.current_generation(index) == live
    proc = run_cli("build", index=index, env={"YTNOTES_NOTES": str(other)})
    assert proc.returncode == 1 and "--replace" in proc.stderr

    proc = run_cli("build", str(other), "--replace", index=index, check=True)
    assert f"now holds {other} instead of {mine}" in proc.stderr
    info = json.loads(run_cli("info", "--json", index=index, check=True).stdout)
    assert (info["notes_dir"], info["notes"]) == (str(other), 1)

    shutil.move(other, tmp_path / "moved")
    proc = run_cli("build", index=index)
    assert proc.returncode == 1 and f"{other}, is gone" in proc.stderr and "--replace" in proc.stderr


# --- one exported model per user cache -----------------------------------------------------------------------


def test_indexes_share_one_export_made_once_by_racing_first_builds(tmp_path: Path) -> None:
    """Two first builds of two indexes at once on an empty model cache: both succeed, one exports while the
    other waits, and the cache holds one whole export and nothing half-written. The indexes hold no model; a
    copy left in an index by an older ytnotes goes at its next build."""
    cache = tmp_path / "cache"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "YTNOTES_CACHE": str(cache),
    }
    notes = notes_folder(tmp_path / "notes")
    indexes = [tmp_path / "one", tmp_path / "two"]
    builds = [
        subprocess.Popen(
            [sys.executable, "-m", "search", "build", str(notes), "--index", str(index)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for index in indexes
    ]
    for build in builds:
        _, err = build.communicate(timeout=600)
        assert build.returncode == 0, err
    models = cache / "models"
    assert sorted(p.name for p in models.iterdir() if p.name != ".lock") == [
        json.loads((store.current_generation(indexes[0]) / store.MANIFEST).read_text(encoding="utf-8"))[
            "encoder"
        ]["path"].rsplit("/", 1)[-1]
    ]
    (export,) = [p for p in models.iterdir() if p.is_dir()]
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json", "encoder.json", "question"} <= {
        p.name for p in export.iterdir()
    }
    for index in indexes:
        assert sorted(p.name for p in index.iterdir()) == sorted(
            [store.CURRENT, store.LOCK, store.current_generation(index).name]
        )
        proc = run_cli("ask", "why did he drop out", "--json", index=index, env={"YTNOTES_CACHE": str(cache)})
        assert proc.returncode == 0 and json.loads(proc.stdout)["found"], proc.stderr

    legacy = indexes[0] / "encoder" / "0123456789abcdef"
    legacy.mkdir(parents=True)
    (legacy / "model.onnx").write_bytes(b"an older ytnotes' own copy")
    run_cli("build", "--full", index=indexes[0], env={"YTNOTES_CACHE": str(cache)}, check=True)
    assert not (indexes[0] / "encoder").exists()


def test_a_deleted_model_cache_is_said_and_a_plain_build_exports_it_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    index = tmp_path / "index"
    env = {"YTNOTES_CACHE": str(cache)}
    run_cli("build", str(notes_folder(tmp_path / "notes")), index=index, env=env, check=True)
    shutil.rmtree(cache)
    proc = run_cli("ask", "college", index=index, env=env)
    assert proc.returncode == 1 and "model cache" in proc.stderr and "`ytnotes build`" in proc.stderr
    assert "Index is up to date" in run_cli("build", index=index, env=env, check=True).stderr
    assert run_cli("ask", "college", index=index, env=env).returncode == 0


# --- ytnotes watch -------------------------------------------------------------------------------------------


class Watch:
    """`ytnotes watch NOTES --index INDEX` as a real process; its stderr lines are read as they come."""

    def __init__(self, notes: Path, index: Path, *options: str) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "search", "watch", str(notes), "--index", str(index), *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line.rstrip("\n"))
        self._new.put(None)

    def wait_for(self, pattern: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._new.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}:\n" + "\n".join(self.lines)) from None
            if line is None:
                raise AssertionError(f"watch ended ({self.proc.wait()}):\n" + "\n".join(self.lines))
            if re.search(pattern, line):
                return line

    def stop(self, signum: int) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=60)


@pytest.fixture
def watching(tmp_path: Path) -> Iterator[tuple[Path, Path, Watch]]:
    notes, index = notes_folder(tmp_path / "notes"), tmp_path / "index"
    watch = Watch(notes, index)
    try:
        watch.wait_for(r"^watching .* \(Ctrl-C to stop\)$")
        yield notes, index, watch
    finally:
        if watch.proc.poll() is None:
            watch.proc.kill()
            watch.proc.wait()


REBUILT = r"^\d\d:\d\d:\d\d Indexed "


def test_watch_rebuilds_once_per_change_and_ctrl_c_ends_it_cleanly(
    watching: tuple[Path, Path, Watch],
) -> None:
    notes, index, watch = watching
    first = store.current_generation(index)
    (notes / "lighthouse.md").write_text(
        "---\ntitle: The lighthouse keeper\nvideoId: abcdefghijk\n---\n\n"
        "The keeper polished the brass lens of the lighthouse every winter morning [00:03:10].\n",
        encoding="utf-8",
    )
    line = watch.wait_for(REBUILT)
    assert "Indexed 3 notes" in line and "1 notes read, 2 unchanged" in line, line
    data = json.loads(run_cli("ask", "who polished the lens", "--json", index=index, check=True).stdout)
    assert data["results"][0]["note"] == "lighthouse.md" and data["results"][0]["seconds"] == 190
    assert store.current_generation(index) != first

    (notes / "lighthouse.md").unlink()
    line = watch.wait_for(REBUILT)
    assert "Indexed 2 notes" in line and "1 removed" in line, line
    (notes / ".hidden.md").write_text("Not a note the build reads [00:01].\n", encoding="utf-8")
    time.sleep(1.5)  # a hidden file is no change: no rebuild line
    assert watch.stop(signal.SIGINT) == 0
    assert len([ln for ln in watch.lines if re.match(REBUILT, ln)]) == 3, watch.lines  # with the first build
    assert watch.lines[-1] == "stopped watching" and not any("Traceback" in ln for ln in watch.lines)
    assert not list(index.glob(".tmp-*"))


def test_watch_ends_with_status_0_on_sigterm(watching: tuple[Path, Path, Watch]) -> None:
    _, _, watch = watching
    assert watch.stop(signal.SIGTERM) == 0
    assert watch.lines[-1] == "stopped watching"


def test_a_running_serve_answers_from_each_rebuild_of_watch(watching: tuple[Path, Path, Watch]) -> None:
    import httpx
    from test_server import serving

    notes, index, watch = watching
    with serving(index, "--workers", "1") as (url, _):
        (notes / "lighthouse.md").write_text(
            "---\ntitle: The lighthouse keeper\nvideoId: abcdefghijk\n---\n\n"
            "The keeper polished the brass lens of the lighthouse every winter morning [00:03:10].\n",
            encoding="utf-8",
        )
        watch.wait_for(REBUILT)
        data = httpx.get(f"{url}/api/ask", params={"q": "who polished the lens"}, timeout=30).json()
        assert data["results"][0]["note"] == "lighthouse.md"
    assert watch.stop(signal.SIGINT) == 0
