"""Parsing against reality: every note of the shared corpus (skipped when ../shared is absent)."""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from pathlib import Path

import pytest

from search import chunks as chunking
from search import timestamps as ts
from search import video_clocks
from search.markup import clean, repair_mojibake
from search.notes import find_notes, read_note
from search.segments import ParsedNote, parse_note

# An independent reading of what the files hold, written without the parser's regexes.
ANCHOR_VALUE = re.compile(r"<a\s[^>]*data-t=\"([^\"]*)\"[^>]*>([^<]*)</a>")
PLAIN_VALUES = re.compile(r"(?<!\[)\[(\d+(?::\d+)+(?:, *\d+(?::\d+)+)*)\](?!\])")
FENCE = re.compile(r"^\s*(```|~~~)")


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def file_values(path: Path) -> tuple[list[str], int]:
    """Raw timestamp values outside code fences, and how many stand inside them."""
    values: list[str] = []
    in_fence, fenced = False, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        found = [d or label.strip("[]") for d, label in ANCHOR_VALUE.findall(line)]
        rest = ANCHOR_VALUE.sub(" ", line)
        found += [v.strip() for group in PLAIN_VALUES.findall(rest) for v in group.split(",") if ":" in v]
        if in_fence:
            fenced += len(found)
        else:
            values += found
    return values, fenced


@pytest.fixture(scope="module")
def parsed_corpus(shared_notes: Path) -> list[ParsedNote]:
    return [parse_note(read_note(p, shared_notes)) for p in find_notes(shared_notes)]


def test_every_note_parses(shared_notes: Path, parsed_corpus: list[ParsedNote]) -> None:
    manifest = (shared_notes.parent / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]
    assert len(parsed_corpus) == len(manifest)
    assert all(p.segments for p in parsed_corpus)
    with_id = [p for p in parsed_corpus if p.note.video_id]
    assert len(with_id) == len(parsed_corpus)


def test_timestamps_found_equal_the_files_values(parsed_corpus: list[ParsedNote]) -> None:
    """Every value in a file is used or listed as skipped, with its reason; none is invented."""
    for p in parsed_corpus:
        values, fenced = file_values(p.note.path)
        skipped_outside_fences = [s for s in p.skipped if "code fence" not in s.reason]
        assert len(p.times) + len(skipped_outside_fences) == len(values), p.note.rel
        assert len(p.skipped) - len(skipped_outside_fences) == fenced, p.note.rel
        if p.reading is ts.Reading.HOURS:
            # With the plain reading the seconds must be exactly those of the values, minus the skipped ones.
            naive: Counter[int] = Counter()
            for v in values:
                nums = [int(x) for x in v.split(":")][:3]
                naive[sum(n * 60**i for i, n in enumerate(reversed(nums)))] += 1
            for s in skipped_outside_fences:
                nums = [int(x) for x in s.raw.split(":")][:3] if re.fullmatch(r"[0-9:]+", s.raw) else []
                naive[sum(n * 60**i for i, n in enumerate(reversed(nums)))] -= 1
            adjusted = {t: n for t, n in naive.items() if n}
            assert Counter(p.times) == adjusted or _minute_repairs_only(p, values), p.note.rel


def _minute_repairs_only(p: ParsedNote, values: list[str]) -> bool:
    """Under the hours reading, the documented repairs are A:B:00 read as minutes, and A:B:C with a single-digit C
    read as minutes and a fraction, or with any C in a note whose warning says it read fractions (a value far past
    the others); allow exactly those."""
    read = Counter(p.times)
    fractions = p.clock_repair is not None and "minutes:seconds:fraction" in p.clock_repair
    for v in values:
        nums = [int(x) for x in v.split(":")]
        plain = sum(n * 60**i for i, n in enumerate(reversed(nums[:3])))
        as_minutes = nums[0] * 60 + nums[1] if len(nums) >= 3 and (nums[2] < 10 or fractions) else None
        if read[plain] > 0:
            read[plain] -= 1
        elif as_minutes is not None and read[as_minutes] > 0:
            read[as_minutes] -= 1
    return not +read


def test_no_markup_reaches_embedded_text(parsed_corpus: list[ParsedNote]) -> None:
    def count(text: str) -> int:
        return len(text.split())

    for p in parsed_corpus:
        for chunk in chunking.pack(p, count):
            text = chunking.embed_text(p.note.title, chunk)
            for bad in ("<a ", "data-t=", "[[", "]]", "<br", "yt-timestamp"):
                assert bad not in text, (p.note.rel, bad, text[:200])


def test_chunk_times_are_the_notes_times(parsed_corpus: list[ParsedNote]) -> None:
    for p in parsed_corpus:
        values, _ = file_values(p.note.path)
        allowed = set()
        for v in values:
            with contextlib.suppress(ts.TimestampError):
                allowed.add(ts.seconds_list([v])[0])
        allowed |= set(p.times)
        for chunk in chunking.pack(p, lambda t: len(t.split())):
            for seg in chunk.segments:
                assert set(seg.times) <= set(p.times), p.note.rel
                if seg.link_time is not None:
                    assert seg.link_time in p.times, p.note.rel
        # Each time comes from a value in the file, read whole or by the note's documented reading.
        readable = {ts.to_seconds(ts.split(v), ts.Reading.MINUTES) for v in values if _minutes_ok(v)}
        assert set(p.times) <= allowed | readable | _fraction_times(values), p.note.rel


def _minutes_ok(v: str) -> bool:
    try:
        ts.to_seconds(ts.split(v), ts.Reading.MINUTES)
        return True
    except ts.TimestampError:
        return False


def _fraction_times(values: list[str]) -> set[int]:
    out = set()
    for v in values:
        nums = [int(x) for x in v.split(":")]
        if len(nums) >= 2 and nums[1] < 60:
            out.add(nums[0] * 60 + nums[1])
    return out


def test_line_numbers_point_at_the_segment(parsed_corpus: list[ParsedNote]) -> None:
    for p in parsed_corpus:
        lines = [repair_mojibake(x) for x in p.note.path.read_text(encoding="utf-8").splitlines()]
        for seg in p.segments:
            line_words = words(clean(lines[seg.line - 1]).replace("\\|", " "))
            head = words(seg.text)[: min(4, len(line_words))]  # a segment may go on to the next lines
            joined = " ".join(line_words)
            assert head, (p.note.rel, seg.line)
            assert " ".join(head) in joined, (p.note.rel, seg.line, seg.text[:80], lines[seg.line - 1][:120])


def test_the_clocks_of_the_notes_issue_12_names_are_read_as_a_person_would(
    parsed_corpus: list[ParsedNote],
) -> None:
    by_name = {p.note.rel: p for p in parsed_corpus}
    nginx = by_name["fireship/JKxlsvZXG7c-serving-static-content-with-nginx.md"]
    assert max(nginx.times) == 102 and nginx.clock_repair  # a video under two minutes; 01:42:00 is 1:42
    curl = by_name["3blue1brown/rB83DpBJQsE-curl-in-vector-fields.md"]
    assert max(curl.times) < 14 * 60 and {77, 123} <= set(curl.times)
    apps = by_name["everyinc/ncQHS8gqhTc-developing-apps-and-prototypes-using-ai.md"]
    assert [s.times for s in apps.segments if 121 in s.times] == [[110, 121]]  # `[01:50:00] [02:01:00]`
    nvidia = by_name["acquiredfm/y6NfxiemvHg-history-and-evolution-of-nvidias-technology.md"]
    assert nvidia.reading is ts.Reading.FRACTION and not nvidia.skipped
    assert 12000 not in nvidia.times and {200, 481} <= set(nvidia.times)  # `[03:20:00]`, `[08:01:00]`
    couchbase = by_name["amiteshanand/Cbwq8lUeyLk-using-couchbase-for-vector-storage-and-search.md"]
    assert max(couchbase.times) == 549 and {83, 301} <= set(couchbase.times)  # `01:23:05`, `05:01:04`
    assert couchbase.clock_repair is not None and "minutes:seconds:fraction" in couchbase.clock_repair
    rutt = by_name["jimruttshow8596/Z5dompWURVo-approaches-to-evolving-ai-architectures.md"]
    assert max(rutt.times) == 3954 and 289 in rutt.times  # `04:49:53` among minutes:seconds:00 under an hour
    # Notes with real h:m:s times keep them: a long talk whose few whole-minute values sit among its hours.
    polkadot = by_name["when-shift-happens/npnbqnlQtoQ-blockchain-scalability-and-polkadot.md"]
    assert polkadot.clock_repair is None and 5220 in polkadot.times  # 01:27:00 between 01:26:35 and 01:27:58


def test_only_the_note_its_sibling_contradicts_is_read_by_the_other_notes_of_its_video(
    parsed_corpus: list[ParsedNote],
) -> None:
    """Of the 19 videos with several notes, the notes agree on the video's length but for one pair:
    humblelifeskills/bASS0_vof0c, where one note reads to 8:21 and the other, as hours, to 8:30:32. Read as
    minutes:seconds:fraction, it cites the other note's moments."""
    listed = [(p.note.rel, p.note.path, *video_clocks.scan(p.note.path.read_bytes())) for p in parsed_corpus]
    assert [video for _, _, video, _ in listed] == [p.note.video_id for p in parsed_corpus]
    decided = video_clocks.decide(listed)
    rss = "humblelifeskills/bASS0_vof0c-setting-up-rss-feeds-for-upwork-job-notifications.md"
    assert decided == {rss: 501}
    by_name = {p.note.rel: p for p in parsed_corpus}
    assert max(by_name[rss].times) == 30632  # alone
    again = parse_note(by_name[rss].note, decided[rss])
    sibling = set(
        by_name["humblelifeskills/bASS0_vof0c-getting-early-job-notifications-for-freelance-work.md"].times
    )
    assert max(again.times) == 510 and not again.skipped
    assert sum(1 for t in again.times if {t - 1, t, t + 1} & sibling) * 2 > len(again.times)
    assert again.clock_repair is not None and "other notes" in again.clock_repair
