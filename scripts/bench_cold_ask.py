"""Cold `ytnotes ask` of this tree against another commit's, interleaved in one run: medians and the difference.

    .venv/bin/python scripts/bench_cold_ask.py --index /tmp/evidx --base 3856923 [--runs 15]

The base commit is checked out into a temporary git worktree; both trees answer the same question from the same
index (the index format must be one both read), each a fresh process started by this interpreter, in turns (the
machine's speed drifts over minutes, so an A/B in turns is fairer than two blocks).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUESTION = "how does a transformer decide which words to pay attention to?"


def cold_ask(tree: Path, index: Path, question: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "search", "ask", question, "--index", str(index)],
        cwd=tree,
        check=True,
        capture_output=True,
        env={"PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--base", required=True, help="the commit to compare with")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--question", default=QUESTION)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ytnotes-base-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), args.base],
            check=True,
            capture_output=True,
        )
        try:
            trees = {"this tree": REPO, f"base {args.base}": base}
            times: dict[str, list[float]] = {name: [] for name in trees}
            for tree in trees.values():
                cold_ask(tree, args.index, args.question)  # warm the OS cache for each
            for _ in range(args.runs):
                for name, tree in trees.items():
                    times[name].append(cold_ask(tree, args.index, args.question))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=False)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"cold `ytnotes ask`, {args.runs} runs each in turns, medians")
    for name, m in medians.items():
        print(f"{name:<20} {m * 1000:8.1f} ms")
    this, other = medians["this tree"], medians[f"base {args.base}"]
    print(f"difference           {(this - other) * 1000:+8.1f} ms  (ratio {this / other:.3f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
