"""The scale benchmark's synthetic notes (scripts/bench_scale.py): a copy keeps every timestamp, its channel and
its headings, gets a new video and a marked title, and reads differently from the original and the other copies."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import REPO
from search.notes import read_note
from search.segments import parse_note
from search.timestamps import valid_video_id

sys.path.insert(0, str(REPO / "scripts"))
import bench_scale

NOTE = """---
title: "Café: a note with a colon"
videoId: dQw4w9WgXcQ
---

From: [[Some Channel | the channel]] <br/>

## Why étagères matter

Shelves hold everything together nicely <a class="yt-timestamp" data-t="00:01:05">[00:01:05]</a>. Another sentence \
about [[wooden planks | planks]] and brackets and screws [02:10], and a [link](https://example.com/some/path).

```
code stays <a class="yt-timestamp" data-t="00:09:09">[00:09:09]</a> untouched
```

Finally, everything ends with gratitude <a class="yt-timestamp" data-t="1:02:03">[1:02:03]</a>.
"""


def test_a_copy_keeps_times_and_structure_and_changes_words(tmp_path: Path) -> None:
    original = parse_note(read_note(_write(tmp_path / "a", NOTE), tmp_path / "a"))
    texts = set()
    for k in (1, 2, 3):
        copy = bench_scale.vary(NOTE, k, "channel/note.md")
        parsed = parse_note(read_note(_write(tmp_path / str(k), copy), tmp_path / str(k)))
        assert parsed.times == original.times == [65, 130, 3723]
        assert [s.heading for s in parsed.segments] == [s.heading for s in original.segments]
        assert parsed.note.channel == original.note.channel == "the channel"
        assert parsed.note.title == f"Café: a note with a colon (copy {k})"
        assert valid_video_id(parsed.note.video_id) and parsed.note.video_id != "dQw4w9WgXcQ"
        assert (
            "code stays" in copy
            and "[[wooden planks | planks]]" in copy
            and "(https://example.com/some/path)" in copy
        )
        body = " ".join(s.text for s in parsed.segments)
        assert body != " ".join(s.text for s in original.segments)
        texts.add(body)
    assert len(texts) == 3
    assert bench_scale.vary(NOTE, 0, "channel/note.md") == NOTE


def test_copies_of_one_video_share_its_new_id() -> None:
    assert bench_scale.new_video_id(4, "dQw4w9WgXcQ") == bench_scale.new_video_id(4, "dQw4w9WgXcQ")
    assert bench_scale.new_video_id(4, "dQw4w9WgXcQ") != bench_scale.new_video_id(5, "dQw4w9WgXcQ")


def _write(root: Path, text: str) -> Path:
    path = root / "channel" / "note.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
