"""Shared fixtures: the real CLI in a subprocess, the bundled sample notes, and the shared corpus."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests stop real processes with SIGINT, as Ctrl-C does. A suite started in the background by a non-interactive
# shell inherits SIGINT ignored, and so would every process it starts (Python then installs no KeyboardInterrupt
# handler): Ctrl-C's own behaviour would go untested, and watch and serve would not stop. Handled, not ignored,
# SIGINT is reset to its default in each child.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
SAMPLE_NOTES = REPO / "search" / "sample_notes"
SHARED_NOTES = REPO.parent / "shared" / "corpus" / "notes"
EXPECTATIONS = json.loads((Path(__file__).parent / "sample_expectations.json").read_text(encoding="utf-8"))


def run_cli(
    *args: str,
    index: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = False,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `ytnotes` as a subprocess with the interpreter running the tests (in ``cwd``: the repository is put on
    its PYTHONPATH)."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    full_env.pop("YTNOTES_INDEX", None)
    full_env.pop("YTNOTES_NOTES", None)
    if env:
        full_env.update(env)
    cmd = [sys.executable, "-m", "search", *args]
    if index is not None:
        cmd += ["--index", str(index)]
    if cwd is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=600, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="session", autouse=True)
def user_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tests' own home, data and cache folders: nothing is written to the real ones. The model cache is
    shared by the whole session (one export for every index), as it is by one user's indexes; a test that
    damages or times the export passes its own YTNOTES_CACHE."""
    root = tmp_path_factory.mktemp("user")
    for name, sub in (("HOME", "home"), ("XDG_DATA_HOME", "data"), ("XDG_CACHE_HOME", "cache")):
        (root / sub).mkdir()
        os.environ[name] = str(root / sub)
    for name in ("YTNOTES_INDEX", "YTNOTES_NOTES", "YTNOTES_CACHE", "YTNOTES_MODEL"):
        os.environ.pop(name, None)
    return root


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the bundled sample notes, built once by the real CLI with the real model."""
    index = tmp_path_factory.mktemp("sample") / "index"
    run_cli("build", index=index, check=True)
    return index


@pytest.fixture(scope="session")
def shared_notes() -> Path:
    if not SHARED_NOTES.is_dir():
        pytest.skip(f"the shared corpus is not beside the repo ({SHARED_NOTES} is missing)")
    return SHARED_NOTES


def spawned_children(parent: int) -> set[int]:
    """The processes multiprocessing started afresh ("spawn") for a process: the server's workers, a first
    build's model export (not multiprocessing's resource tracker). Read from /proc (Linux)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                found.add(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


@contextlib.contextmanager
def server_started(
    cmd: list[str], env: dict[str, str], announce: str, stdout: int | None = None
) -> Iterator[tuple[str, list[str], subprocess.Popen[str]]]:
    """A server as a real process: waits for the stderr line matching ``announce`` (its group 1 is the address),
    yields the address, the stderr lines so far (the list grows while it runs) and the process; stops it with
    SIGINT, as Ctrl-C does (killed if it has not ended 20 s later)."""
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    started: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if match := re.match(announce, line):
                started.put(match.group(1))
        started.put(None)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        try:
            url = started.get(timeout=60)
        except queue.Empty:
            url = None
        if url is None:
            raise AssertionError(f"{cmd} did not start:\n" + "\n".join(lines))
        yield url, lines, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(timeout=10)
