"""Cold `ytnotes ask` of this tree against another commit's, interleaved in one run: medians and the difference.

    .venv/bin/python scripts/bench_cold_ask.py --index /tmp/evidx --base 3856923 [--runs 15]

The base commit is checked out into a temporary git worktree; both trees answer the same question from the same
index (the index format must be one both read), each a fresh process started by this interpreter, in turns (the
machine's speed drifts over minutes, so an A/B in turns is fairer than two blocks). When the index format changed
since the base, ``--base-build NOTES`` has the base tree build its own index of the same notes first (into the
temporary folder, its build not timed), and the base answers from that:

    .venv/bin/python scripts/bench_cold_ask.py --index /tmp/evidx --base 3856923 --base-build ../shared/corpus/notes

``--base-path DIR`` puts DIR first on the base's import path: another version of a dependency against the one
installed, the same commit on both sides (``pip install --no-deps --target DIR typer==0.29.2``):

    .venv/bin/python scripts/bench_cold_ask.py --index /tmp/evidx --base HEAD --base-path /tmp/typer-0.29.2

``--rebuild`` times a rebuild with nothing changed (`ytnotes build --index IDX`) instead of a question: IDX must be
this tree's build of the notes, and ``--base-build`` gives the base its own (the first, untimed run of each brings
an index up to date if it is not).

    .venv/bin/python scripts/bench_cold_ask.py --index /tmp/evidx --base HEAD~1 --base-build NOTES --rebuild
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUESTION = "how does a transformer decide which words to pay attention to?"


def ytnotes(tree: Path, *args: str, path: Path | None = None) -> None:
    """A fresh `ytnotes` process of a tree, run by this interpreter (``path`` first on its import path)."""
    imports = [str(tree)] if path is None else [str(path), str(tree)]
    subprocess.run(
        [sys.executable, "-m", "search", *args],
        cwd=tree,
        check=True,
        capture_output=True,
        env={"PYTHONPATH": os.pathsep.join(imports), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )


def cold_ask(tree: Path, index: Path, question: str | None, path: Path | None = None) -> float:
    """Seconds a fresh process of a tree takes to answer ``question`` (None: to rebuild, nothing changed)."""
    command = ["build"] if question is None else ["ask", question]
    started = time.perf_counter()
    ytnotes(tree, *command, "--index", str(index), path=path)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--base", required=True, help="the commit to compare with")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--question", default=QUESTION)
    ap.add_argument(
        "--base-build",
        type=Path,
        metavar="NOTES",
        help="the base reads another index format: it answers from its own build of these notes",
    )
    ap.add_argument(
        "--base-path",
        type=Path,
        metavar="DIR",
        help="put DIR first on the base's import path (another version of a dependency)",
    )
    ap.add_argument("--rebuild", action="store_true", help="time a rebuild with nothing changed instead")
    args = ap.parse_args(argv)
    question = None if args.rebuild else args.question
    with tempfile.TemporaryDirectory(prefix="ytnotes-base-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), args.base],
            check=True,
            capture_output=True,
        )
        try:
            base_index = args.index
            base_path = None if args.base_path is None else args.base_path.resolve()
            if args.base_build is not None:
                base_index = Path(tmp) / "base-index"
                ytnotes(
                    base, "build", str(args.base_build.resolve()), "--index", str(base_index), path=base_path
                )
            trees = {
                "this tree": (REPO, args.index, None),
                f"base {args.base}": (base, base_index, base_path),
            }
            times: dict[str, list[float]] = {name: [] for name in trees}
            for tree, index, path in trees.values():
                cold_ask(tree, index, question, path)  # warm the OS cache for each
            for _ in range(args.runs):
                for name, (tree, index, path) in trees.items():
                    times[name].append(cold_ask(tree, index, question, path))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=False)
    medians = {name: statistics.median(t) for name, t in times.items()}
    what = "rebuild, nothing changed" if args.rebuild else "cold `ytnotes ask`"
    print(f"{what}, {args.runs} runs each in turns, medians")
    for name, m in medians.items():
        print(f"{name:<20} {m * 1000:8.1f} ms")
    this, other = medians["this tree"], medians[f"base {args.base}"]
    print(f"difference           {(this - other) * 1000:+8.1f} ms  (ratio {this / other:.3f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
