"""The most answers per second any `ytnotes serve` could give on this machine, from the work each answer needs.

    .venv/bin/python scripts/serve_ceiling.py --index DIR [--seconds 10] [--rounds 3] [--clients 8]

One process per core (as the server's workers), each with the index open as a worker opens it, does the same work
over and over for --seconds, with no HTTP and no clients on the machine:

- encode: only the question's embedding (the fp32 question encoder that issue 4 holds to cosine >= 0.999 with
  sentence-transformers), the least any answer costs;
- answer: everything a worker does for GET /api/ask (the embedding, the retrieval, the JSON).

For each: answers per second (all processes), the median time of one, and by Little's law the mean wait of
--clients clients that each ask again as soon as answered (clients / throughput), which the p50 of
scripts/bench_serve.py follows (p50 55.4 ms at 142.2/s: 8 / 142.2 = 56.3 ms). A real server also parses HTTP and
shares the cores with its clients, so it does worse than these ceilings. The rounds alternate the two kinds;
printed are the medians of the rounds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = REPO / "scripts" / "eval" / "questions.jsonl"
TARGET_P50_MS = 20  # issue 5, for 8 clients

_holder: Any = None


def _open(index: str) -> None:
    global _holder
    import sys

    sys.path.insert(0, str(REPO))
    from search.answering import IndexHolder, one_thread_per_question

    one_thread_per_question()  # as in the server's workers
    _holder = IndexHolder(Path(index))


def _loop(kind: str, questions: list[str], start: int, seconds: float) -> list[float]:
    """Do ``kind`` for each question in turn for ``seconds``; the time of each, in seconds."""
    from search.answering import respond

    encoder = _holder.get().encoder
    for q in questions[:20]:  # warm-up
        respond(_holder, "ask", {"q": q, "k": 10, "channel": None, "video": None})
    times = []
    n = start
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        q = questions[n % len(questions)]
        n += 1
        began = time.perf_counter()
        if kind == "encode":
            encoder.encode([q])
        else:
            respond(_holder, "ask", {"q": q, "k": 10, "channel": None, "video": None})
        times.append(time.perf_counter() - began)
    return times


def measure(
    index: Path, kinds: tuple[str, ...], cores: int, seconds: float, rounds: int, questions: list[str]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each kind of work in ``cores`` processes for ``seconds``, the kinds in turn, ``rounds`` times: each
    round's answers per second (all processes) and median time of one (seconds), by kind."""
    context = multiprocessing.get_context("spawn")
    rates: dict[str, list[float]] = {kind: [] for kind in kinds}
    medians: dict[str, list[float]] = {kind: [] for kind in kinds}
    with context.Pool(cores, initializer=_open, initargs=(str(index),)) as pool:
        for _ in range(rounds):
            for kind in kinds:
                spacing = len(questions) // cores
                per_process = pool.starmap(
                    _loop, [(kind, questions, i * spacing, seconds) for i in range(cores)]
                )
                rates[kind].append(sum(len(times) / sum(times) for times in per_process))
                medians[kind].append(statistics.median(t for times in per_process for t in times))
    return rates, medians


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--index", type=Path, required=True, help="a built index (e.g. of ../shared/corpus/notes)"
    )
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="default: one per core")
    args = ap.parse_args()
    questions = [json.loads(line)["q"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line]
    cores = args.processes
    rates, medians = measure(args.index, ("encode", "answer"), cores, args.seconds, args.rounds, questions)
    print(
        f"{cores} processes, {args.seconds:.0f} s x {args.rounds} rounds, {len(questions)} questions, no HTTP"
    )
    print(
        f"{'work per answer':<44} {'answers/s':>10} {'one, ms':>8} {f'{args.clients} clients wait, ms':>20}"
    )
    for kind, label in (
        ("encode", "encode the question (fp32)"),
        ("answer", "answer (encode, retrieve, JSON)"),
    ):
        rate = statistics.median(rates[kind])
        one = 1000 * statistics.median(medians[kind])
        print(f"{label:<44} {rate:>10.1f} {one:>8.2f} {1000 * args.clients / rate:>20.1f}")
    encode, answer = (1000 * statistics.median(medians[kind]) for kind in ("encode", "answer"))
    print(f"answer / encode (one, ms): {answer / encode:.2f}x (issue 15: <= 2x)")
    print(
        f"target      p50 <= {TARGET_P50_MS} ms with {args.clients} clients needs >= "
        f"{1000 * args.clients / TARGET_P50_MS:.0f} answers/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
