"""What the build reads of every note before reading any: its videoId and, for a video with several notes, how the
other notes decide its clock."""

from __future__ import annotations

from pathlib import Path

from search import video_clocks


def test_the_video_id_comes_from_the_frontmatter_only() -> None:
    assert video_clocks.video_of(b"---\ntitle: A\nvideoId: bASS0_vof0c\n---\nText.\n") == "bASS0_vof0c"
    assert video_clocks.video_of(b"\xef\xbb\xbf---\r\nvideoId: 'bASS0_vof0c'\r\n---\r\n") == "bASS0_vof0c"
    assert video_clocks.video_of(b"# A note\nvideoId: bASS0_vof0c\n") is None  # no frontmatter
    assert video_clocks.video_of(b"---\nvideoId: too-short\n---\n") is None


def _note(folder: Path, name: str, times: list[str]) -> Path:
    anchors = "\n".join(
        f'- Point {n} <a class="yt-timestamp" data-t="{t}">[{t}]</a>.' for n, t in enumerate(times)
    )
    path = folder / name
    path.write_text(f"---\ntitle: {name}\nvideoId: bASS0_vof0c\n---\n\n{anchors}\n", "utf-8")
    return path


def _listed(key: str, path: Path, video: str | None = None) -> tuple[str, Path, str | None, bool]:
    """What the build lists of a note: `scan` of its bytes (``video`` instead of its own, when given)."""
    found, candidate = video_clocks.scan(path.read_bytes()) if path.exists() else (None, False)
    return key, path, video or found, candidate


def test_a_note_is_decided_by_the_other_notes_of_its_video_only(tmp_path: Path) -> None:
    whole = _note(tmp_path, "whole.md", ["01:10:00", "02:20:00", "03:06:00", "05:54:00", "08:21:00"])
    fraction = _note(tmp_path, "fraction.md", ["01:10:17", "02:20:24", "03:06:09", "05:54:57", "08:30:32"])
    assert video_clocks.scan(fraction.read_bytes()) == ("bASS0_vof0c", True)
    both = [_listed("whole.md", whole), _listed("fraction.md", fraction)]
    assert video_clocks.decide(both) == {"fraction.md": 501}
    assert video_clocks.decide([both[1]]) == {}  # alone, it reads as hours
    assert (
        video_clocks.decide([both[0], _listed("fraction.md", fraction, "Iq_rDZmP_Oc")]) == {}
    )  # another video
    gone = tmp_path / "gone.md"
    assert video_clocks.decide([both[0], ("gone.md", gone, "bASS0_vof0c", True)]) == {}
    assert video_clocks.key("abc", None) == "abc" and video_clocks.key("abc", 501) != "abc"


def test_a_note_under_an_hour_is_never_a_candidate(tmp_path: Path) -> None:
    short = _note(tmp_path, "short.md", ["00:01:10", "00:02:20", "00:03:06", "00:05:54"])
    assert video_clocks.scan(short.read_bytes()) == ("bASS0_vof0c", False)
