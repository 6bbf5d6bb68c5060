"""Speed benchmark: builds, rebuilds, and cold CLI processes, in one run, as medians and ratios.

    .venv/bin/python scripts/bench.py [--notes ../shared/corpus/notes] [--runs 10] [--builds 1]

Every figure is a real process: `ytnotes` started fresh each time (files in the OS cache), timed by wall clock,
peak RSS from the kernel. The naive pipeline is sentence-transformers (torch fp32, batch 32) encoding the same
chunk texts ytnotes embeds, in a process of its own that imports it, loads the model and reads the texts from
SQLite (not parsing notes, not writing an index). Three ratios: whole process against whole process (the full
build's ratio), encoding against encoding, and, strictest, ytnotes' whole process against the naive encoding
alone.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
YTNOTES = [sys.executable, "-m", "search"]
#: What `ytnotes build -v` says of its encoding speed.
ENCODED = re.compile(r"encoded \d+ chunks in [\d.]+ s \(([\d.]+) chunks/s")
QUESTION = "how does a transformer decide which words to pay attention to?"

NAIVE = """
import json, sys, time, sqlite3
from search import embed
from search.chunks import stored_embed_text
embed.offline()
from sentence_transformers import SentenceTransformer
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT n.title, c.heading, (SELECT group_concat(s.text, ' ') FROM (SELECT text FROM segments "
    "WHERE id >= c.seg_start AND id < c.seg_end ORDER BY id) s) FROM chunks c JOIN notes n ON n.id = c.note_id "
    "ORDER BY c.id"
)
texts = [stored_embed_text(title, tuple(json.loads(heading)), text) for title, heading, text in rows]
model = SentenceTransformer(str(embed.model_path()), device="cpu")
model.max_seq_length = embed.MAX_SEQ_LENGTH
started = time.perf_counter()
model.encode(texts, batch_size=32, normalize_embeddings=True)
print(len(texts), time.perf_counter() - started)
"""


def timed(cmd: list[str], runs: int) -> tuple[float, int]:
    """Median wall seconds and peak RSS over runs (after one warm-up)."""
    run_rss(cmd)
    walls, peak = [], 0
    for _ in range(runs):
        wall, rss, _ = run_rss(cmd)
        walls.append(wall)
        peak = max(peak, rss)
    return statistics.median(walls), peak


def run_rss(cmd: list[str]) -> tuple[float, int, str]:
    """Like run, with the child's own peak RSS (MB) from wait4; gives stdout, then stderr."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed:\n{err}")
    return wall, usage.ru_maxrss // 1024, out + err


def live(index: Path) -> Path:
    """The generation folder CURRENT names."""
    return index / (index / "CURRENT").read_text().strip()


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=Path, default=REPO.parent / "shared" / "corpus" / "notes")
    ap.add_argument("--runs", type=int, default=10, help="processes per cold-start median")
    ap.add_argument(
        "--builds", type=int, default=3, help="full builds (and naive runs) to take the median of"
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ytnotes-bench-"))
    notes = work / "notes"
    shutil.copytree(args.notes, notes)
    index = work / "index"
    # A model cache of its own, empty: the first build exports the model, as a new user's does.
    os.environ["YTNOTES_CACHE"] = str(work / "cache")
    rows: list[tuple[str, str]] = []

    first, first_rss, _ = run_rss([*YTNOTES, "build", str(notes), "--index", str(index)])
    rows.append(("first build (exports the model once)", f"{first:.1f} s, peak RSS {first_rss} MB"))
    # Rounds of (ytnotes full build, naive run), interleaved so that the machine's drift (its speed moves by 10-20 %
    # within minutes) touches both alike; each ratio is the median of the rounds' ratios.
    gen = live(index)
    n_chunks = sqlite3.connect(gen / "meta.sqlite").execute("SELECT count(*) FROM chunks").fetchone()[0]
    builds, naive, naive_whole, naive_rss = [], [], [], 0
    for _ in range(args.builds):
        builds.append(run_rss([*YTNOTES, "build", str(notes), "--index", str(index), "--full", "-v"]))
        gen = live(index)
        wall, rss, out = run_rss([sys.executable, "-c", NAIVE, str(gen / "meta.sqlite")])
        count, seconds = out.split()[:2]
        naive.append(int(count) / float(seconds))
        naive_whole.append(wall)
        naive_rss = max(naive_rss, rss)
    encode_rates = [float(m.group(1)) for b in builds for m in [ENCODED.search(b[2])] if m]
    build_walls = [b[0] for b in builds]
    build_wall = statistics.median(build_walls)
    build_rss = max(b[1] for b in builds)
    ours = n_chunks / build_wall
    naive_rate = statistics.median(naive)
    naive_wall = statistics.median(naive_whole)
    med = f"median of {args.builds}"
    rows.append(
        (
            f"full build, ytnotes (whole process, {med})",
            f"{build_wall:.1f} s, {ours:.1f} chunks/s, peak RSS {build_rss} MB",
        )
    )
    rows.append(
        (
            "naive: whole process (import, load, encode)",
            f"{naive_wall:.1f} s, {n_chunks / naive_wall:.1f} chunks/s, peak RSS {naive_rss} MB",
        )
    )
    rows.append(("naive: encoding alone", f"{naive_rate:.1f} chunks/s"))
    whole = statistics.median(n / b for n, b in zip(naive_whole, build_walls, strict=True))
    rows.append(("full build ratio, whole process / whole process", f"{whole:.2f}x  (target >= 2.5x)"))
    if len(encode_rates) == len(naive):
        rows.append(
            ("ytnotes encoding alone (from build -v)", f"{statistics.median(encode_rates):.1f} chunks/s")
        )
        encoding = statistics.median(e / n for e, n in zip(encode_rates, naive, strict=True))
        rows.append(("encoding ratio, ytnotes / naive", f"{encoding:.2f}x  (like for like)"))
    strictest = statistics.median(n_chunks / b / n for b, n in zip(build_walls, naive, strict=True))
    rows.append(("strictest: ytnotes whole process / naive encoding", f"{strictest:.2f}x"))

    ask, ask_rss = timed([*YTNOTES, "ask", QUESTION, "--index", str(index)], args.runs)
    rows.append(
        (
            f"cold `ytnotes ask`, median of {args.runs}",
            f"{ask:.3f} s, peak RSS {ask_rss} MB  (target <= 0.5 s)",
        )
    )
    helped, _ = timed([*YTNOTES, "--help"], args.runs)
    rows.append((f"`ytnotes --help`, median of {args.runs}", f"{helped:.3f} s  (target <= 0.3 s)"))

    nothing, _ = timed([*YTNOTES, "build", str(notes), "--index", str(index)], 5)
    rows.append(("rebuild, nothing changed, median of 5", f"{nothing:.3f} s  (target <= 1 s)"))
    edits = []
    targets = sorted(notes.rglob("*.md"))[:: max(1, len(list(notes.rglob("*.md"))) // 5)][:5]
    for n, note in enumerate(targets):
        with note.open("a", encoding="utf-8") as f:
            f.write(
                f'\nA benchmark edit number {n} <a class="yt-timestamp" data-t="00:00:0{n}">[00:00:0{n}]</a>.\n'
            )
        edits.append(run_rss([*YTNOTES, "build", str(notes), "--index", str(index)])[0])
    rows.append(
        (
            f"rebuild after editing one note, median of {len(edits)}",
            f"{statistics.median(edits):.3f} s  (target <= 2 s)",
        )
    )

    gen = live(index)
    rows.append(
        (
            "index size on disk",
            f"{size(gen) / 1e6:.1f} MB (+ exported model {size(work / 'cache') / 1e6:.1f} MB, shared by all indexes)",
        )
    )

    width = max(len(r[0]) for r in rows)
    print(
        f"corpus: {args.notes} ({len(list(notes.rglob('*.md')))} notes, {n_chunks} chunks); "
        f"{os.cpu_count()} cores; python {sys.version.split()[0]}"
    )
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
