#!/usr/bin/env python3
"""Validate scripts/eval/questions.jsonl against the notes corpus.

For every line it checks:
  * the line is valid JSON with exactly the keys q, video, t, note, kind;
  * `note` names an existing file under the notes folder;
  * `video` equals the `videoId` in that note's YAML frontmatter;
  * every gold second in `t` equals the value of some `data-t="..."` anchor
    in that note (HH:MM:SS or MM:SS, converted to seconds; an `A:B:00` value
    may also be read as A minutes B seconds, as notes that write
    minutes:seconds:00 mean it).

It then prints counts per kind, distinct notes and distinct channels, and
exits 1 with a message per problem if anything failed.

Usage:
  python3 scripts/eval/check_questions.py [--notes DIR] [--questions FILE]

Standard library only.
"""

import argparse
import collections
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
DEFAULT_NOTES = HERE.parents[3] / "shared" / "corpus" / "notes"
DEFAULT_QUESTIONS = HERE.parent / "questions.jsonl"

KEYS = {"q", "video", "t", "note", "kind"}
KINDS = {"ask", "ask-rare", "ask-heading", "locate", "locate-para"}
DATA_T = re.compile(r'data-t="([^"]*)"')
VIDEO_ID = re.compile(r"^videoId:\s*[\"']?([^\"'\s]+)", re.M)


def to_seconds(value: str) -> int | None:
    """'01:02:03' -> 3723, '02:03' -> 123; None if not a number list."""
    parts = value.strip().split(":")
    if not parts or not all(p.isdigit() for p in parts):
        return None
    total = 0
    for p in parts:
        total = total * 60 + int(p)
    return total


def readings(value: str) -> set[int]:
    """Every second a data-t value can mean: as written, and for `A:B:00` also A min B s."""
    plain = to_seconds(value)
    if plain is None:
        return set()
    parts = value.strip().split(":")
    if len(parts) == 3 and int(parts[2]) == 0:
        return {plain, int(parts[0]) * 60 + int(parts[1])}
    return {plain}


def frontmatter_video_id(text: str) -> str | None:
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    head = text[: end if end != -1 else len(text)]
    m = VIDEO_ID.search(head)
    return m.group(1) if m else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=Path, default=DEFAULT_NOTES, help="notes folder (default: %(default)s)")
    ap.add_argument(
        "--questions", type=Path, default=DEFAULT_QUESTIONS, help="questions file (default: %(default)s)"
    )
    args = ap.parse_args(argv)

    notes_dir = args.notes.resolve()
    if not notes_dir.is_dir():
        print(f"error: notes folder not found: {notes_dir}", file=sys.stderr)
        return 1
    if not args.questions.is_file():
        print(f"error: questions file not found: {args.questions}", file=sys.stderr)
        return 1

    errors = []
    kinds: collections.Counter[str] = collections.Counter()
    notes: collections.Counter[str] = collections.Counter()
    cache = {}
    n_items = 0

    with args.questions.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            n_items += 1
            where = f"line {lineno}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                errors.append(f"{where}: invalid JSON ({e})")
                continue
            if not isinstance(item, dict) or set(item) != KEYS:
                got = sorted(item) if isinstance(item, dict) else type(item).__name__
                errors.append(f"{where}: keys must be {sorted(KEYS)}, got {got}")
                continue
            q, video, t, note, kind = (item[k] for k in ("q", "video", "t", "note", "kind"))
            if not isinstance(q, str) or not q.strip():
                errors.append(f"{where}: 'q' must be a non-empty string")
            if kind not in KINDS:
                errors.append(f"{where}: unknown kind {kind!r} (expected one of {sorted(KINDS)})")
            if (
                not isinstance(t, list)
                or not t
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in t)
            ):
                errors.append(f"{where}: 't' must be a non-empty list of integer seconds")
                continue
            if not isinstance(note, str) or not isinstance(video, str):
                errors.append(f"{where}: 'note' and 'video' must be strings")
                continue

            path = (notes_dir / note).resolve()
            if notes_dir not in path.parents or not path.is_file():
                errors.append(f"{where}: note file not found under {notes_dir}: {note}")
                continue
            if path not in cache:
                text = path.read_text(encoding="utf-8", errors="replace")
                secs = {s for v in DATA_T.findall(text) for s in readings(v)}
                cache[path] = (frontmatter_video_id(text), secs)
            fm_video, anchor_secs = cache[path]
            if fm_video != video:
                errors.append(f"{where}: video {video!r} != frontmatter videoId {fm_video!r} in {note}")
            missing = [x for x in t if x not in anchor_secs]
            if missing:
                errors.append(f"{where}: gold second(s) {missing} match no data-t anchor in {note}")

            kinds[kind] += 1
            notes[note] += 1

    channels = {n.split("/", 1)[0] for n in notes}
    ask_total = sum(v for k, v in kinds.items() if k.startswith("ask"))
    loc_total = sum(v for k, v in kinds.items() if k.startswith("locate"))
    print(f"items: {n_items}")
    for k in sorted(kinds):
        print(f"  {k:12s} {kinds[k]}")
    print(f"  ask* total   {ask_total}")
    print(f"  locate* total {loc_total}")
    print(f"distinct notes: {len(notes)}")
    print(f"distinct channels: {len(channels)}")
    if notes:
        print(f"max items per note: {max(notes.values())}")

    if errors:
        print(f"\nFAILED: {len(errors)} problem(s)", file=sys.stderr)
        for problem in errors:
            print("  " + problem, file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
