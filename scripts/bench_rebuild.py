"""Rebuilds of the indexes scripts/bench_scale.py left behind, timed as it times them (fresh processes, wall clock,
peak RSS from wait4): nothing changed, then one note edited (a sentence with an anchor appended), --edits times
each, medians. For measuring a change to the rebuild path without redoing the full builds.

    .venv/bin/python scripts/bench_rebuild.py [--work /tmp/ytnotes-scale] [--factors 1,10,30] [--edits 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import ENV, YTNOTES, load, run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ytnotes-scale"))
    ap.add_argument("--factors", default="1,10,30")
    ap.add_argument("--edits", type=int, default=3)
    args = ap.parse_args()
    ENV["YTNOTES_CACHE"] = str(args.work / "models")  # the model export the benchmark's builds used
    print(f"rebuilds, fresh processes, median of {args.edits}; 1-minute load average before each factor")
    print(
        f"{'factor':>6}  {'load':>5}  {'nothing changed, s':>18}  {'one note edited, s':>18}  {'peak RSS, MB':>12}"
    )
    for factor in (int(f) for f in args.factors.split(",")):
        corpus, index = args.work / f"corpus-{factor}x", args.work / f"index-{factor}x"
        logs = args.work / f"logs-{factor}x"
        before = load()
        build = [*YTNOTES, "build", str(corpus), "--index", str(index)]
        run(build, logs / "rebuild.log")  # the notes as made (an earlier edit may be indexed)
        nothing = [run(build, logs / "rebuild.log")[0] for _ in range(args.edits)]
        notes = sorted((corpus / f"copy-{factor - 1:03d}").rglob("*.md"))
        edits, peaks, originals = [], [], {}
        try:
            for n in range(args.edits):
                note = notes[(n + 1) * len(notes) // (args.edits + 1)]
                originals[note] = note.read_bytes()
                with note.open("a", encoding="utf-8") as f:
                    f.write(
                        f'\nA rebuild benchmark edit {os.getpid()}-{n} <a class="yt-timestamp" data-t="00:00:0{n}">'
                        f"[00:00:0{n}]</a>.\n"
                    )
                wall, rss, _ = run(build, logs / "rebuild.log")
                edits.append(wall)
                peaks.append(rss)
        finally:
            for note, data in originals.items():
                note.write_bytes(data)
        print(
            f"{factor:>5}x  {before:5.2f}  {statistics.median(nothing):18.2f}  {statistics.median(edits):18.2f}  "
            f"{max(peaks):12.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
