"""What uvicorn's C parts (httptools for HTTP, uvloop for the event loop) save `ytnotes serve`, against its
pure-Python fallbacks (h11, asyncio's loop), interleaved in one run.

    .venv/bin/python scripts/bench_http.py --index DIR [--rounds 3] [--seconds 15] [--clients 8]

DIR: a built index (e.g. of ../shared/corpus/notes). Each round starts the real server twice, in turn: as shipped
(uvicorn picks httptools and uvloop when they are installed) and with both made unimportable in the server process,
so uvicorn falls back to h11 and asyncio (the worker processes, which answer, are the same either way). Each time
--clients clients ask the evaluation questions for --seconds (scripts/bench_serve.py's clients), then one client
does. Printed: the medians over the rounds of the answers per second, the server's CPU per answer (the server and
its workers) and the one-client p50, and each median's ratio, plain / shipped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serve import QUESTIONS, YTNOTES, measure, percentile

#: ytnotes with httptools and uvloop unimportable: uvicorn's "auto" choices then fall back to h11 and asyncio.
PLAIN = [
    sys.executable,
    "-c",
    "import sys; sys.modules['httptools'] = sys.modules['uvloop'] = None; "
    "from search.cli import main; sys.argv[0] = 'ytnotes'; main()",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True, help="a built index")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    questions = [json.loads(line)["q"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line]
    ways = {"shipped (httptools, uvloop)": YTNOTES, "plain (h11, asyncio)": PLAIN}
    rate: dict[str, list[float]] = {way: [] for way in ways}
    cpu: dict[str, list[float]] = {way: [] for way in ways}
    p50: dict[str, list[float]] = {way: [] for way in ways}
    for n in range(args.rounds):
        # Alternate which way goes first, so a drift in the machine's speed falls on both alike.
        for way in list(ways) if n % 2 == 0 else list(ways)[::-1]:
            run = measure(args.index, questions, args.clients, args.seconds, "ask", [], ways[way])
            rate[way].append(len(run.ms) / run.elapsed)
            cpu[way].append(1000 * run.server_cpu / max(1, len(run.ms)))
            one = measure(args.index, questions, 1, args.seconds, "ask", [], ways[way])
            p50[way].append(percentile(one.ms, 50))
    print(
        f"{args.rounds} rounds x {args.seconds:.0f} s, GET /api/ask, {len(questions)} questions, "
        f"{args.clients} clients then 1; medians over the rounds"
    )
    print(f"{'server':<30} {'answers/s':>10} {'CPU ms/answer':>14} {'1 client p50 ms':>16}")
    for way in ways:
        print(
            f"{way:<30} {statistics.median(rate[way]):>10.1f} {statistics.median(cpu[way]):>14.2f} "
            f"{statistics.median(p50[way]):>16.2f}"
        )
    shipped, plain = list(ways)
    print(
        f"plain / shipped: answers/s {statistics.median(rate[plain]) / statistics.median(rate[shipped]):.2f}x, "
        f"CPU {statistics.median(cpu[plain]) / statistics.median(cpu[shipped]):.2f}x, "
        f"1-client p50 {statistics.median(p50[plain]) / statistics.median(p50[shipped]):.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
