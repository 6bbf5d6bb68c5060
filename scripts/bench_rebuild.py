"""Rebuilds of the indexes scripts/bench_scale.py left behind, timed as it times them (fresh processes, wall clock,
peak RSS from wait4): nothing changed, then one note edited (a sentence with an anchor appended), --edits times
each, medians. For measuring a change to the rebuild path without redoing the full builds. "extended": how many
of the one-note rebuilds extended the live generation with a tail rather than rewrote it (`search/parts.py`).

``--many N``: then N notes edited at once and rebuilt, once (enough notes and the tail passes its share: the rebuild
rewrites everything, folding the tail in), then the notes as made rebuilt (timed too).

    .venv/bin/python scripts/bench_rebuild.py [--work /tmp/ytnotes-scale] [--factors 1,10,30] [--edits 3] [--many N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import ENV, YTNOTES, load, run

from search import store


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ytnotes-scale"))
    ap.add_argument("--factors", default="1,10,30")
    ap.add_argument("--edits", type=int, default=3)
    ap.add_argument("--many", type=int, default=0, help="notes edited at once, rebuilt once (0: none)")
    args = ap.parse_args()
    ENV["YTNOTES_CACHE"] = str(args.work / "models")  # the model export the benchmark's builds used
    print(f"rebuilds, fresh processes, median of {args.edits}; 1-minute load average before each factor")
    print(
        f"{'factor':>6}  {'load':>5}  {'nothing changed, s':>18}  {'one note edited, s':>18}  {'peak RSS, MB':>12}"
        f"  {'extended':>8}"
    )
    for factor in (int(f) for f in args.factors.split(",")):
        corpus, index = args.work / f"corpus-{factor}x", args.work / f"index-{factor}x"
        logs = args.work / f"logs-{factor}x"
        before = load()
        build = [*YTNOTES, "build", str(corpus), "--index", str(index)]
        run(build, logs / "rebuild.log")  # the notes as made (an earlier edit may be indexed)
        nothing = [run(build, logs / "rebuild.log")[0] for _ in range(args.edits)]
        notes = sorted((corpus / f"copy-{factor - 1:03d}").rglob("*.md"))
        edits, peaks, originals, extended = [], [], {}, 0
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
                # Whether it extended the live generation with a tail rather than rewrote it (search.parts).
                extended += "tail" in store.read_manifest(store.current_generation(index))
        finally:
            for note, data in originals.items():
                note.write_bytes(data)
        if args.many:
            many(args.many, corpus, factor, build, logs)
        print(
            f"{factor:>5}x  {before:5.2f}  {statistics.median(nothing):18.2f}  {statistics.median(edits):18.2f}  "
            f"{max(peaks):12.0f}  {extended:>4}/{args.edits:<3}"
        )
    return 0


def many(count: int, corpus: Path, factor: int, build: list[str], logs: Path) -> None:
    """``count`` notes edited at once and rebuilt, then put back and rebuilt; each rebuild's time and what it made."""
    index = Path(build[build.index("--index") + 1])
    notes = sorted(p for copy in sorted(corpus.iterdir()) for p in copy.rglob("*.md"))  # copies are symlinks
    chosen = notes[:: max(1, len(notes) // count)][:count]
    assert len(chosen) == count, f"{len(chosen)} notes found to edit in {corpus}"
    originals = {note: note.read_bytes() for note in chosen}
    try:
        for note in chosen:
            with note.open("a", encoding="utf-8") as f:
                f.write(
                    f'\nA many-notes edit {os.getpid()} <a class="yt-timestamp" data-t="00:00:09">[00:00:09]</a>.\n'
                )
        wall, rss, _ = run(build, logs / "rebuild.log")
        print(
            f"  {factor}x: {count} notes edited at once: {wall:.2f} s, peak RSS {rss:.0f} MB, {made(index)}"
        )
    finally:
        for note, data in originals.items():
            note.write_bytes(data)
    wall, rss, _ = run(build, logs / "rebuild.log")
    print(f"  {factor}x: the {count} notes put back: {wall:.2f} s, peak RSS {rss:.0f} MB, {made(index)}")


def made(index: Path) -> str:
    """What the last build made: a generation with a tail (its first rows), or a whole one."""
    tail = store.read_manifest(store.current_generation(index)).get("tail")
    return "a whole generation" if tail is None else f"a tail after passage {tail['chunks']}"


if __name__ == "__main__":
    sys.exit(main())
