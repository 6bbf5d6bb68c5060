"""Scale benchmark (issue 15): how every cost grows from the shared corpus to 10x and 100x of it, in one run.

    .venv/bin/python scripts/bench_scale.py [--factors 1,10,100] [--notes ../shared/corpus/notes]
                                            [--work /tmp/ytnotes-scale]

The corpus of factor N is N copies of the shared notes, one folder per copy (``copy-000`` ... ``copy-<N-1>``),
written once under --work and shared by the factors through symlinks. Copy 0 is the shared notes unchanged. Copy
k >= 1 of a note gets, deterministically:

- a new 11-character videoId, a hash of (k, the note's videoId), so notes that share a video still share it;
- its title with " (copy k)" appended (the title is part of every chunk's embedded text);
- 15 % of its words of 4+ letters replaced by other words of the same note, chosen by a generator seeded with a
  hash of (k, the note's path). Never touched: the frontmatter (but title and videoId), the ``From:`` line, HTML
  tags (the timestamp anchors), ``[[wikilinks]]``, anything in square brackets (timestamp labels, plain
  bracketed timestamps), link targets, inline code, ``$...$`` and fenced code blocks. Every anchor stays.

No two notes are identical (checked on the bytes) and no two chunks of different copies are (the build's chunk key
hashes the embedded text; the table prints the distinct keys beside the chunks). The build reuses vectors only
from a previous index, and each factor builds into a fresh index folder, so every chunk is encoded.

Every figure is a real process started afresh, timed by wall clock, peak RSS from wait4:

- the model export, once, timed apart, into a model cache of the benchmark's own (YTNOTES_CACHE under --work),
  which every build then shares, so no build exports;
- a full build (`ytnotes build -v` into the fresh folder): wall time, chunks/s from the manifest's count, peak
  RSS, and the encoder's own chunks/s;
- the generation's size on disk by part (FAISS, SQLite, word vectors, manifest) and per chunk, and the model's;
- `ytnotes info`, median of --info-runs; cold `ytnotes ask`, median of --cold-runs, a different question each;
- warm answers: one process opens the index (IndexHolder on one thread, as a server worker) and times respond(...) on
  --warm questions of scripts/eval/questions.jsonl after 20 warm-up ones: median and p99; the same process
  times opening the index and reading the two FAISS files (where a cold ask's time goes);
- rebuilds: nothing changed, then one note edited (a sentence with an anchor appended), --edits times each.

The machine is shared: the 1-minute load average is printed before each part and kept in the table.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench import live  # noqa: E402

from search import lexicon, store, word_codebook  # noqa: E402

YTNOTES = [sys.executable, "-m", "search"]
QUESTIONS = REPO / "scripts" / "eval" / "questions.jsonl"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
ENCODED = re.compile(r"encoded (\d+) chunks in [\d.]+ s \(([\d.]+) chunks/s")

#: Share of a copy's variable words replaced: enough that no passage of a copy reads like its original's, few
#: enough that the text keeps its topic (and its length, so a copy packs into about as many chunks).
REPLACED = 0.15
METHOD = (
    "copy k of each note in copy-<k>/: k=0 unchanged; k>=1 new videoId hash(k, videoId), title + ' (copy k)', "
    f"{REPLACED:.0%} of words of 4+ letters replaced by words of the same note (seed hash(k, path)), anchors, "
    "[brackets], [[links]], tags, code, frontmatter and From: kept"
)

#: Spans of a body line never changed: HTML tags, wikilinks, brackets, link targets, inline code, inline LaTeX.
_KEEP = re.compile(r"<[^>]*>|\[\[.*?\]\]|\[[^\]]*\](?:\([^)]*\))?|`[^`]*`|\$[^$]*\$")
_WORD = re.compile(r"[A-Za-z]{4,}")
_FENCE = re.compile(r"^\s*(```|~~~)")
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# Targets of issue 15, at the largest factor.
THROUGHPUT_SHARE = 0.85
PEAK_RSS_MB = 2048
BYTES_PER_CHUNK = 4096
COLD_ASK_S = 0.5
WARM_P50_MS = 12.0
EDIT_REBUILD_S = 3.0

WARM = """
import json, resource, statistics, sys, time
from pathlib import Path
started = time.perf_counter()
from search.answering import IndexHolder, one_thread_per_question, respond
from search.retrieve import open_index
from search import store
imported = time.perf_counter()
one_thread_per_question()  # as `serve`'s workers answer (FAISS's and numpy's threads would contend with nothing)
index = open_index(Path(sys.argv[1]), one_shot=True)
opened = time.perf_counter()
index.close()
gen = store.current_generation(Path(sys.argv[1]))
began = time.perf_counter()
store.read_vectors(gen, store.CHUNKS), store.read_vectors(gen, store.SEGMENTS)
faiss_read = time.perf_counter() - began
holder = IndexHolder(Path(sys.argv[1]))
qs = json.loads(Path(sys.argv[2]).read_text())
for q in qs[:20]:
    respond(holder, "ask", {"q": q, "k": 10, "channel": None, "video": None})
times = []
deadline = time.perf_counter() + float(sys.argv[3])
for q in qs[20:]:
    if time.perf_counter() > deadline:
        break
    began = time.perf_counter()
    respond(holder, "ask", {"q": q, "k": 10, "channel": None, "video": None})
    times.append(time.perf_counter() - began)
times.sort()
print(json.dumps({"import": imported - started, "open": opened - imported, "faiss_read": faiss_read,
                  "p50": statistics.median(times), "p99": times[min(len(times) - 1, int(0.99 * len(times)))],
                  "n": len(times), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def vary(text: str, k: int, rel: str) -> str:
    """Copy ``k`` of a note's text (see the module's docstring); copy 0 is the text itself."""
    if k == 0:
        return text
    seed = hashlib.sha256(f"{k}\0{rel}".encode()).digest()
    rng = random.Random(seed)
    lines = text.split("\n")
    body_start = 0
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is not None:
            for i in range(1, end):
                lines[i] = _vary_frontmatter_line(lines[i], k)
            body_start = end + 1
    pool = sorted(set(_WORD.findall("\n".join(lines[body_start:]))))
    fenced = False
    for i in range(body_start, len(lines)):
        line = lines[i]
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced or line.lstrip().lower().startswith("from:") or not pool:
            continue
        lines[i] = _vary_line(line, pool, rng)
    return "\n".join(lines)


def _vary_frontmatter_line(line: str, k: int) -> str:
    import yaml

    key, sep, _ = line.partition(":")
    if not sep or key.strip() not in ("title", "videoId"):
        return line
    try:
        value = yaml.safe_load(line)[key.strip()]
    except (yaml.YAMLError, TypeError, KeyError):
        value = line.partition(":")[2].strip()
    if key.strip() == "title":
        return f"title: {json.dumps(f'{value} (copy {k})', ensure_ascii=False)}"
    return f"videoId: {new_video_id(k, str(value))}"


def new_video_id(k: int, video_id: str) -> str:
    """A deterministic 11-character id for copy ``k`` of a video (not starting with '-', which YAML reads as
    a list)."""
    digest = hashlib.sha256(f"{k}\0{video_id}".encode()).digest()
    chars = base64.b64encode(digest, altchars=b"-_").decode()
    return "v" + chars[:10]


def _vary_line(line: str, pool: list[str], rng: random.Random) -> str:
    out, pos = [], 0
    for m in _KEEP.finditer(line):
        out.append(_vary_words(line[pos : m.start()], pool, rng))
        out.append(m.group(0))
        pos = m.end()
    out.append(_vary_words(line[pos:], pool, rng))
    return "".join(out)


def _vary_words(text: str, pool: list[str], rng: random.Random) -> str:
    return _WORD.sub(lambda m: rng.choice(pool) if rng.random() < REPLACED else m.group(0), text)


def make_copies(notes: Path, work: Path, copies: int) -> Path:
    """Write copy-000 .. copy-<copies-1> under work/copies (the ones missing); the folder holding them."""
    root = work / "copies"
    sources = sorted(p for p in notes.rglob("*.md") if p.is_file())
    for k in range(copies):
        folder = root / f"copy-{k:03d}"
        if (folder / ".done").exists():
            continue
        shutil.rmtree(folder, ignore_errors=True)
        for src in sources:
            rel = src.relative_to(notes).as_posix()
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            data = src.read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                target.write_bytes(data)  # not ours to repair; a build skips or reads it as it would
                continue
            target.write_text(vary(text, k, rel), encoding="utf-8", newline="")
        (folder / ".done").touch()
    return root


def corpus_of(work: Path, copies_root: Path, factor: int) -> Path:
    """A folder of symlinks to the first ``factor`` copies (hidden marker files are skipped by builds)."""
    folder = work / f"corpus-{factor}x"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for k in range(factor):
        (folder / f"copy-{k:03d}").symlink_to(copies_root / f"copy-{k:03d}", target_is_directory=True)
    return folder


def run(cmd: list[str], log: Path) -> tuple[float, int, str]:
    """Run a fresh process with its output in ``log`` (a pipe would fill during a long build): wall seconds,
    the child's own peak RSS (MB, from wait4) and its output."""
    with log.open("w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=ENV, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed ({proc.returncode}):\n{text[-3000:]}")
    return wall, usage.ru_maxrss // 1024, text


#: The largest share of the machine's available memory a build may be projected to take (the machine is shared).
MEMORY_SHARE = 0.6


def available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def projected_rss(figures: list[Figures], factor: int) -> float:
    """The build's peak RSS at ``factor``, extrapolated in a straight line from the last two factors measured."""
    if len(figures) < 2:
        return 0.0
    a, b = figures[-2], figures[-1]
    per = (b.values["build peak RSS, MB"] - a.values["build peak RSS, MB"]) / (b.factor - a.factor)
    return b.values["build peak RSS, MB"] + per * (factor - b.factor)


def load() -> float:
    return os.getloadavg()[0]


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load():.2f}] {message}", file=sys.stderr, flush=True)


@dataclass
class Figures:
    """What one factor measured; numbers only, formatted when printed."""

    factor: int
    values: dict[str, float] = field(default_factory=dict)


def sizes(index: Path, model: Path) -> dict[str, int]:
    """Bytes of the live generation by part, and of the exported model."""
    gen = live(index)
    parts = {"FAISS": 0, "SQLite": 0, "word vectors": 0, "BM25 postings": 0, "manifest": 0, "other": 0}
    for path in gen.iterdir():
        if not path.is_file():
            continue
        name = path.name
        part = (
            "FAISS"
            if name.endswith(".faiss")
            else "SQLite"
            if name.startswith(store.META)
            else "word vectors"
            if name in (store.WORDS, store.WORD_OWNERS, word_codebook.FILE)
            else "BM25 postings"
            if name.startswith(lexicon.TABLES) and name.endswith(".npy")
            else "manifest"
            if name == store.MANIFEST
            else "other"
        )
        parts[part] += path.stat().st_size
    parts["model"] = sum(p.stat().st_size for p in model.rglob("*") if p.is_file())
    return parts


def measure(
    factor: int, corpus: Path, index: Path, model: Path, args: argparse.Namespace, questions: list[str]
) -> Figures:
    fig = Figures(factor)
    v = fig.values
    logs = index.parent / f"logs-{factor}x"
    logs.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(index, ignore_errors=True)
    index.mkdir(parents=True)

    v["load before build"] = load()
    say(f"{factor}x: full build of {corpus}")
    wall, rss, out = run([*YTNOTES, "build", str(corpus), "--index", str(index), "-v"], logs / "build.log")
    manifest = store.read_manifest(live(index))
    counts = manifest["counts"]
    v["notes"], v["chunks"], v["segments"] = counts["notes"], counts["chunks"], counts["segments"]
    import sqlite3

    with sqlite3.connect(live(index) / store.META) as db:
        v["distinct chunk keys"] = db.execute("SELECT count(DISTINCT key) FROM chunks").fetchone()[0]
    encoded = ENCODED.search(out)
    v["chunks encoded"] = int(encoded.group(1)) if encoded else float("nan")
    v["build wall, s"] = wall
    v["build chunks/s"] = counts["chunks"] / wall
    v["encoder chunks/s (build -v)"] = float(encoded.group(2)) if encoded else float("nan")
    v["build peak RSS, MB"] = rss
    say(f"{factor}x: built {counts['chunks']} chunks in {wall:.1f} s, peak RSS {rss} MB")

    parts = sizes(index, model)
    gen_bytes = sum(b for p, b in parts.items() if p != "model")
    for part in ("FAISS", "SQLite", "word vectors", "BM25 postings", "manifest"):
        v[f"size {part}, MB"] = parts[part] / 1e6
    v["size generation, MB"] = gen_bytes / 1e6
    v["size model, MB"] = parts["model"] / 1e6
    v["bytes/chunk, all but FAISS"] = (gen_bytes - parts["FAISS"]) / counts["chunks"]
    v["bytes/chunk, FAISS"] = parts["FAISS"] / counts["chunks"]
    v["bytes/chunk, word vectors"] = parts["word vectors"] / counts["chunks"]
    v["bytes/chunk, SQLite"] = parts["SQLite"] / counts["chunks"]
    v["bytes/chunk, BM25 postings"] = parts["BM25 postings"] / counts["chunks"]

    # The build's files written back to disk before anything is timed (a question must not wait for it).
    os.sync()
    v["load before info/ask"] = load()
    say(f"{factor}x: info and cold ask")
    info = [
        run([*YTNOTES, "info", "--index", str(index)], logs / "info.log")[0] for _ in range(args.info_runs)
    ]
    v["info median, s"] = statistics.median(info)
    step = max(1, len(questions) // (args.cold_runs + 1))
    run([*YTNOTES, "ask", questions[-1], "--index", str(index)], logs / "ask.log")  # OS cache
    asks = [
        run([*YTNOTES, "ask", questions[i * step], "--index", str(index)], logs / "ask.log")
        for i in range(args.cold_runs)
    ]
    v["cold ask median, s"] = statistics.median(a[0] for a in asks)
    v["cold ask peak RSS, MB"] = max(a[1] for a in asks)

    v["load before warm"] = load()
    say(f"{factor}x: warm answers in one process")
    qfile = logs / "questions.json"
    qfile.write_text(json.dumps(questions[: args.warm + 20]))
    _, _, out = run(
        [sys.executable, "-c", WARM, str(index), str(qfile), str(args.warm_seconds)], logs / "warm.log"
    )
    warm = json.loads(out.strip().splitlines()[-1])
    v["warm answers timed"] = warm["n"]
    v["warm answer p50, ms"] = 1000 * warm["p50"]
    v["warm answer p99, ms"] = 1000 * warm["p99"]
    v["warm process RSS, MB"] = warm["rss_mb"]
    v["open index (one_shot), s"] = warm["open"]
    v["read both FAISS files, s"] = warm["faiss_read"]

    v["load before rebuilds"] = load()
    say(f"{factor}x: rebuilds")
    build = [*YTNOTES, "build", str(corpus), "--index", str(index)]
    nothing = [run(build, logs / "rebuild.log")[0] for _ in range(args.edits)]
    v["rebuild, nothing changed, s"] = statistics.median(nothing)
    last_copy = corpus / f"copy-{factor - 1:03d}"
    notes = sorted(last_copy.rglob("*.md"))
    edits = []
    extended = 0  # rebuilds that extended the live generation rather than rewrote it (search.parts)
    originals: dict[Path, bytes] = {}
    for n in range(args.edits):
        note = notes[(n + 1) * len(notes) // (args.edits + 1)]
        originals[note] = note.read_bytes()
        with note.open("a", encoding="utf-8") as f:
            f.write(
                f'\nA scale benchmark edit, number {n} <a class="yt-timestamp" data-t="00:00:0{n}">'
                f"[00:00:0{n}]</a>.\n"
            )
        edits.append(run(build, logs / "rebuild.log")[0])
        extended += "tail" in store.read_manifest(store.current_generation(index))
    v["rebuild, one note edited, s"] = statistics.median(edits)
    v["edited rebuilds that added a tail"] = extended
    for note, data in originals.items():  # the copies stay as made (a larger factor reads them too)
        note.write_bytes(data)
    say(f"{factor}x: done")
    return fig


#: Rows of the table: (figure, format). Counts first; the chunk count's growth is the yardstick.
ROWS: list[tuple[str, str]] = [
    ("notes", "{:.0f}"),
    ("chunks", "{:.0f}"),
    ("distinct chunk keys", "{:.0f}"),
    ("chunks encoded", "{:.0f}"),
    ("segments", "{:.0f}"),
    ("build wall, s", "{:.1f}"),
    ("build chunks/s", "{:.1f}"),
    ("encoder chunks/s (build -v)", "{:.1f}"),
    ("build peak RSS, MB", "{:.0f}"),
    ("size FAISS, MB", "{:.1f}"),
    ("size SQLite, MB", "{:.1f}"),
    ("size word vectors, MB", "{:.1f}"),
    ("size BM25 postings, MB", "{:.1f}"),
    ("size manifest, MB", "{:.2f}"),
    ("size generation, MB", "{:.1f}"),
    ("size model, MB", "{:.1f}"),
    ("bytes/chunk, FAISS", "{:.0f}"),
    ("bytes/chunk, word vectors", "{:.0f}"),
    ("bytes/chunk, SQLite", "{:.0f}"),
    ("bytes/chunk, BM25 postings", "{:.0f}"),
    ("bytes/chunk, all but FAISS", "{:.0f}"),
    ("info median, s", "{:.3f}"),
    ("cold ask median, s", "{:.3f}"),
    ("cold ask peak RSS, MB", "{:.0f}"),
    ("open index (one_shot), s", "{:.3f}"),
    ("read both FAISS files, s", "{:.3f}"),
    ("warm answers timed", "{:.0f}"),
    ("warm answer p50, ms", "{:.1f}"),
    ("warm answer p99, ms", "{:.1f}"),
    ("warm process RSS, MB", "{:.0f}"),
    ("rebuild, nothing changed, s", "{:.2f}"),
    ("rebuild, one note edited, s", "{:.2f}"),
    ("edited rebuilds that added a tail", "{:.0f}"),
    ("load before build", "{:.2f}"),
    ("load before info/ask", "{:.2f}"),
    ("load before warm", "{:.2f}"),
    ("load before rebuilds", "{:.2f}"),
]


def table(figures: list[Figures]) -> list[str]:
    first, last = figures[0], figures[-1]
    chunk_growth = last.values["chunks"] / first.values["chunks"]
    head = [
        "figure",
        *(f"{f.factor}x" for f in figures),
        f"growth {first.factor}x->{last.factor}x",
        "vs chunks'",
    ]
    rows = [head]
    for name, fmt in ROWS:
        cells = [fmt.format(f.values[name]) for f in figures]
        a, b = first.values[name], last.values[name]
        if not a:  # a count that starts at 0 (no rebuild extends at 1x): no growth to give
            rows.append([name, *cells, "", ""])
            continue
        growth = b / a
        relative = "" if name.startswith("load") else f"{growth / chunk_growth:.2f}"
        rows.append([name, *cells, f"{growth:.2f}x", relative])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]


def verdicts(figures: list[Figures]) -> list[str]:
    first, last = figures[0].values, figures[-1].values
    checks: list[tuple[str, Callable[[], bool], str]] = [
        (
            f"build chunks/s within 15 % of {figures[0].factor}x's",
            lambda: last["build chunks/s"] >= THROUGHPUT_SHARE * first["build chunks/s"],
            f"{last['build chunks/s']:.1f} vs {first['build chunks/s']:.1f} "
            f"({last['build chunks/s'] / first['build chunks/s']:.0%})",
        ),
        (
            f"build peak RSS <= {PEAK_RSS_MB} MB",
            lambda: last["build peak RSS, MB"] <= PEAK_RSS_MB,
            f"{last['build peak RSS, MB']:.0f} MB",
        ),
        (
            f"index <= {BYTES_PER_CHUNK} B/chunk + FAISS",
            lambda: last["bytes/chunk, all but FAISS"] <= BYTES_PER_CHUNK,
            f"{last['bytes/chunk, all but FAISS']:.0f} B/chunk besides FAISS",
        ),
        (
            f"cold ask <= {COLD_ASK_S} s",
            lambda: last["cold ask median, s"] <= COLD_ASK_S,
            f"{last['cold ask median, s']:.3f} s",
        ),
        (
            f"warm answer p50 <= {WARM_P50_MS:.0f} ms",
            lambda: last["warm answer p50, ms"] <= WARM_P50_MS,
            f"{last['warm answer p50, ms']:.1f} ms",
        ),
        (
            f"rebuild of one edited note <= {EDIT_REBUILD_S:.0f} s",
            lambda: last["rebuild, one note edited, s"] <= EDIT_REBUILD_S,
            f"{last['rebuild, one note edited, s']:.2f} s",
        ),
    ]
    width = max(len(c[0]) for c in checks)
    lines = [f"targets at {figures[-1].factor}x ({last['chunks']:.0f} chunks):"]
    for name, ok, value in checks:
        lines.append(f"  {name:<{width}}  {'met' if ok() else 'NOT met':<7}  {value}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=Path, default=REPO.parent / "shared" / "corpus" / "notes")
    ap.add_argument("--factors", default="1,10,100", help="copies of the corpus, comma-separated, ascending")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ytnotes-scale"), help="corpora and indexes")
    ap.add_argument("--cold-runs", type=int, default=7)
    ap.add_argument("--info-runs", type=int, default=5)
    ap.add_argument("--warm", type=int, default=300, help="questions answered warm (after 20 warm-up ones)")
    ap.add_argument(
        "--warm-seconds", type=float, default=120, help="stop the warm answers after this long (a slow index)"
    )
    ap.add_argument("--edits", type=int, default=3, help="rebuilds of each kind")
    args = ap.parse_args()
    factors = sorted({int(f) for f in args.factors.split(",")})
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    questions = [json.loads(line)["q"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line]

    say(f"writing {factors[-1]} copies of {args.notes} under {work / 'copies'}")
    began = time.perf_counter()
    copies = make_copies(args.notes, work, factors[-1])
    written = sorted(copies.rglob("*.md"))
    distinct = len({hashlib.sha256(p.read_bytes()).digest() for p in written})
    say(f"{len(written)} notes, {distinct} distinct, in {time.perf_counter() - began:.0f} s")
    if distinct != len(written):
        raise SystemExit("two copies of a note are identical; the variation failed")

    say("exporting the model once (not part of any build below)")
    cache = work / "models"
    shutil.rmtree(cache, ignore_errors=True)
    ENV["YTNOTES_CACHE"] = str(cache)
    export, export_rss, out = run(
        [sys.executable, "-c", "from search import embed; print(embed.ensure_exported())"],
        work / "export.log",
    )
    model = Path(out.strip().splitlines()[-1])

    figures: list[Figures] = []
    for f in factors:
        projected = projected_rss(figures, f)
        if projected > MEMORY_SHARE * available_mb():
            say(
                f"not building {f}x: its build would need about {projected:.0f} MB (growing as measured so far)"
            )
            break
        figures.append(measure(f, corpus_of(work, copies, f), work / f"index-{f}x", model, args, questions))
    print(
        f"ytnotes scale benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores "
        f"shared with other work (load averages below); python {sys.version.split()[0]}"
    )
    print(f"corpora: {METHOD}")
    print(f"model export, once, before the builds: {export:.1f} s, peak RSS {export_rss} MB")
    print(
        f"cold ask: median of {args.cold_runs} fresh processes, different questions; warm: one process, "
        f"{args.warm} questions after 20; info: median of {args.info_runs}; rebuilds: median of {args.edits}"
    )
    for line in table(figures):
        print(line)
    for line in verdicts(figures):
        print(line)
    print(f"corpora and indexes left in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
