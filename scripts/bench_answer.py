"""What an answer costs in a process that answers many questions (as `serve` does), and what the in-memory layout
saves against SQL queries.

    .venv/bin/python scripts/bench_answer.py --index DIR [--beside DIR] [--questions 300] [--rounds 2]

One process, one thread (as the server's workers), the index opened as a worker opens it. For each question in
turn: the question's encoding alone, then a whole answer (`search.answering.respond`, k=10, the JSON included) in
each of two ways, in an order that alternates between rounds: as shipped; with SQL queries instead of the layout.
Printed: the median time of each, each way's ratio to the shipped one, and the shipped answer's ratio to the
encoding (issue 15's "whole answer <= 2x the encoding"). The questions are taken from the evaluation sets in
turns (one of each set, then the next of each), so every set's kind of question is in the first hundred.
``--beside``: another index answered the same way, interleaved (e.g. the same notes before a rebuild extended them
with a tail, `search/parts.py`). (BM25 from the build's postings against FTS5's bm25() was measured here too, 0.7x
the answer time on 22k passages, until the index stopped keeping the FTS5 tables.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from itertools import zip_longest
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SETS = ("questions", "questions-2", "questions-3", "questions-4", "questions-5")


def _questions(name: str) -> list[str]:
    """The questions of an evaluation set, in its order."""
    path = REPO / "scripts" / "eval" / f"{name}.jsonl"
    return [json.loads(line)["q"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--index", type=Path, required=True, help="a built index (e.g. of ../shared/corpus/notes)"
    )
    ap.add_argument("--beside", type=Path, help="another index, answered in turn with the shipped way")
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from search import retrieve
    from search.answering import IndexHolder, one_thread_per_question, respond

    one_thread_per_question()
    holder = IndexHolder(args.index)
    index = holder.get()
    layout = retrieve.Index.layout
    questions = [q for turn in zip_longest(*map(_questions, SETS)) for q in turn if q is not None][
        : args.questions
    ]

    beside = IndexHolder(args.beside) if args.beside else None
    chosen = holder

    def answer(q: str) -> None:
        respond(chosen, "ask", {"q": q, "k": 10, "channel": None, "video": None})

    def use(way: str) -> None:
        nonlocal chosen
        chosen = beside if beside is not None and way == f"beside ({args.beside})" else holder
        retrieve.Index.layout = property(lambda self: None) if way == "SQL, no layout" else layout  # type: ignore[method-assign,assignment]

    ways: tuple[str, ...] = ("shipped", "SQL, no layout")
    if beside is not None:
        ways += (f"beside ({args.beside})",)
    for q in questions[:20]:  # warm-up: the layout is read, the pages are mapped
        for way in ways:
            use(way)
            answer(q)
    times: dict[str, list[float]] = {"encode": [], **{w: [] for w in ways}}
    for r in range(args.rounds):
        order = ways if r % 2 == 0 else ways[::-1]
        for q in questions:
            began = time.perf_counter()
            index.encoder.encode([q])
            times["encode"].append(time.perf_counter() - began)
            for way in order:
                use(way)
                began = time.perf_counter()
                answer(q)
                times[way].append(time.perf_counter() - began)
    use("shipped")
    median = {k: 1000 * statistics.median(v) for k, v in times.items()}
    print(
        f"{describe(args.index, index.manifest)}; {len(questions)} questions x {args.rounds} rounds, one process, "
        f"one thread; load average {os.getloadavg()[0]:.2f}"
    )
    if beside is not None:
        print(f"beside it: {describe(args.beside, beside.get().manifest)}")
    print(f"{'work':<34} {'p50, ms':>8} {'vs shipped':>11}")
    print(f"{'encode the question (fp32)':<34} {median['encode']:>8.2f} {'':>11}")
    for way in ways:
        print(f"{'answer, ' + way:<34} {median[way]:>8.2f} {median[way] / median['shipped']:>10.2f}x")
    print(f"answer / encode (shipped)          {median['shipped'] / median['encode']:.2f}x (issue 15: <= 2x)")
    return 0


def describe(path: Path, manifest: dict[str, Any]) -> str:
    """An index's counts, and its tail's rows when it has one (`search/parts.py`)."""
    counts = manifest["counts"]
    text = f"{path}: {counts['notes']} notes, {counts['chunks']} passages, {counts['segments']} segments"
    tail = manifest.get("tail")
    if tail is None:
        return text
    return f"{text} (a tail after passage {tail['chunks']} and segment {tail['segments']})"


if __name__ == "__main__":
    raise SystemExit(main())
