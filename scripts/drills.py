"""Reliability drills (issue 6): kill, race, damage, starve and fuzz the real CLI on real files.

    .venv/bin/python scripts/drills.py                    # every drill (about 20 minutes on 2 busy cores)
    .venv/bin/python scripts/drills.py --quick            # small counts (about 5 minutes)
    .venv/bin/python scripts/drills.py --only kill damage --keep /tmp/drills

Each drill runs `ytnotes` as separate processes (``python -m search``) against folders it writes itself, is
bounded in runs and in time, and stops by itself. Progress goes to stderr; at the end one table goes to stdout:
drill, runs, passed, what failed. The exit status is 0 when every drill that ran passed. tests/test_drills.py
runs the drills that take under a minute, with small counts.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import os
import random
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "search" / "sample_notes"
SHARED_NOTES = REPO.parent / "shared" / "corpus" / "notes"

#: A CLI call that takes longer is killed and reported as a hang: a build of three sample notes takes 1-3 s, the
#: first build of an index (the model's export with torch) about 15 s on two busy cores.
CLI_TIMEOUT = 180.0
#: The shared corpus (322 notes) builds in about two minutes on two busy cores; a build five times slower hangs.
CORPUS_TIMEOUT = 900.0
#: Fuzz: reading, cutting and packing one note taking longer than this is a hang. A note is at most 1 MB (larger
#: ones are refused by size); the slowest notes the fuzzer makes take about a second.
NOTE_SECONDS = 10.0
#: The questions drill stops after this long even when it has not asked all its questions.
QUESTIONS_SECONDS = 1200.0

#: Two small note sets. B drops one note of A, edits one and adds one, so most questions answer differently.
NOTES_A = (
    "stanford/UF8uR6Z6KLc-connecting-the-dots-love-and-loss.md",
    "stanford/UF8uR6Z6KLc-mortality-and-stay-hungry-stay-foolish.md",
    "ted/arj7oStGLkU-master-procrastinator.md",
)
NOTES_B = (
    "stanford/UF8uR6Z6KLc-connecting-the-dots-love-and-loss.md",
    "ted/arj7oStGLkU-master-procrastinator.md",
    "gordonramsay/PUP7U5vTMM0-perfect-scrambled-eggs.md",
)
EDITED_IN_B = "ted/arj7oStGLkU-master-procrastinator.md"
ADDED_IN_B = (
    "\nUrban keeps a rubber duck named Gerald on his desk to explain deadlines to "
    '<a class="yt-timestamp" data-t="00:14:05">[00:14:05]</a>.\n'
)
#: (command, text): asked of both note sets; every answer must equal one set's answer exactly.
QUESTIONS = (
    ("ask", "Where did the Apple co-founder go for a decent free dinner each week after leaving college?"),
    ("locate", "Urban keeps a rubber duck named Gerald on his desk to explain deadlines to"),
    ("ask", "Which character wakes up when a due date is dangerously close or public embarrassment looms?"),
    ("ask", "Why should salt only be added to the eggs at the very end?"),
    ("locate", "Stay hungry. Stay foolish."),
    ("ask", "What did he ask his reflection every morning for more than three decades?"),
)

_PROGRESS = re.compile(r"^(Reading notes|Embedding)\s")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- results -------------------------------------------------------------------------------------------------


@dataclass
class Drill:
    """One row of the table: how many runs, how many passed, and what failed (one entry per problem)."""

    name: str
    runs: int = 0
    passed: int = 0
    failures: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    not_done: str | None = None

    def record(self, problems: list[str]) -> bool:
        self.runs += 1
        if problems:
            self.failures.extend(problems)
            return False
        self.passed += 1
        return True

    @property
    def ok(self) -> bool:
        return self.not_done is None and not self.failures and self.runs > 0

    def what_failed(self) -> str:
        if self.not_done is not None:
            return f"not done: {self.not_done}"
        if not self.failures:
            return "-" if self.runs else "no runs"
        counts = Counter(self.failures)
        return "; ".join(f"{n}x {msg}" if n > 1 else msg for msg, n in counts.most_common())


def table(drills: list[Drill]) -> str:
    rows = [("drill", "runs", "passed", "what failed")]
    rows += [(d.name, str(d.runs), str(d.passed), d.what_failed()) for d in drills]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for n, row in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(widths[i]) if i < 3 else c for i, c in enumerate(row)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|---|")
    return "\n".join(lines)


# --- running the CLI -----------------------------------------------------------------------------------------


@dataclass
class Run:
    """One finished (or killed) CLI process."""

    args: list[str]
    code: int | None  # None: still running at its timeout, so killed
    out: str
    err: str
    seconds: float

    def lines(self) -> list[str]:
        """stderr without progress bars and blank lines."""
        return [ln for ln in self.err.splitlines() if ln.strip() and not _PROGRESS.match(ln)]

    def error_line(self) -> str:
        errors = [ln for ln in self.lines() if ln.startswith(("error:", "internal error:"))]
        lines = errors or self.lines() or ["(nothing on stderr)"]
        return lines[0][:220]

    def data(self) -> Any:
        try:
            return json.loads(self.out)
        except ValueError:
            return None


#: The model cache the drills' indexes share (set by Workspace); an index with a folder "<index>-cache" beside
#: it uses that one instead (a first build's export, damaged model files, a model cache on a small disk).
CACHE: Path | None = None


def cache_of(index: Path | None) -> Path | None:
    """The model cache an index's commands use."""
    own = index.parent / f"{index.name}-cache" if index is not None else None
    return own if own is not None and own.is_dir() else CACHE


def cli_env(index: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for name in ("YTNOTES_INDEX", "YTNOTES_NOTES", "YTNOTES_DEBUG", "YTNOTES_CACHE"):
        env.pop(name, None)
    cache = cache_of(index)
    if cache is not None:
        env["YTNOTES_CACHE"] = str(cache)
    return env


def command(args: list[str], index: Path | None, prefix: Iterable[str] = ()) -> list[str]:
    tail = ["--index", str(index)] if index is not None else []
    if args[:1] == ["build"]:
        tail.append("--replace")  # the drills switch one index between note sets a and b
    return [*prefix, sys.executable, "-m", "search", *args, *tail]


def cli(
    args: list[str],
    index: Path | None,
    timeout: float = CLI_TIMEOUT,
    prefix: Iterable[str] = (),
    file_size_limit: int | None = None,
    memory_limit: int | None = None,
) -> Run:
    """Run `ytnotes ARGS --index INDEX` to its end (or kill it at the timeout), optionally with a limit on the
    size of the files it writes or on its memory."""

    def limit() -> None:
        if file_size_limit is not None:
            # Writes past the limit fail with EFBIG instead of killing the process with SIGXFSZ.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    started = time.monotonic()
    proc = subprocess.Popen(
        command(args, index, prefix),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=cli_env(index),
        cwd=REPO,
        start_new_session=True,
        preexec_fn=limit if file_size_limit or memory_limit else None,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()
        code = None
    return Run(args, code, out, err, time.monotonic() - started)


class Background:
    """A CLI process left running; its output goes to a file (no pipe to fill up)."""

    def __init__(self, args: list[str], index: Path, log_file: Path) -> None:
        self.args = args
        self.log_file = log_file
        with log_file.open("wb") as out:
            self.proc = subprocess.Popen(
                command(args, index),
                stdout=out,
                stderr=out,
                env=cli_env(index),
                cwd=REPO,
                start_new_session=True,
            )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> bool:
        """SIGKILL it now; True when it was still running."""
        if not self.running():
            return False
        _kill_group(self.proc.pid)
        return True

    def finish(self, timeout: float = CLI_TIMEOUT) -> Run:
        try:
            self.proc.wait(timeout=max(0.0, timeout - (time.monotonic() - self.started)))
            code: int | None = self.proc.returncode
        except subprocess.TimeoutExpired:
            _kill_group(self.proc.pid)
            self.proc.wait()
            code = None
        seconds = time.monotonic() - self.started
        text = self.log_file.read_text(encoding="utf-8", errors="replace")
        return Run(self.args, code, "", text, seconds)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def error_problems(run: Run, what: str, fix: str) -> list[str]:
    """What is wrong with a failed run's message: it must exit 1 or 2 with one error line naming the fix, and
    no traceback (a build may also print `note:` and `warning:` lines)."""
    if run.code is None:
        return [f"{what} hangs (killed after {run.seconds:.0f} s)"]
    problems = []
    if run.code not in (1, 2):
        problems.append(f"{what} exits {run.code}")
    if "Traceback" in run.err:
        problems.append(f"{what} prints a traceback")
    lines = run.lines()
    errors = [ln for ln in lines if ln.startswith(("error:", "internal error:"))]
    others = [ln for ln in lines if ln not in errors and not ln.startswith(("note:", "warning:"))]
    if len(errors) != 1 or others:
        problems.append(f"{what} does not print one error line: {' / '.join(lines)[:200]}")
    elif fix not in errors[0]:
        problems.append(f"{what} does not name `{fix}`: {errors[0][:200]}")
    return problems


# --- index folders -------------------------------------------------------------------------------------------


def live_generation(index: Path) -> str | None:
    try:
        return (index / "CURRENT").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def live_manifest(index: Path) -> dict[str, Any]:
    gen = live_generation(index)
    data: dict[str, Any] = json.loads((index / str(gen) / "manifest.json").read_text(encoding="utf-8"))
    return data


def generations(index: Path) -> set[str]:
    return {p.name for p in index.glob("gen-*")}


def leftovers(index: Path) -> list[str]:
    """What interrupted or failed builds left behind: `.tmp-*` in the index folder and in its model cache."""
    found = [p.name for p in index.glob(".tmp-*")]
    cache = cache_of(index)
    if cache is not None:
        found += [f"models/{p.name}" for p in (cache / "models").glob(".tmp-*")]
    return sorted(found)


def fingerprint(index: Path) -> dict[str, str]:
    """A hash of every file of the index except the lock (the exported model by size and inode: it is large)."""
    out = {}
    for path in sorted(index.rglob("*")):
        if not path.is_file() or path.name == ".lock":
            continue
        rel = str(path.relative_to(index))
        if rel.startswith("encoder/"):
            st = path.stat()
            out[rel] = f"{st.st_size}:{st.st_ino}:{st.st_mtime_ns}"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def model_folder(index: Path) -> Path:
    cache = cache_of(index)
    assert cache is not None
    return next(p for p in (cache / "models").iterdir() if not p.name.startswith("."))


def same(a: Any, b: Any, tol: float = 2e-3) -> bool:
    """Equal JSON values, floats within ``tol`` (a reused vector differs from a recomputed one by < 1e-5)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) <= tol
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, tol) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def other(name: str) -> str:
    return "b" if name == "a" else "a"


class Workspace:
    """A folder for drills: the two note sets, indexes, and the model cache they share."""

    def __init__(self, root: Path) -> None:
        global CACHE
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        CACHE = self.root / "cache"
        self._count = itertools.count()
        self._lock = threading.Lock()
        self._expected: dict[tuple[str, int], Any] | None = None

    def path(self, stem: str) -> Path:
        """A new, unused path in the workspace."""
        (self.root / "runs").mkdir(exist_ok=True)
        with self._lock:
            while True:  # a kept workspace may hold paths of an earlier session
                path = self.root / "runs" / f"{stem}-{next(self._count):03d}"
                if not any(path.parent.glob(f"{path.name}*")):
                    return path

    def notes(self, name: str) -> Path:
        """Note set "a" or "b" (written on first use)."""
        folder = self.root / f"notes-{name}"
        if not folder.is_dir():
            tmp = self.root / f".notes-{name}-{os.getpid()}"
            for rel in NOTES_A if name == "a" else NOTES_B:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                text = (SAMPLES / rel).read_text(encoding="utf-8")
                if name == "b" and rel == EDITED_IN_B:
                    text += ADDED_IN_B
                (tmp / rel).write_text(text, encoding="utf-8")
            os.rename(tmp, folder)
        return folder

    def note_set(self, notes_dir: object) -> str | None:
        """Which note set an index was built from (by its notes folder)."""
        for name in ("a", "b"):
            if str(notes_dir) == str(self.notes(name)):
                return name
        return None

    def encoder(self) -> Path:
        """The model cache, with the model exported by a real first build (once per workspace)."""
        seed = self.root / "seed"
        if not (seed / "index" / "CURRENT").is_file():
            notes = seed / "notes"
            notes.mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLES / NOTES_A[0], notes / "note.md")
            run = cli(["build", str(notes)], seed / "index")
            if run.code != 0:
                raise RuntimeError(f"the first build (model export) failed: {run.error_line()}")
        assert CACHE is not None
        return CACHE

    def index(self, stem: str, model: bool = True) -> Path:
        """A new index folder using the shared model cache; unless ``model``, with an empty cache of its own
        (then a build exports the model)."""
        path = self.path(stem)
        path.mkdir(parents=True)
        if not model:
            (path.parent / f"{path.name}-cache").mkdir()
        return path

    def built(self, stem: str, notes: str) -> Path:
        index = self.index(stem)
        run = cli(["build", str(self.notes(notes))], index)
        if run.code != 0:
            raise RuntimeError(f"building note set {notes} failed: {run.error_line()}")
        return index

    def copy_index(self, source: Path, stem: str, own_model: bool = False) -> Path:
        """A copy of an index; with ``own_model``, with a model cache of its own, the shared one's files
        hard-linked (a damaged model file is written as a new file, leaving the shared one whole)."""
        path = self.path(stem)
        shutil.copytree(source, path)
        if own_model:
            shutil.copytree(self.encoder(), path.parent / f"{path.name}-cache", copy_function=os.link)
        return path

    def expected(self) -> dict[tuple[str, int], Any]:
        """Every question's JSON answer from each note set, by indexes built once for reference."""
        if self._expected is None:
            expected = {}
            for name in ("a", "b"):
                index = self.built(f"reference-{name}", name)
                for i in range(len(QUESTIONS)):
                    run = question(index, i)
                    if run.code != 0:
                        raise RuntimeError(f"reference question {i} failed: {run.error_line()}")
                    expected[(name, i)] = run.data()
            self._expected = expected
        return self._expected

    def answered_by(self, i: int, data: Any) -> set[str]:
        """The note sets whose index gives exactly this answer to question i."""
        i %= len(QUESTIONS)
        return {name for name in ("a", "b") if same(data, self.expected()[(name, i)])}


def question(index: Path, i: int) -> Run:
    kind, text = QUESTIONS[i % len(QUESTIONS)]
    return cli([kind, text, "--json"], index)


def check_index(ws: Workspace, index: Path, i: int) -> tuple[str | None, list[str]]:
    """Read `info` and ask question i: both must answer, and the answer must come whole from one note set (the
    one `info` names). Returns that set."""
    problems = []
    live = None
    info = cli(["info", "--json"], index)
    if info.code != 0:
        problems.append(f"info exits {info.code}: {info.error_line()}")
    else:
        live = ws.note_set((info.data() or {}).get("notes_dir"))
        if live is None:
            problems.append("info names neither note set")
    kind = QUESTIONS[i % len(QUESTIONS)][0]
    run = question(index, i)
    if run.code != 0:
        problems.append(f"{kind} exits {run.code}: {run.error_line()}")
    else:
        sets = ws.answered_by(i, run.data())
        if not sets:
            problems.append(f"{kind} answers with something neither note set gives (a mixed index?)")
        elif live is not None and live not in sets:
            problems.append(f"{kind} answers from set {'/'.join(sorted(sets))}, info says {live}")
    return live, problems


# --- drill: kill -9 ------------------------------------------------------------------------------------------


def drill_kill(ws: Workspace, runs: int = 20, seed: int = 0) -> Drill:
    """SIGKILL `ytnotes build` at random moments, a third of them while it writes the new build and a third as
    soon as the new build's folder appears (before CURRENT names it).
    After each kill the old index (or the new one, if it was already live) answers whole; the next build cleans
    up what the killed one left and keeps exactly the live build."""
    drill = Drill("kill -9 of `ytnotes build` at random moments")
    rng = random.Random(seed)
    index = ws.index("kill")
    first = cli(["build", str(ws.notes("a"))], index)
    if first.code != 0:
        drill.record([f"setup build exits {first.code}: {first.error_line()}"])
        return drill
    typical = max(first.seconds, 0.5)
    live = "a"
    partial = 0
    for i in range(runs):
        target = other(live)
        args = ["build", str(ws.notes(target)), *(["--full"] if i % 3 == 2 else [])]
        gen_before, gens_before = live_generation(index), generations(index)
        bg = Background(args, index, ws.path("kill").with_suffix(".log"))
        moment = ("random", "while writing", "as the new build appears")[i % 3]
        if moment == "random":
            time.sleep(rng.uniform(0.05, typical))
        else:
            deadline = time.monotonic() + CLI_TIMEOUT
            while bg.running() and time.monotonic() < deadline and live_generation(index) == gen_before:
                names = os.listdir(index)
                if moment == "while writing" and any(n.startswith(".tmp-") for n in names):
                    time.sleep(rng.uniform(0.0, 0.04))
                    break
                if moment != "while writing" and any(
                    n.startswith("gen-") and n not in gens_before for n in names
                ):
                    break
                time.sleep(0.0005)
        killed = bg.kill()
        run = bg.finish()
        problems = []
        if not killed and run.code != 0:
            problems.append(f"build exits {run.code} before the kill: {run.error_line()}")
        left = leftovers(index) + sorted(generations(index) - gens_before - {str(live_generation(index))})
        partial += bool(left)
        now, found = check_index(ws, index, i)
        problems += found
        if now is not None and now not in ({live, target} if killed else {target}):
            problems.append(f"after the kill set {now} is live (before: {live}, building: {target})")
        live = now or live
        # The next build: completes, cleans up, keeps exactly the live build.
        target = other(live)
        after = cli(["build", str(ws.notes(target))], index)
        if after.code != 0:
            problems.append(f"the next build exits {after.code}: {after.error_line()}")
        else:
            if leftovers(index):
                problems.append(f"the next build leaves {', '.join(leftovers(index))}")
            gens = generations(index)
            if gens != {live_generation(index)}:
                problems.append("the next build does not keep exactly the live build")
            now, found = check_index(ws, index, i + 1)
            problems += found
            if now != target:
                problems.append(f"the next build did not make set {target} live")
            live = now or live
        state = "killed" if killed else f"finished (exit {run.code})"
        log(
            f"[kill] {i + 1}/{runs}: {moment}, {state} at {run.seconds:.2f} s, left: {', '.join(left) or '-'}"
            f" -> {problems or 'ok'}"
        )
        drill.record(problems)
    drill.details.append(f"{partial} of {runs} kills left a partial build behind for the next build to clean")
    return drill


def drill_kill_export(ws: Workspace, runs: int = 2, seed: int = 0) -> Drill:
    """SIGKILL an index's first build while it exports the model (the one step with torch): there is no index
    yet, `ask` says which command makes one, and the next build cleans up and succeeds."""
    drill = Drill("kill -9 of a first build (model export)")
    rng = random.Random(seed)
    for i in range(runs):
        index = ws.index("kill-export", model=False)
        bg = Background(["build", str(ws.notes("a"))], index, ws.path("kill-export").with_suffix(".log"))
        time.sleep(rng.uniform(0.5, 6.0))
        killed = bg.kill()
        run = bg.finish()
        left = leftovers(index)
        problems = []
        if not killed and run.code != 0:
            problems.append(f"build exits {run.code}: {run.error_line()}")
        if live_generation(index) is not None:  # the kill came after the new index went live
            problems += check_index(ws, index, 0)[1]
        else:
            problems += error_problems(question(index, 0), "ask before any build finished", "ytnotes build")
        after = cli(["build", str(ws.notes("a"))], index)
        if after.code != 0:
            problems.append(f"the next build exits {after.code}: {after.error_line()}")
        else:
            if leftovers(index):
                problems.append(f"the next build leaves {', '.join(leftovers(index))}")
            problems += check_index(ws, index, 0)[1]
        log(
            f"[kill-export] {i + 1}/{runs}: {'killed' if killed else 'finished'} at {run.seconds:.1f} s, "
            f"left: {', '.join(left) or '-'} -> {problems or 'ok'}"
        )
        drill.record(problems)
    return drill


# --- drill: two builds at once -------------------------------------------------------------------------------


def drill_two_builds(ws: Workspace, runs: int = 10, seed: int = 0) -> Drill:
    """Two `ytnotes build --full` of different note sets on one index, started up to 0.4 s apart: one builds, the other
    exits 1 naming the process that holds the lock (or runs after it); the index is one set, whole. Every other
    run starts them within 20 ms, so both reach the lock together."""
    drill = Drill("two `ytnotes build` at once on one index")
    rng = random.Random(seed)
    index = ws.built("two-builds", "a")
    outcomes: Counter[str] = Counter()
    for i in range(runs):
        first, second = ("b", "a") if i % 2 == 0 else ("a", "b")
        p1 = Background(["build", str(ws.notes(first)), "--full"], index, ws.path("two").with_suffix(".log"))
        time.sleep(rng.uniform(0.0, 0.4) if i % 2 else rng.uniform(0.0, 0.02))
        p2 = Background(["build", str(ws.notes(second)), "--full"], index, ws.path("two").with_suffix(".log"))
        r1, r2 = p1.finish(), p2.finish()
        problems = []
        for run, rival in ((r1, p2), (r2, p1)):
            if run.code == 1:
                problems += error_problems(run, "the refused build", f"another build (pid {rival.pid})")
            elif run.code != 0:
                problems += error_problems(run, "a build", "ytnotes build")
        winners = {name for name, run in ((first, r1), (second, r2)) if run.code == 0}
        outcomes["one refused" if len(winners) == 1 else "one after the other" if winners else "none"] += 1
        if not winners:
            problems.append("neither build finished")
        live, found = check_index(ws, index, i)
        problems += found
        if live is not None:
            if live not in winners:
                problems.append(f"set {live} is live but its build did not finish")
            notes = set(live_manifest(index)["notes"])
            if notes != set(NOTES_A if live == "a" else NOTES_B):
                problems.append(f"the live index holds {sorted(notes)}, not exactly set {live}")
        if leftovers(index) or len(generations(index)) > 1:
            problems.append("leftovers after both builds ended")
        log(f"[two-builds] {i + 1}/{runs}: exits {r1.code}, {r2.code} -> {problems or 'ok'}")
        drill.record(problems)
    drill.details.append(", ".join(f"{n} {what}" for what, n in outcomes.items()))
    return drill


# --- drill: questions while builds swap the index ------------------------------------------------------------


def drill_questions(
    ws: Workspace, questions: int = 500, workers: int = 2, time_limit: float = QUESTIONS_SECONDS
) -> Drill:
    """Ask questions with the CLI from ``workers`` threads while another thread rebuilds the index, alternating
    the note sets: every question must be answered, and every answer must equal one set's answer exactly."""
    drill = Drill(f"{questions} questions (CLI) while builds swap the index")
    ws.expected()
    index = ws.built("questions", "a")

    def ask(i: int) -> tuple[str, str | None, Any]:
        run = question(index, i)
        return run.args[0], (f"exits {run.code}: {run.error_line()}" if run.code != 0 else None), run.data

    swaps, answers = _questions_during_swaps(
        ws, index, drill, questions, workers, time_limit, ask, "questions", 50
    )
    _finish_questions(drill, questions, time_limit, swaps, answers)
    return drill


def _questions_during_swaps(
    ws: Workspace,
    index: Path,
    drill: Drill,
    questions: int,
    workers: int,
    time_limit: float,
    ask: Callable[[int], tuple[str, str | None, Any]],
    tag: str,
    every: int,
) -> tuple[int, Counter[str]]:
    """Ask questions from ``workers`` threads while builds swap the index, recording each in the drill:
    ``ask(i)`` gives what was asked, why it failed (or None) and a function giving its answer. Questions go on
    past their count until MIN_SWAPS swaps, within the time limit. Gives the swaps and which note set answered."""
    lock = threading.Lock()
    stop = threading.Event()
    numbers = itertools.count()
    deadline = time.monotonic() + time_limit
    answers: Counter[str] = Counter()
    swapped = [0]

    def asker() -> None:
        while not stop.is_set():
            i = next(numbers)
            if (i >= questions and swapped[0] >= MIN_SWAPS) or time.monotonic() > deadline:
                return
            what, error, answer = ask(i)
            problems = []
            if error is not None:
                problems.append(f"{what} {error}")
            else:
                sets = ws.answered_by(i, answer())
                if not sets:
                    problems.append(f"{what} answers with something neither note set gives")
                answers["/".join(sorted(sets)) or "neither"] += 1
            with lock:
                drill.record(problems)
                if drill.runs % every == 0:
                    log(f"[{tag}] {drill.runs}/{questions}, {drill.passed} ok")

    threads = [threading.Thread(target=asker) for _ in range(workers)]
    return _swap_while(ws, index, stop, drill, lock, threads, swapped), answers


def _finish_questions(
    drill: Drill, questions: int, time_limit: float, swaps: int, answers: Counter[str]
) -> None:
    if drill.runs < questions:
        drill.failures.append(f"only {drill.runs} questions asked in {time_limit:.0f} s")
    if swaps < MIN_SWAPS:
        drill.failures.append(f"the index was swapped only {swaps} times")
    drill.details.append(
        f"{swaps} swaps; answers from set " + ", ".join(f"{k}: {v}" for k, v in sorted(answers.items()))
    )


#: Questions go on past their count until builds have swapped the index this many times (within the time limit):
#: answers now take milliseconds, and a drill that saw no swap would prove nothing.
MIN_SWAPS = 2


def _swap_while(
    ws: Workspace,
    index: Path,
    stop: threading.Event,
    drill: Drill,
    lock: threading.Lock,
    askers: list[threading.Thread],
    swapped: list[int],
) -> int:
    """Rebuild the index (alternating the note sets, every third build --full) until the askers are done; return
    how many builds swapped it (also counted in ``swapped[0]`` as they happen)."""
    swaps = 0

    def builder() -> None:
        nonlocal swaps
        live = "a"
        for n in itertools.count():
            if stop.is_set():
                return
            target = other(live)
            run = cli(["build", str(ws.notes(target)), *(["--full"] if n % 3 == 2 else [])], index)
            with lock:
                if run.code == 0:
                    swaps += 1
                    swapped[0] = swaps
                    live = target
                else:
                    drill.failures.append(f"a build exits {run.code}: {run.error_line()}")

    build_thread = threading.Thread(target=builder)
    build_thread.start()
    for t in askers:
        t.start()
    for t in askers:
        t.join()
    stop.set()
    build_thread.join()
    return swaps


def server_missing() -> str | None:
    """None when `ytnotes serve` exists, else why the server drill cannot run."""
    if not (REPO / "search" / "server.py").is_file():
        return "search/server.py does not exist yet"
    run = cli(["serve", "--help"], None, timeout=60)
    if run.code != 0:
        return f"`ytnotes serve --help` exits {run.code}"
    return None


class Server:
    """`ytnotes serve --port 0` in the background, and GET requests to it."""

    def __init__(self, index: Path, log_file: Path) -> None:
        self.process = Background(["serve", "--port", "0"], index, log_file)
        deadline = time.monotonic() + CLI_TIMEOUT
        self.url = ""
        while not self.url and self.process.running() and time.monotonic() < deadline:
            found = re.search(
                r"Serving (http://\S+/)", log_file.read_text(encoding="utf-8", errors="replace")
            )
            self.url = found.group(1) if found else ""
            time.sleep(0.1)
        if not self.url:
            log_text = self.stop()
            raise RuntimeError(f"ytnotes serve did not start: {log_text[-300:]}")

    def get(self, path: str, **params: str) -> tuple[int, Any]:
        import urllib.error
        import urllib.parse
        import urllib.request

        url = self.url + path.lstrip("/") + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")[:200]
        except (OSError, ValueError) as exc:
            return 0, f"{type(exc).__name__}: {exc}"

    def stop(self) -> str:
        """Stop it (SIGTERM, then SIGKILL after 10 s); return its log."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        return self.process.finish(timeout=time.monotonic() - self.process.started + 10).err


def drill_server(
    ws: Workspace, questions: int = 500, workers: int = 2, time_limit: float = QUESTIONS_SECONDS
) -> Drill:
    """Ask `ytnotes serve`'s JSON API from ``workers`` threads while another thread rebuilds the index, alternating
    the note sets: every answer is a 200 equal to one set's `--json` answer exactly; once the builds stop, the
    server answers from the index that is live on disk."""
    drill = Drill(f"{questions} questions (server) while builds swap the index")
    missing = server_missing()
    if missing is not None:
        drill.not_done = missing
        return drill
    ws.expected()
    index = ws.built("server", "a")
    server = Server(index, ws.path("server").with_suffix(".log"))

    def ask(i: int) -> tuple[str, str | None, Any]:
        kind, text = QUESTIONS[i % len(QUESTIONS)]
        status, data = server.get(f"/api/{kind}", q=text)
        return f"/api/{kind}", (f"answers {status}: {data}" if status != 200 else None), lambda: data

    try:
        swaps, answers = _questions_during_swaps(
            ws, index, drill, questions, workers, time_limit, ask, "server", 100
        )
        status, data = server.get("/api/info")
        live = ws.note_set(live_manifest(index)["notes_dir"])
        if status != 200 or not isinstance(data, dict) or ws.note_set(data.get("notes_dir")) != live:
            drill.failures.append(
                f"after the builds the server does not answer from the live index ({status})"
            )
    finally:
        server_log = server.stop()
    if "Traceback" in server_log:
        drill.failures.append("the server logs a traceback")
    _finish_questions(drill, questions, time_limit, swaps, answers)
    drill.details += [f"server log: {ln}" for ln in server_log.splitlines() if "cannot" in ln]
    return drill


# --- drill: damaged index files ------------------------------------------------------------------------------

INDEX_FILES = (
    "CURRENT",
    "manifest.json",
    "meta.sqlite",
    "chunks.faiss",
    "segments.faiss",
    "words.npy",
    "word_owners.npy",
    "word_codebook.npy",
    *(
        f"{table}.{part}.npy"
        for table in ("chunks_fts", "segments_fts")
        for part in ("starts", "rows", "counts", "lengths")
    ),
)
MODEL_FILES = (
    "model.onnx",
    "model.int8.onnx",
    "tokenizer.json",
    "encoder.json",
    "question/model.onnx",
    "question/model.onnx.data",
    "question/runtime.json",
)
DAMAGE_CASES = [
    *((name, kind) for name in INDEX_FILES + MODEL_FILES for kind in ("truncated", "zeroed", "missing")),
    ("manifest.json", "format version 1"),
    ("manifest.json", "another model"),
    ("generation folder", "missing"),
]
#: One case per file for the tests (each kind of damage still appears).
QUICK_DAMAGE = [
    ("CURRENT", "zeroed"),
    ("manifest.json", "truncated"),
    ("manifest.json", "format version 1"),
    ("manifest.json", "another model"),
    ("meta.sqlite", "truncated"),
    ("chunks.faiss", "zeroed"),
    ("segments.faiss", "missing"),
    ("words.npy", "truncated"),
    ("word_owners.npy", "zeroed"),
    ("word_codebook.npy", "truncated"),
    ("chunks_fts.rows.npy", "zeroed"),
    ("segments_fts.starts.npy", "missing"),
    ("tokenizer.json", "truncated"),
    ("model.onnx", "zeroed"),
    ("question/model.onnx.data", "zeroed"),
    ("question/model.onnx", "truncated"),
    ("encoder.json", "zeroed"),
]


def damage(index: Path, target: str, kind: str) -> None:
    gen = index / str(live_generation(index))
    if target == "generation folder":
        shutil.rmtree(gen)
        return
    path = index / target if target == "CURRENT" else gen / target
    if target in MODEL_FILES:
        path = model_folder(index) / target
    if kind == "missing":
        path.unlink()
        return
    data = path.read_bytes()
    path.unlink()  # the model's files are hard links shared with other indexes: write a new file instead
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "zeroed":
        path.write_bytes(bytes(len(data)))
    else:
        manifest = json.loads(data)
        if kind == "format version 1":
            manifest["format_version"] = 1
        else:
            manifest["model"] = {**manifest["model"], "name": "paraphrase-MiniLM-L3-v2", "dimension": 384}
        path.write_text(json.dumps(manifest), encoding="utf-8")


def drill_damage(ws: Workspace, cases: list[tuple[str, str]] | None = None) -> Drill:
    """Damage one file of a good index (truncate, zero, delete; another format version; another model): `ask`
    and `info` answer correctly or fail with one line naming the fix; `build` repairs or says to use --full;
    `build --full` repairs."""
    drill = Drill("truncated, zeroed or missing index files; other format; other model")
    pristine = ws.built("damage-source", "a")
    for target, kind in cases or DAMAGE_CASES:
        index = ws.copy_index(pristine, "damage", own_model=target in MODEL_FILES)
        damage(index, target, kind)
        problems = []
        for args in (["ask", QUESTIONS[0][1], "--json"], ["info", "--json"]):
            run = cli(args, index)
            if run.code != 0:
                problems += error_problems(run, args[0], "ytnotes build")
            elif args[0] == "ask" and "a" not in ws.answered_by(0, run.data()):
                problems.append("ask exits 0 with a wrong answer")
        run = cli(["build", str(ws.notes("a"))], index)
        if run.code != 0:
            problems += error_problems(run, "build", "ytnotes build --full")
        run = cli(["build", str(ws.notes("a")), "--full"], index)
        if run.code != 0:
            problems.append(f"build --full does not repair it: exits {run.code}: {run.error_line()}")
        else:
            problems += check_index(ws, index, 0)[1]
        problems = [f"{target} {kind}: {p}" for p in problems]
        log(f"[damage] {target} {kind} -> {problems or 'ok'}")
        drill.record(problems)
    return drill


# --- drill: disk full ----------------------------------------------------------------------------------------


def disk_problems(run: Run, what: str) -> list[str]:
    """A build that ran out of room must exit 1 (the user can fix it) with one line saying to try again."""
    problems = error_problems(run, what, "run `ytnotes build` again")
    if run.code == 2:
        problems.append(f"{what} calls running out of room an internal error")
    return problems


def _mount(folder: Path, size: int, remount: bool = False) -> None:
    opts = f"remount,size={size}" if remount else f"size={size}"
    args = (
        ["mount", "-o", opts, str(folder)]
        if remount
        else ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)]
    )
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def _used(folder: Path) -> int:
    st = os.statvfs(folder)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def can_mount() -> str | None:
    """None when this process may mount a tmpfs in a private mount namespace, else why not."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare or mount is not installed"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "mount", "-t", "tmpfs", "-o", "size=1m",
         "tmpfs", tempfile.gettempdir()],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"cannot mount a tmpfs ({probe.stderr.strip()[:100]})"
    return None


def drill_disk_full(
    ws: Workspace, fractions: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98), export: bool = True
) -> Drill:
    """A build on a full disk: a tmpfs sized to the index plus a fraction of a new build, so the build runs out of
    space at a different file each run. It fails with one clear line; the old index is intact and answers; once
    there is room the next build succeeds and leaves nothing behind. With ``export``, also the first build of an
    index (the model export, ~110 MB) on a 40 MB disk. Runs in a private mount namespace, so no mount outlives it."""
    if os.environ.get("YTNOTES_DRILL_NAMESPACE") != "1":
        why = can_mount()
        if why is not None:
            drill = Drill("disk full during a build (tmpfs)")
            drill.not_done = why
            return drill
        return _in_namespace("disk-full", ws, {"fractions": list(fractions), "export": export})
    drill = Drill("disk full during a build (tmpfs)")
    source = ws.built("disk-source", "a")
    new_size = sum(p.stat().st_size for p in ws.built("disk-measure", "b").glob("gen-*/*"))
    mnt = ws.path("disk-full")
    mnt.mkdir(parents=True)
    for fraction in fractions:
        _mount(mnt, 1 << 30)
        try:
            index = mnt / "index"
            shutil.copytree(source, index)  # the model copied, not linked: the tmpfs is another disk
            free = int(fraction * new_size)
            _mount(mnt, (_used(mnt) + free + 4095) // 4096 * 4096, remount=True)
            before = fingerprint(index)
            run = cli(["build", str(ws.notes("b"))], index)
            problems = []
            if run.code == 0:
                drill.details.append(f"with {free} bytes free the new build fit")
            else:
                problems += disk_problems(run, "the build")
                if fingerprint(index) != before:
                    problems.append("the failed build changed the old index")
                if leftovers(index):
                    problems.append(f"the failed build leaves {', '.join(leftovers(index))}")
                problems += check_index(ws, index, 0)[1]
            _mount(mnt, 1 << 30, remount=True)
            again = cli(["build", str(ws.notes("b"))], index)
            if again.code != 0:
                problems.append(f"with room again the build exits {again.code}: {again.error_line()}")
            elif leftovers(index):
                problems.append(f"with room again the build leaves {', '.join(leftovers(index))}")
            problems = [f"{free} bytes free: {p}" for p in problems]
            log(f"[disk-full] {free} bytes free: exit {run.code}: {run.error_line()} -> {problems or 'ok'}")
            drill.record(problems)
        finally:
            subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30)
    if export:
        _mount(mnt, 40 << 20)
        try:
            index = mnt / "index"
            (mnt / "index-cache").mkdir()  # the model is exported onto the small disk too
            run = cli(["build", str(ws.notes("a"))], index)
            problems = []
            if run.code == 0:
                problems.append("the first build fit on a 40 MB disk")
            else:
                problems += disk_problems(run, "the first build")
            _mount(mnt, 1 << 30, remount=True)
            again = cli(["build", str(ws.notes("a"))], index)
            if again.code != 0:
                problems.append(f"with room again the build exits {again.code}: {again.error_line()}")
            else:
                if leftovers(index):
                    problems.append(f"with room again the build leaves {', '.join(leftovers(index))}")
                problems += check_index(ws, index, 0)[1]
            problems = [f"first build on a 40 MB disk: {p}" for p in problems]
            log(f"[disk-full] first build, 40 MB: exit {run.code}: {run.error_line()} -> {problems or 'ok'}")
            drill.record(problems)
        finally:
            subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30)
    return drill


def drill_file_size_limit(ws: Workspace, files: int = 4) -> Drill:
    """A build whose writes fail part way (RLIMIT_FSIZE: a write past the limit fails with EFBIG, as on a full
    disk), with limits between the sizes of the files a build writes, so each of them is the first to fail in
    one run: the build fails with one clear line, the old index is intact and answers, the next build succeeds."""
    drill = Drill("file size limit (EFBIG) during a build")
    sizes = sorted({p.stat().st_size for p in ws.built("limit-measure", "b").glob("gen-*/*")})
    limits = [max(1, sizes[0] // 2)] + [(a + b) // 2 for a, b in itertools.pairwise(sizes)]
    for limit in limits[:files]:
        index = ws.built("limit", "a")
        before = fingerprint(index)
        run = cli(["build", str(ws.notes("b"))], index, file_size_limit=limit)
        problems = []
        if run.code == 0:
            drill.details.append(f"with a {limit}-byte limit the build fit")
        else:
            problems += disk_problems(run, "the build")
            if fingerprint(index) != before:
                problems.append("the failed build changed the old index")
            if leftovers(index):
                problems.append(f"the failed build leaves {', '.join(leftovers(index))}")
            problems += check_index(ws, index, 0)[1]
        again = cli(["build", str(ws.notes("b"))], index)
        if again.code != 0 or leftovers(index):
            problems.append(f"without the limit the build exits {again.code} leaving {leftovers(index)}")
        problems = [f"{limit}-byte limit: {p}" for p in problems]
        log(f"[file-size] {limit} bytes: exit {run.code}: {run.error_line()} -> {problems or 'ok'}")
        drill.record(problems)
    return drill


def _in_namespace(name: str, ws: Workspace, kwargs: dict[str, Any]) -> Drill:
    """Run one drill in a child process with a private mount namespace; return its result."""
    out = ws.path(f"{name}-result").with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", sys.executable, __file__, "--worker", name,
         "--keep", str(ws.root), "--worker-args", json.dumps(kwargs), "--worker-out", str(out)],
        env={**cli_env(), "YTNOTES_DRILL_NAMESPACE": "1"},
        stdout=sys.stderr,
        timeout=3600,
    )  # fmt: skip
    if proc.returncode != 0 or not out.is_file():
        drill = Drill(name)
        drill.record([f"the drill's own process failed (exit {proc.returncode})"])
        return drill
    return Drill(**json.loads(out.read_text(encoding="utf-8")))


# --- drill: unreadable and odd files -------------------------------------------------------------------------

#: A build reading endless input (/dev/zero) must fail on this, not push the machine into swap or the OOM killer.
BUILD_MEMORY = 6 << 30
#: Run as root without the capabilities that let root read any file, so permissions apply to it.
WITHOUT_DAC = ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--")


def _bad_unreadable_file(folder: Path) -> Path:
    path = folder / "unreadable.md"
    path.write_text("---\ntitle: Secret\n---\n\nSecret words [00:01].\n", encoding="utf-8")
    path.chmod(0)
    return path


def _bad_unreadable_folder(folder: Path) -> Path:
    path = folder / "locked"
    path.mkdir()
    (path / "inside.md").write_text("Inside words [00:01].\n", encoding="utf-8")
    path.chmod(0)
    return path


def _bad_fifo(folder: Path) -> Path:
    path = folder / "fifo.md"
    os.mkfifo(path)
    return path


def _bad_device(folder: Path) -> Path:
    path = folder / "zero.md"
    path.symlink_to("/dev/zero")
    return path


def _bad_dangling(folder: Path) -> Path:
    path = folder / "dangling.md"
    path.symlink_to(folder / "nowhere.md")
    return path


def _bad_self_loop(folder: Path) -> Path:
    path = folder / "loop.md"
    path.symlink_to(path)
    return path


def _bad_folder_loop(folder: Path) -> Path | None:
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "up").symlink_to("..")
    return None  # not reported: the loop is simply not followed


BAD_FILES: dict[str, tuple[Callable[[Path], Path | None], bool]] = {
    # name: (make it in the notes folder, build without root's read-anything capabilities)
    "unreadable file": (_bad_unreadable_file, True),
    "unreadable folder": (_bad_unreadable_folder, True),
    "FIFO named .md": (_bad_fifo, False),
    "symlink to /dev/zero": (_bad_device, False),
    "dangling symlink": (_bad_dangling, False),
    "symlink to itself": (_bad_self_loop, False),
    "folder symlink loop": (_bad_folder_loop, False),
}


def _skip_lines(run: Run) -> list[str]:
    return [ln for ln in run.lines() if ln.startswith("warning: skipped ")]


def drill_bad_files(ws: Workspace, replace_runs: int = 3) -> Drill:
    """Odd entries in the notes folder are reported by name and the other notes indexed, without hanging; a note
    replaced (atomically, in place, or deleted and re-created) while the build reads it is indexed in one of its
    versions or reported, and the next build catches up with its final version."""
    drill = Drill("unreadable file/folder, FIFO, symlink loops, note replaced mid-build")
    dac = shutil.which("setpriv") is not None and os.geteuid() == 0
    for name, (make, needs_dac) in BAD_FILES.items():
        folder = ws.path("bad") / "notes"
        shutil.copytree(ws.notes("a"), folder)
        bad = make(folder)
        index = ws.index("bad")
        prefix: tuple[str, ...] = WITHOUT_DAC if needs_dac and dac else ()
        run = cli(["build", str(folder)], index, timeout=120, prefix=prefix, memory_limit=BUILD_MEMORY)
        problems = []
        if run.code != 0:
            problems.append(f"build exits {run.code}: {run.error_line()}")
        else:
            skips = _skip_lines(run)
            if bad is not None and not any(ln.startswith(f"warning: skipped {bad}:") for ln in skips):
                problems.append(f"not reported by name ({' / '.join(skips) or 'no warning'})")
            if set(live_manifest(index)["notes"]) != set(NOTES_A):
                problems.append(f"indexed {sorted(live_manifest(index)['notes'])}, not the three good notes")
            if bad is None and skips:
                problems.append(f"unexpected warnings: {' / '.join(skips)}")
        if needs_dac and not dac:
            drill.details.append(f"{name}: built as full root (setpriv missing), so the file was readable")
        for path in (folder / "unreadable.md", folder / "locked"):
            if path.exists():
                path.chmod(0o755)
        problems = [f"{name}: {p}" for p in problems]
        log(f"[bad-files] {name}: {(_skip_lines(run) or ['no warning'])[0][:160]} -> {problems or 'ok'}")
        drill.record(problems)
    for n in range(replace_runs):
        for how in ("replaced atomically", "rewritten in place", "deleted and re-created"):
            problems = [f"note {how}: {p}" for p in _replaced_mid_build(ws, how, n)]
            log(f"[bad-files] note {how} ({n + 1}/{replace_runs}) -> {problems or 'ok'}")
            drill.record(problems)
    return drill


def _replaced_mid_build(ws: Workspace, how: str, n: int) -> list[str]:
    folder = ws.path("replaced") / "notes"
    shutil.copytree(ws.notes("a"), folder)
    note = folder / NOTES_A[2]
    versions = [note.read_bytes(), note.read_bytes() + ADDED_IN_B.encode() * (n + 1)]
    stop = threading.Event()
    writes = itertools.count()

    def writer() -> None:
        tmp = note.with_name(".replacing.md")
        for k in itertools.count():
            if stop.is_set():
                return
            data = versions[k % 2]
            if how == "replaced atomically":
                tmp.write_bytes(data)
                os.replace(tmp, note)
            elif how == "rewritten in place":
                with note.open("wb") as f:
                    f.write(data[: len(data) // 2])
                    f.flush()
                    f.write(data[len(data) // 2 :])
            else:
                note.unlink()
                note.write_bytes(data)
            next(writes)
            time.sleep(0.0005)

    thread = threading.Thread(target=writer)
    thread.start()
    index = ws.index("replaced")
    try:
        run = cli(["build", str(folder)], index, timeout=120)
    finally:
        stop.set()
        thread.join()
    problems = []
    if run.code != 0:
        return [f"build exits {run.code}: {run.error_line()}"]
    notes = live_manifest(index)["notes"]
    if not set(NOTES_A[:2]) <= set(notes):
        problems.append("the other notes are not all indexed")
    hashes = {hashlib.sha256(v).hexdigest() for v in versions}
    reported = any(ln.startswith(f"warning: skipped {note}") for ln in _skip_lines(run))
    if NOTES_A[2] in notes:
        if how == "replaced atomically" and notes[NOTES_A[2]] not in hashes:
            problems.append("indexed in a version it never had")
    elif not reported:
        problems.append("neither indexed nor reported")
    again = cli(["build", str(folder)], index)
    final = hashlib.sha256(note.read_bytes()).hexdigest()
    if again.code != 0 or live_manifest(index)["notes"].get(NOTES_A[2]) != final:
        problems.append("the next build does not index its final version")
    return problems


# --- drill: fuzzed notes -------------------------------------------------------------------------------------

#: Parses notes named on stdin one by one, as a build reads them, and prints the time and outcome of each.
PARSE_WORKER = r"""
import json, sys, time
from pathlib import Path
from search import chunks, embed
from search.errors import NoteError
from search.notes import read_note
from search.segments import parse_note
root = Path(sys.argv[1])
count = embed.token_counter()
print("ready", flush=True)
for line in sys.stdin:
    path = Path(line.rstrip("\n"))
    started = time.monotonic()
    try:
        chunks.pack(parse_note(read_note(path, root)), count, chunks.CHUNK_TOKENS)
        status = "ok"
    except NoteError as exc:
        status = "skipped: " + exc.reason
    except Exception as exc:
        status = f"crash: {type(exc).__name__}: {exc}"[:300]
    print(json.dumps({"seconds": time.monotonic() - started, "status": status}), flush=True)
"""

#: Markup that means something to the parser, repeated by the fuzzer to make deep nesting and long lines.
MARKUP = (
    "\n", "\n\n", "# ", "###### ", "####### ", "- ", "  - ", "1. ", "> ", ">", "> [!note] ", "```\n", "~~~\n",
    "| ", " |", "|---|---|\n", "[[", "]]", "[[a|b]]", "[[a\\|b]]", "[", "]", "(", ")", "**", "*", "_", "__",
    "`", "<a ", "data-t", '="', ">", "</a>", "<br/>", "<b>", "<script>alert(1)</script>", "&amp;", "&#0;",
    "From: [[chan | Chan]]\n", "---\n", "\t", "\r\n", "\r", "\u2028", "\u00a0", "â€™", "\ufeff", "\x1b[2J",
    " ", ",", ";", "word ", "ünïcødé ", "🙂",
)  # fmt: skip
#: Pieces are cut at this size; with several of them a note can pass the 1 MB limit.
PIECE_CHARS = 1_200_000


def note_strategy() -> Any:
    """Hypothesis strategy for the bytes of one note."""
    from hypothesis import strategies as st

    value = st.one_of(
        st.from_regex(r"\A\d{1,3}(:\d{1,3}){1,3}\Z"),
        st.from_regex(r"\A[\d:]{0,12}\Z"),
        st.sampled_from(
            ["56:04:00", "00:10:75", "01:60:15", "99:99:99", "12:00:01", "03:21:921", "0:0:0:0:0"]
        ),
    )
    stamp = st.one_of(
        value.map(lambda v: f"[{v}]"),
        value.map(lambda v: f"[{v}](https://www.youtube.com/watch?v=abcdefghijk&t=1s)"),
        st.lists(value, min_size=1, max_size=4).map(lambda vs: "[" + ", ".join(vs) + "]"),
        st.tuples(value, value).map(lambda p: f'<a class="yt-timestamp" data-t="{p[0]}">[{p[1]}]</a>'),
        value.map(lambda v: f'<a class="yt-timestamp" data-t="{v}">'),  # never closed
        value.map(lambda v: f"<a data-t='{v}' "),  # never ends
    )
    frontmatter = st.one_of(
        st.just(""),
        st.builds(
            lambda t, v: f"---\ntitle: {json.dumps(t)}\nvideoId: {v}\n---\n",
            st.text(max_size=40),
            st.one_of(st.from_regex(r"\A[A-Za-z0-9_-]{11}\Z"), st.text(max_size=15).map(json.dumps)),
        ),
        st.text(max_size=300).map(lambda t: f"---\n{t}\n---\n"),
        st.text(max_size=100).map(lambda t: f"---\n{t}\n"),  # never closed
        st.sampled_from(
            [
                "---\ntitle: !!python/object/apply:os.system ['echo fuzz']\n---\n",
                "---\n- a list\n---\n",
                "---\na: &a [*a, *a]\nb: &b [*a, *a]\nc: [*b, *b, *b]\n---\n",
                "---\nvideoId: 12345678901\ntitle: 7\n---\n",
            ]
        ),
    )
    fragment = st.one_of(st.text(max_size=60), stamp, st.sampled_from(MARKUP))
    repeat = st.sampled_from([1, 1, 1, 1, 1, 1, 2, 3, 10, 100, 1_000, 10_000, 100_000])
    piece = st.builds(
        lambda parts, n: ("".join(parts) * n)[:PIECE_CHARS],
        st.lists(fragment, min_size=1, max_size=6),
        repeat,
    )
    nested = st.builds(
        lambda mark, n: "".join(mark * i + "x [00:01]\n" for i in range(n)),
        st.sampled_from(["  ", "> ", "  - ", "#", "[", "<b>"]),
        st.integers(1, 800),
    )
    text_note = st.builds(
        lambda front, body: (front + "".join(body)).encode("utf-8"),
        frontmatter,
        st.lists(st.one_of(piece, piece, nested), max_size=10),
    )
    return st.one_of(
        text_note,
        text_note,
        text_note,
        st.builds(lambda data, junk, at: data[: int(at * len(data))] + junk + data[int(at * len(data)) :],
                  text_note, st.binary(min_size=1, max_size=8), st.floats(0, 1)),
        st.binary(max_size=4096),
        st.sampled_from([b"x" * (1 << 20) + b"\n", b"x" * ((1 << 20) + 1), b"y" * (10 << 20) + b"\n"]),
        st.integers(1, 85_000).map(lambda n: b"word [00:01] " * n),
    )  # fmt: skip


def fuzz_notes(folder: Path, count: int, seed: int) -> list[Path]:
    """Write ``count`` notes made by hypothesis (reproducible from ``seed``) into ``folder``."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fixed_seed

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    @fixed_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(note_strategy())
    def write(data: bytes) -> None:
        path = folder / f"fuzz-{len(written):04d}.md"
        path.write_bytes(data)
        written.append(path)

    write()
    return written


#: Worst cases beside MARKUP: long runs of spaces and markers where a regular expression might backtrack.
WORST = (
    "[[" + " " * 1000, "x " + "`" * 1000, "<a " + " " * 1000, "*" + " " * 1000, "**" + " " * 1000,
    "# " + " " * 1000 + "x\n", " " * 2000 + "- x\n", '<a data-t="00:01">', '<a data-t="1:00">[1:00]</a>',
    "[00:01] ", "[00:01]", "[99:99:99] ", "a [00:01] ", "<a data-t ", "*a ", "**a ", "_a ", "[[a ", "[a](",
    "# a" + " " * 50 + "b\n", "|  ", "- [ ] ", "[[a |", "<a data-t='1:00'>x ",
)  # fmt: skip


def worst_case_notes(folder: Path, chars: int) -> list[Path]:
    """Each fragment of MARKUP and WORST repeated to ``chars`` characters, on one line and separated by spaces."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, fragment in enumerate(dict.fromkeys(MARKUP + WORST)):
        for variant, unit in (("line", fragment), ("spaced", fragment + " ")):
            path = folder / f"worst-{i:03d}-{variant}.md"
            path.write_text((unit * (chars // len(unit) + 1))[:chars] + "\n", encoding="utf-8")
            paths.append(path)
    return paths


def parse_each(root: Path, paths: list[Path], limit: float = NOTE_SECONDS) -> dict[Path, tuple[float, str]]:
    """Read, cut and pack each note in a worker process; a note taking longer than ``limit`` is a hang (the
    worker is killed and a new one goes on with the next note)."""
    results: dict[Path, tuple[float, str]] = {}
    todo = list(paths)
    while todo:
        proc = subprocess.Popen(
            [sys.executable, "-c", PARSE_WORKER, str(root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=cli_env(), cwd=REPO,
            start_new_session=True,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], CLI_TIMEOUT)
        if not ready or proc.stdout.readline().strip() != "ready":
            _kill_group(proc.pid)
            raise RuntimeError("the parse worker did not start")
        while todo:
            path = todo.pop(0)
            proc.stdin.write(f"{path}\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], limit)
            if not ready:
                results[path] = (limit, "hang")
                break
            line = proc.stdout.readline()
            if not line:
                results[path] = (0.0, "crash: the worker died")
                break
            item = json.loads(line)
            results[path] = (item["seconds"], item["status"])
        _kill_group(proc.pid)
        proc.wait()
    return results


def drill_fuzz(
    ws: Workspace,
    notes: int = 150,
    seed: int = 0,
    worst_chars: int = 900_000,
    note_seconds: float = NOTE_SECONDS,
) -> Drill:
    """Notes made by hypothesis (random frontmatter, timestamps plausible, implausible and malformed, random bytes,
    10 MB lines, deep nesting, long runs of markup) and each markup fragment repeated to ``worst_chars``: each
    note alone parses without crash within ``note_seconds``; then one real build of them all indexes or skips
    (with a reason) every note."""
    drill = Drill(f"fuzzed notes (hypothesis, seed {seed}) and worst-case markup")
    folder = ws.path("fuzz") / "notes"
    paths = fuzz_notes(folder, notes, seed) + (worst_case_notes(folder, worst_chars) if worst_chars else [])
    results = parse_each(folder, paths, note_seconds)
    slowest = max(results.items(), key=lambda kv: kv[1][0])
    drill.details.append(
        f"slowest note: {slowest[0].name} ({slowest[0].stat().st_size} bytes) in {slowest[1][0]:.2f} s"
    )
    hung = [p for p, (_, status) in results.items() if status in ("hang", "crash: the worker died")]
    for path in hung:  # the build would hang on it too; it is reported already
        shutil.move(path, folder.parent / path.name)
    index = ws.index("fuzz")
    run = cli(["build", str(folder)], index, timeout=CLI_TIMEOUT + note_seconds * len(paths))
    skips = _skip_lines(run)
    indexed = set(live_manifest(index)["notes"]) if run.code == 0 else set()
    if run.code not in (0, 1):
        drill.failures.append(f"the build exits {run.code}: {run.error_line()}")
    for path in paths:
        status = results[path][1]
        problems = []
        if status == "hang":
            problems.append(f"a note takes over {note_seconds:.0f} s ({path.name})")
        elif status.startswith("crash"):
            problems.append(f"{status} ({path.name})")
        elif (
            run.code in (0, 1)
            and path.name not in indexed
            and not any(ln.startswith(f"warning: skipped {path}:") for ln in skips)
        ):
            problems.append(f"neither indexed nor skipped with a reason ({path.name})")
        drill.record(problems)
    kept = sum(1 for p in paths if p.name in indexed)
    drill.details.append(f"{kept} of {len(paths)} fuzzed notes indexed, {len(skips)} skipped with a reason")
    return drill


# --- drill: the shared corpus --------------------------------------------------------------------------------


def drill_corpus(ws: Workspace, notes_dir: Path = SHARED_NOTES) -> Drill:
    """Build every note of the shared corpus (``_odd/`` included): no crash; every note indexed or skipped with
    a reason; skipped notes and ignored timestamps are listed (in the details)."""
    drill = Drill("all of ../shared/corpus/notes")
    if not notes_dir.is_dir():
        drill.not_done = f"{notes_dir} does not exist"
        return drill
    index = ws.index("corpus")
    run = cli(["build", str(notes_dir), "--verbose"], index, timeout=CORPUS_TIMEOUT)
    if run.code != 0:
        drill.record([f"the build exits {run.code}: {run.error_line()}"])
        return drill
    if "Traceback" in run.err or "internal error" in run.err:
        drill.failures.append("the build prints an internal error")
    skips = _skip_lines(run)
    indexed = set(live_manifest(index)["notes"])
    ignored = [
        ln.removeprefix("timestamp ignored: ") for ln in run.lines() if ln.startswith("timestamp ignored: ")
    ]
    for path in sorted(notes_dir.rglob("*.md")):
        rel = path.relative_to(notes_dir)
        if any(part.startswith(".") for part in rel.parts):
            continue
        problems = []
        mine = [ln for ln in skips if ln.startswith(f"warning: skipped {path}:")]
        if rel.as_posix() not in indexed and not mine:
            problems.append(f"{rel}: neither indexed nor skipped with a reason")
        if any("could not be parsed" in ln for ln in mine):
            problems.append(f"{rel}: the parser crashed ({mine[0]})")
        drill.record(problems)
    drill.details.append(
        f"{len(indexed)} notes indexed, {len(skips)} skipped, {len(ignored)} timestamps ignored"
    )
    drill.details += [f"skipped: {ln.removeprefix('warning: skipped ')}" for ln in skips]
    drill.details += [f"timestamp ignored: {ln}" for ln in ignored]
    return drill


# --- running them --------------------------------------------------------------------------------------------

#: name: (drill, its full arguments, its arguments with --quick)
DRILLS: dict[str, tuple[Callable[..., Drill], dict[str, Any], dict[str, Any]]] = {
    "kill": (drill_kill, {"runs": 24}, {"runs": 4}),
    "kill-export": (drill_kill_export, {"runs": 2}, {"runs": 1}),
    "two-builds": (drill_two_builds, {"runs": 10}, {"runs": 3}),
    "questions": (drill_questions, {"questions": 500}, {"questions": 40}),
    "server": (drill_server, {"questions": 500}, {"questions": 60}),
    "damage": (drill_damage, {}, {"cases": QUICK_DAMAGE}),
    "disk-full": (drill_disk_full, {}, {"fractions": (0.0, 0.5), "export": False}),
    "file-size": (drill_file_size_limit, {}, {"files": 2}),
    "bad-files": (drill_bad_files, {"replace_runs": 3}, {"replace_runs": 1}),
    "fuzz": (drill_fuzz, {"notes": 150}, {"notes": 30, "worst_chars": 150_000}),
    "corpus": (drill_corpus, {}, {}),
}


def run_drill(name: str, ws: Workspace, kwargs: dict[str, Any]) -> Drill:
    function = DRILLS[name][0]
    started = time.monotonic()
    log(f"== {name}")
    try:
        drill = function(ws, **kwargs)
    except Exception as exc:  # a drill that cannot set itself up is a failed row, not a crash of the others
        drill = Drill(name)
        drill.record([f"the drill itself failed: {type(exc).__name__}: {exc}"[:300]])
    log(f"== {name}: {drill.passed}/{drill.runs} passed in {time.monotonic() - started:.0f} s")
    return drill


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=list(DRILLS), help="run only these drills")
    parser.add_argument("--quick", action="store_true", help="small counts (what the tests run)")
    parser.add_argument(
        "--keep", type=Path, help="work in this folder and keep it (default: a temporary one)"
    )
    parser.add_argument("--worker", choices=list(DRILLS), help=argparse.SUPPRESS)
    parser.add_argument("--worker-args", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="ytnotes-drills-"))
    ws = Workspace(root)
    if args.worker:
        drill = run_drill(args.worker, ws, json.loads(args.worker_args))
        args.worker_out.write_text(json.dumps(asdict(drill)), encoding="utf-8")
        return 0
    try:
        drills = []
        for name in args.only or list(DRILLS):
            kwargs = DRILLS[name][2] if args.quick else DRILLS[name][1]
            drills.append(run_drill(name, ws, kwargs))
        for drill in drills:
            for line in drill.details:
                log(f"[{drill.name}] {line}")
        print(table(drills), flush=True)
        return 0 if all(d.ok or d.not_done for d in drills) else 1
    finally:
        if args.keep is None:
            for path in root.rglob("*"):  # undo the drills' `chmod 0` so the folder can be removed
                if not path.is_symlink() and path.is_dir():
                    path.chmod(0o755)
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
