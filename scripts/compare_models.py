"""Measure embedding models side by side: for each, one build of the notes, its speed and size, a cold `ask`, and
scripts/eval.py's answer-quality table.

    .venv/bin/python scripts/compare_models.py bundled ~/models/all-mpnet-base-v2
    .venv/bin/python scripts/compare_models.py bundled ~/models/m --notes ~/notes --questions my_questions.jsonl
    .venv/bin/python scripts/compare_models.py bundled ~/models/m --split dev     # keep the held-out part unseen

``bundled`` names the bundled all-MiniLM-L6-v2. Each model gets a fresh index and a fresh model cache in a
temporary folder, so its build time includes the one-time export (given apart: the build's own encoding rate is
what `build -v` prints). Cold `ask`: a new `ytnotes ask` process, median of COLD_RUNS, files in the OS cache.
Everything runs through the real CLI, offline.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Every question set, and the inputs nothing answers (its "flagged" column).
QUESTIONS = [
    REPO / "scripts" / "eval" / f
    for f in (
        "questions.jsonl",
        "questions-2.jsonl",
        "questions-3.jsonl",
        "questions-4.jsonl",
        "questions-5.jsonl",
        "questions-6.jsonl",
        "unrelated.jsonl",
    )
]
COLD_RUNS = 5
COLD_QUESTION = "why did he drop out of college?"


def run(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """A command, its seconds of wall time; a failure stops the script with its stderr."""
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{proc.stderr}")
    return proc, seconds


def measure(
    model: str, notes: Path, questions: list[Path], work: Path, split: str | None = None
) -> dict[str, object]:
    """One model's row and its eval table (only ``split``'s rows, when given)."""
    index, cache = work / "index", work / "cache"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "YTNOTES_CACHE": str(cache)}
    env.pop("YTNOTES_MODEL", None)
    cli = [sys.executable, "-m", "search"]
    flag = [] if model == "bundled" else ["--model", model]
    built, build_s = run([*cli, "build", str(notes), "--index", str(index), "-v", *flag], env)
    rate = re.search(r"encoded (\d+) chunks in ([\d.]+) s \(([\d.]+) chunks/s", built.stderr)
    info = json.loads(run([*cli, "info", "--json", "--index", str(index)], env)[0].stdout)
    cold = [run([*cli, "ask", COLD_QUESTION, "--index", str(index)], env)[1] for _ in range(COLD_RUNS)]
    evaluated, _ = run(
        [
            sys.executable,
            "scripts/eval.py",
            *map(str, questions),
            "--notes",
            str(notes),
            "--index",
            str(index),
            *(["--split", split] if split else []),
        ],
        env,
    )
    return {
        "model": info["model"],
        "dimension": info["dimension"],
        "chunks": info["chunks"],
        "build_s": build_s,
        "chunks_per_s": float(rate.group(3)) if rate else float("nan"),
        "index_mb": info["size_bytes"] / 1e6,
        "cold_ask_ms": statistics.median(cold) * 1000,
        "eval": evaluated.stdout,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="model folders, or 'bundled' for all-MiniLM-L6-v2")
    ap.add_argument("--notes", type=Path, default=REPO.parent / "shared" / "corpus" / "notes")
    ap.add_argument("--questions", type=Path, nargs="+", default=QUESTIONS)
    ap.add_argument(
        "--split",
        choices=["dev", "test", "all"],
        help="print only this split's rows (dev keeps test held out)",
    )
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ytnotes-models-") as tmp:
        for n, model in enumerate(args.models):
            print(f"measuring {model}…", file=sys.stderr)
            rows.append(measure(model, args.notes, args.questions, Path(tmp) / str(n), args.split))
    print(
        "| model | dim | chunks | first build s (with export) | chunks/s (encoding) | index MB | cold ask ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['dimension']} | {r['chunks']} | {r['build_s']:.0f} | {r['chunks_per_s']:.1f} "
            f"| {r['index_mb']:.1f} | {r['cold_ask_ms']:.0f} |"
        )
    for r in rows:
        print(f"\n{r['model']}:\n{r['eval']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
