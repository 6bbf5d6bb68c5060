"""Reading notes and cutting them into segments and chunks (search/notes.py, segments.py, chunks.py).

Every note below starts with HEADER (7 lines), so the first body line is line 8 of the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from search.chunks import embed_text, pack, stored_embed_text
from search.errors import NoteError
from search.notes import MAX_NOTE_BYTES, find_notes, read_note
from search.segments import ParsedNote, Segment, parse_note

HEADER = "---\ntitle: T\nvideoId: aircAruvnKk\n---\n\nFrom: [[chan | Shown Chan]] <br/>\n\n"
BODY_LINE = 8


def anchor(t: str, label: str | None = None, cls: str = "yt-timestamp") -> str:
    shown = f"[{t}]" if label is None else label
    return f'<a class="{cls}" data-t="{t}">{shown}</a>'


def write(tmp_path: Path, text: str, name: str = "note.md") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def parse_body(tmp_path: Path, body: str) -> ParsedNote:
    path = write(tmp_path, HEADER + body)
    return parse_note(read_note(path, tmp_path))


def texts(parsed: ParsedNote) -> list[str]:
    return [s.text for s in parsed.segments]


def times(parsed: ParsedNote) -> list[list[int]]:
    return [s.times for s in parsed.segments]


def words(text: str) -> int:
    return len(text.split())


# --- timestamp anchors ----------------------------------------------------------------------------------


def test_anchor_closes_the_sentence_before_it(tmp_path: Path) -> None:
    body = f"## Topic\n\nFirst sentence here {anchor('00:01:50')}.\nSecond one {anchor('00:02:05')}.\n"
    parsed = parse_body(tmp_path, body)
    assert texts(parsed) == ["First sentence here.", "Second one."]
    assert times(parsed) == [[110], [125]]
    # "## Topic" is line 8, the paragraph starts on line 10 and its second sentence is on line 11.
    assert [s.line for s in parsed.segments] == [BODY_LINE + 2, BODY_LINE + 3]
    assert [s.link_time for s in parsed.segments] == [110, 125]
    assert parsed.repaired == []
    assert parsed.skipped == []


def test_misspelled_anchor_class_still_counts(tmp_path: Path) -> None:
    parsed = parse_body(tmp_path, f"Misspelled class {anchor('00:01:50', cls='yt_timestamp')}.\n")
    assert texts(parsed) == ["Misspelled class."]
    assert times(parsed) == [[110]]


def test_anchor_with_empty_label_uses_data_t(tmp_path: Path) -> None:
    parsed = parse_body(tmp_path, f"No label here {anchor('00:03:07', label='')}.\n")
    assert texts(parsed) == ["No label here."]
    assert times(parsed) == [[187]]
    assert parsed.repaired == []


def test_anchor_label_differing_from_data_t_uses_data_t_and_is_reported(tmp_path: Path) -> None:
    parsed = parse_body(tmp_path, f"Wrong label {anchor('00:02:10', label='[00:02:01]')}.\n")
    assert times(parsed) == [[130]]
    assert len(parsed.repaired) == 1
    assert parsed.repaired[0].raw == "00:02:10"
    assert parsed.repaired[0].line == BODY_LINE
    assert "00:02:01" in parsed.repaired[0].reason


@pytest.mark.parametrize("gap", [", ", " ", "", " ; ", ",\n"])
def test_adjacent_anchors_are_one_boundary(tmp_path: Path, gap: str) -> None:
    run = gap.join(anchor(t) for t in ("00:01:00", "00:01:10", "00:01:20"))
    body = f"Text one {run}. Next text {anchor('00:02:00')}.\n"
    parsed = parse_body(tmp_path, body)
    assert texts(parsed) == ["Text one.", "Next text."]
    assert times(parsed) == [[60, 70, 80], [120]]


def test_mixed_separators_in_one_run(tmp_path: Path) -> None:
    run = f"{anchor('00:01:00')}, {anchor('00:01:10')} {anchor('00:01:20')}{anchor('00:01:30')}"
    parsed = parse_body(tmp_path, f"Text one {run}. Then more {anchor('00:02:00')}!\n")
    assert texts(parsed) == ["Text one.", "Then more!"]
    assert times(parsed) == [[60, 70, 80, 90], [120]]


def test_punctuation_after_a_boundary_stays_with_the_previous_segment(tmp_path: Path) -> None:
    body = f"Alpha {anchor('00:00:10')}, beta {anchor('00:00:20')}; gamma {anchor('00:00:30')}.\n"
    parsed = parse_body(tmp_path, body)
    assert texts(parsed) == ["Alpha,", "beta;", "gamma."]
    for seg in parsed.segments:
        assert seg.text[0].isalnum(), seg.text


def test_words_after_a_boundary_are_not_glued_to_the_previous_segment(tmp_path: Path) -> None:
    # Only punctuation moves back; text that follows the anchor directly starts the next segment.
    parsed = parse_body(tmp_path, f"Alpha {anchor('00:00:10')}beta {anchor('00:00:20')}.\n")
    assert texts(parsed) == ["Alpha", "beta."]
    assert times(parsed) == [[10], [20]]


# --- plain and link-style timestamps --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("[02:15]", [135]),
        ("[1:02:03]", [3723]),
        ("[00:04:10]", [250]),
        ("[00:05:20](#)", [320]),
        ("[01:31:09](https://example.com)", [3600 + 31 * 60 + 9]),
        ("[00:06:01, 00:06:40]", [361, 400]),
        ("[ 00:06:01 ,00:06:40 ]", [361, 400]),
    ],
)
def test_plain_timestamp_forms(tmp_path: Path, form: str, expected: list[int]) -> None:
    parsed = parse_body(tmp_path, f"Some words {form}. More words [00:09:00].\n")
    assert texts(parsed) == ["Some words.", "More words."]
    assert times(parsed) == [expected, [540]]


def test_boundary_at_the_start_of_a_block_gives_its_time_to_the_text_after_it(tmp_path: Path) -> None:
    parsed = parse_body(tmp_path, "[00:01:00] Starts with a time.\n")
    assert texts(parsed) == ["Starts with a time."]
    assert times(parsed) == [[60]]


def test_boundary_alone_in_its_block_goes_to_the_previous_segment_of_the_section(tmp_path: Path) -> None:
    parsed = parse_body(tmp_path, "## S\n\nSome text [00:01:00].\n\n[00:01:30]\n")
    assert texts(parsed) == ["Some text."]
    assert times(parsed) == [[60, 90]]


# --- markup cleaning ------------------------------------------------------------------------------------


def test_wikilinks_are_not_timestamps_and_become_their_shown_text(tmp_path: Path) -> None:
    body = "See [[a|B]] and [[a | C]] and [[plain]] here [00:01:00].\n"
    parsed = parse_body(tmp_path, body)
    assert texts(parsed) == ["See B and C and plain here."]
    assert times(parsed) == [[60]]


def test_no_markup_left_in_segment_text(tmp_path: Path) -> None:
    body = (
        f"Intro with **bold** and *italic* and __strong__ words {anchor('00:00:05')}.<br/>\n"
        f"Line with [[x | a link]] and <br> a break {anchor('00:00:09')}, {anchor('00:00:12')}.\n\n"
        f"- a list item with [[y]] {anchor('00:00:20')}\n"
        f"- another **item** [00:00:30]\n"
    )
    parsed = parse_body(tmp_path, body)
    assert texts(parsed) == [
        "Intro with bold and italic and strong words.",
        "Line with a link and a break.",
        "a list item with y",
        "another item",
    ]
    assert times(parsed) == [[5], [9, 12], [20], [30]]
    for seg in parsed.segments:
        for bad in ("<a", "data-t", "[[", "]]", "<br", "**", "__", "*"):
            assert bad not in seg.text, (bad, seg.text)


def test_mojibake_is_repaired_in_segment_text(tmp_path: Path) -> None:
    parsed = parse_body(tmp_path, "It isnâ€™t broken [00:01:00].\n")
    assert texts(parsed) == ["It isn’t broken."]
    assert "â€" not in parsed.segments[0].text


# --- code fences ----------------------------------------------------------------------------------------


def test_timestamps_inside_a_code_fence_are_not_boundaries(tmp_path: Path) -> None:
    body = (
        "Before [00:01:00].\n"  # line 8
        "\n"
        "```python\n"  # line 10
        f"code {anchor('00:02:00')} line\n"  # line 11
        "print('[00:03:00]')\n"  # line 12
        "```\n"
        "\n"
        "After [00:04:00].\n"  # line 15
    )
    parsed = parse_body(tmp_path, body)
    assert parsed.times == [60, 240]
    assert sorted((s.line, s.raw) for s in parsed.skipped) == [
        (BODY_LINE + 3, anchor("00:02:00")),
        (BODY_LINE + 4, "[00:03:00]"),
    ]
    code = [s for s in parsed.segments if "code" in s.text]
    assert len(code) == 1
    assert code[0].times == []
    assert code[0].line == BODY_LINE + 3
    assert "<a" not in code[0].text
    assert "data-t" not in code[0].text
    assert "</a>" not in code[0].text
    assert texts(parsed)[0] == "Before."
    assert texts(parsed)[-1] == "After."
    assert [s.line for s in parsed.segments] == [BODY_LINE, BODY_LINE + 3, BODY_LINE + 7]


# --- headings -------------------------------------------------------------------------------------------


def test_heading_path(tmp_path: Path) -> None:
    body = (
        "## A\n\nText a [00:01:00].\n\n"
        "### B\n\nText b [00:02:00].\n\n"
        "#### Deeper\n\nText d [00:02:30].\n\n"
        "## C\n\nText c [00:03:00].\n"
    )
    parsed = parse_body(tmp_path, body)
    assert texts(parsed) == ["Text a.", "Text b.", "Text d.", "Text c."]
    assert [s.heading for s in parsed.segments] == [("A",), ("A", "B"), ("A", "B", "Deeper"), ("C",)]
    sections = [s.section for s in parsed.segments]
    assert len(set(sections)) == 4
    assert sections == sorted(sections)


def test_anchor_inside_a_heading_line(tmp_path: Path) -> None:
    body = f"## Intro {anchor('00:00:30')}\n\nBody text.\n"
    parsed = parse_body(tmp_path, body)
    assert texts(parsed) == ["Intro", "Body text."]
    assert times(parsed) == [[30], []]
    assert [s.heading for s in parsed.segments] == [("Intro",), ("Intro",)]
    assert parsed.segments[0].line == BODY_LINE
    assert parsed.segments[1].link_time == 30


# --- untimed text ---------------------------------------------------------------------------------------


def test_untimed_text_and_link_times(tmp_path: Path) -> None:
    body = (
        "Intro paragraph with no time.\n\n"
        "## S\n\n"
        "Untimed lead paragraph.\n\n"
        "Timed one [00:02:10]. Middle untimed.\n\n"
        "Timed two [00:03:20]. Trailing sentence.\n\n"
        "## Next\n\n"
        "Other [00:05:30].\n"
    )
    parsed = parse_body(tmp_path, body)
    by_text = {s.text: s for s in parsed.segments}
    assert list(by_text) == [
        "Intro paragraph with no time.",
        "Untimed lead paragraph.",
        "Timed one.",
        "Middle untimed.",
        "Timed two.",
        "Trailing sentence.",
        "Other.",
    ]
    intro = by_text["Intro paragraph with no time."]
    assert intro.times == []
    assert not intro.timed
    assert intro.link_time is None
    assert intro.heading == ()
    # An untimed paragraph links to the next timed segment of its section ...
    assert by_text["Untimed lead paragraph."].times == []
    assert by_text["Untimed lead paragraph."].link_time == 130
    assert by_text["Middle untimed."].link_time == 200
    # ... and, after the section's last timestamp, to the previous one (not the next section's).
    assert by_text["Trailing sentence."].times == []
    assert by_text["Trailing sentence."].link_time == 200
    assert by_text["Other."].link_time == 330


# --- callouts and tables --------------------------------------------------------------------------------


def test_callout_text_is_found_with_its_time(tmp_path: Path) -> None:
    body = f"> [!NOTE] Title\n> Callout text here {anchor('00:07:00')}.\n"
    parsed = parse_body(tmp_path, body)
    found = [s for s in parsed.segments if "Callout text here" in s.text]
    assert len(found) == 1
    assert found[0].times == [420]
    assert ">" not in found[0].text
    assert "[!" not in found[0].text
    assert found[0].text.endswith("Callout text here.")


def test_table_row_with_anchors_in_cells(tmp_path: Path) -> None:
    body = (
        "| Topic | Time |\n"
        "| --- | --- |\n"
        f"| See [[a \\| b]] cell {anchor('00:08:00')} | [00:08:30] |\n"
        "| Other [[c\\|d]] row | [00:09:00] |\n"
    )
    parsed = parse_body(tmp_path, body)
    timed = [s for s in parsed.segments if s.times]
    assert [s.times for s in timed] == [[480, 510], [540]]
    # The text before a time in its own column may keep the ';' that joins cells: not checked here.
    assert [s.text.rstrip(";") for s in timed] == ["See b cell", "Other d row"]
    assert [s.line for s in timed] == [BODY_LINE + 2, BODY_LINE + 3]
    for seg in parsed.segments:
        assert "|" not in seg.text, seg.text
        assert "\\" not in seg.text, seg.text
        assert "[[" not in seg.text, seg.text


# --- read_note ------------------------------------------------------------------------------------------


def test_read_note_metadata_and_channel(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "Text [00:01:00].\n")
    note = read_note(path, tmp_path)
    assert note.title == "T"
    assert note.video_id == "aircAruvnKk"
    assert note.channel == "Shown Chan"
    assert note.channel_key == "chan"
    assert note.rel == "note.md"
    assert note.body_start == 4  # index of the first line after the closing '---'
    assert note.lines[BODY_LINE - 1] == "Text [00:01:00]."


def test_channel_keeps_case_for_display_and_is_casefolded_as_key(tmp_path: Path) -> None:
    path = write(tmp_path, "---\ntitle: T\n---\n\nFrom: [[Straße TED]] <br/>\n\nText.\n")
    note = read_note(path, tmp_path)
    assert note.channel == "Straße TED"
    assert note.channel_key == "strasse ted"


def test_channel_alias_is_displayed(tmp_path: Path) -> None:
    path = write(tmp_path, "---\ntitle: T\n---\n\nFrom: [[three_blue | 3Blue1Brown]]\n\nText.\n")
    note = read_note(path, tmp_path)
    assert note.channel == "3Blue1Brown"
    assert note.channel_key == "three_blue"


def test_from_line_is_not_a_segment(tmp_path: Path) -> None:
    parsed = parse_body(tmp_path, "Text [00:01:00].\n")
    assert texts(parsed) == ["Text."]


def test_missing_title_falls_back_to_the_file_stem(tmp_path: Path) -> None:
    no_title = write(tmp_path, "---\nvideoId: aircAruvnKk\n---\n\nText.\n", "my-note.md")
    assert read_note(no_title, tmp_path).title == "my-note"
    empty_title = write(tmp_path, "---\ntitle:\n---\n\nText.\n", "empty-title.md")
    assert read_note(empty_title, tmp_path).title == "empty-title"
    no_frontmatter = write(tmp_path, "Just text [00:01:00].\n", "bare.md")
    note = read_note(no_frontmatter, tmp_path)
    assert note.title == "bare"
    assert note.body_start == 0
    assert note.video_id is None


@pytest.mark.parametrize(
    "front", ["title: T\n", "title: T\nvideoId: too-short\n", "title: T\nvideoId: 'a b c d e f'\n"]
)
def test_missing_or_invalid_video_id_is_none_but_the_note_parses(tmp_path: Path, front: str) -> None:
    path = write(tmp_path, f"---\n{front}---\n\nText [00:01:00].\n")
    parsed = parse_note(read_note(path, tmp_path))
    assert parsed.note.video_id is None
    assert texts(parsed) == ["Text."]
    assert times(parsed) == [[60]]


def test_video_id_is_stripped(tmp_path: Path) -> None:
    path = write(tmp_path, "---\ntitle: T\nvideoId: '  aircAruvnKk  '\n---\n\nText.\n")
    assert read_note(path, tmp_path).video_id == "aircAruvnKk"


def test_rel_is_relative_to_the_root(tmp_path: Path) -> None:
    (tmp_path / "chan").mkdir()
    path = write(tmp_path, HEADER + "Text.\n", "chan/video.md")
    assert read_note(path, tmp_path).rel == "chan/video.md"


def _read_error(path: Path, root: Path) -> NoteError:
    with pytest.raises(NoteError) as info:
        read_note(path, root)
    err = info.value
    assert err.path == path
    assert str(path) in str(err)
    return err


@pytest.mark.parametrize("data", [b"", b"  \n\n\t\n"])
def test_empty_file_is_an_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "empty.md"
    path.write_bytes(data)
    assert "empty" in _read_error(path, tmp_path).reason


def test_nul_bytes_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "binary.md"
    path.write_bytes(b"---\ntitle: T\n---\n\nText\x00more\n")
    assert "NUL" in _read_error(path, tmp_path).reason


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.md"
    path.write_bytes(b"---\ntitle: T\n---\n\nline five\nbad \xff byte\n")
    err = _read_error(path, tmp_path)
    assert "UTF-8" in err.reason
    assert err.line == 6
    assert str(err).startswith(f"{path}:6: ")


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.md"
    path.write_bytes(b"\xef\xbb\xbf---\ntitle: BOM\n---\n\nText.\n")
    assert read_note(path, tmp_path).title == "BOM"


def test_invalid_yaml_frontmatter_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, '---\ntitle: "unclosed\nvideoId: aircAruvnKk\n---\n\nText.\n', "bad-yaml.md")
    err = _read_error(path, tmp_path)
    assert "YAML" in err.reason
    assert err.line is not None
    assert 2 <= err.line <= 4  # somewhere inside the frontmatter


def test_frontmatter_that_is_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "---\n- a\n- b\n---\n\nText.\n", "list.md")
    assert "mapping" in _read_error(path, tmp_path).reason


def test_unclosed_frontmatter_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "---\ntitle: T\n\nText [00:01:00].\n", "unclosed.md")
    err = _read_error(path, tmp_path)
    assert "never closed" in err.reason
    assert err.line == 1


def test_file_over_the_size_limit_is_an_error(tmp_path: Path) -> None:
    line = b"word " * 19 + b"word\n"  # 100 bytes
    path = tmp_path / "huge.md"
    path.write_bytes(line * (MAX_NOTE_BYTES // len(line) + 1))
    assert path.stat().st_size > MAX_NOTE_BYTES
    assert "limit" in _read_error(path, tmp_path).reason


def test_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.md"
    head = HEADER.encode("utf-8")
    filler = MAX_NOTE_BYTES - len(head)
    path.write_bytes(head + (b"word " * 19 + b"word\n") * (filler // 100) + b"x" * (filler % 100))
    assert path.stat().st_size == MAX_NOTE_BYTES
    assert read_note(path, tmp_path).title == "T"


# --- find_notes -----------------------------------------------------------------------------------------


def test_find_notes_recurses_and_skips_hidden_folders_other_files_and_loops(tmp_path: Path) -> None:
    for rel in ["a.md", "b.txt", "c.md.bak", "sub/c.md", "sub/deeper/d.md", ".obsidian/e.md", ".trash/f.md"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"Text.\n")
    os.symlink(tmp_path, tmp_path / "sub" / "loop")
    found = [p.relative_to(tmp_path).as_posix() for p in find_notes(tmp_path)]
    assert found == ["a.md", "sub/c.md", "sub/deeper/d.md"]


def test_find_notes_on_an_empty_folder(tmp_path: Path) -> None:
    assert list(find_notes(tmp_path)) == []


# --- chunks.pack ----------------------------------------------------------------------------------------

CHUNK_BODY = (
    "Intro words without time.\n\n"
    "## One\n\n"
    "a1 a2 a3 [00:00:10]. b1 b2 b3 [00:00:20]. c1 c2 c3 [00:00:30].\n\n"
    "## Two\n\n"
    "d1 d2 [00:01:00]. e1 e2 e3 e4 e5 e6 e7 e8 e9 e10 [00:01:10]. f1 [00:01:20].\n"
)


def _flatten(chunks_segments: list[list[Segment]]) -> list[Segment]:
    return [s for segs in chunks_segments for s in segs]


def test_pack_never_mixes_sections(tmp_path: Path) -> None:
    parsed = parse_body(tmp_path, CHUNK_BODY)
    assert len(parsed.segments) == 7
    chunks = pack(parsed, words, budget=1000)
    assert len(chunks) == 3  # intro, One, Two: each fits the budget whole
    for chunk in chunks:
        assert len({s.section for s in chunk.segments}) == 1
        assert chunk.heading == chunk.segments[0].heading
        assert chunk.line == chunk.segments[0].line
    assert [c.heading for c in chunks] == [(), ("One",), ("Two",)]
    assert chunks[1].text == "a1 a2 a3. b1 b2 b3. c1 c2 c3."


def test_pack_respects_the_budget_except_for_a_single_oversize_segment(tmp_path: Path) -> None:
    parsed = parse_body(tmp_path, CHUNK_BODY)
    budget = 7
    chunks = pack(parsed, words, budget=budget)
    assert [[s.text for s in c.segments] for c in chunks] == [
        ["Intro words without time."],
        ["a1 a2 a3.", "b1 b2 b3."],
        ["c1 c2 c3."],
        ["d1 d2."],
        ["e1 e2 e3 e4 e5 e6 e7 e8 e9 e10."],
        ["f1."],
    ]
    for chunk in chunks:
        size = sum(words(s.text) for s in chunk.segments)
        assert size <= budget or len(chunk.segments) == 1
        assert len({s.section for s in chunk.segments}) == 1


def test_pack_preserves_order_and_loses_nothing(tmp_path: Path) -> None:
    parsed = parse_body(tmp_path, CHUNK_BODY)
    for budget in (1, 3, 6, 7, 100):
        chunks = pack(parsed, words, budget=budget)
        flat = _flatten([c.segments for c in chunks])
        assert [id(s) for s in flat] == [id(s) for s in parsed.segments]


def test_pack_of_a_note_without_segments(tmp_path: Path) -> None:
    parsed = parse_body(tmp_path, "## Empty heading\n")
    assert parsed.segments == []
    assert pack(parsed, words) == []


def test_a_stored_chunk_gives_back_its_embedded_text(tmp_path: Path) -> None:
    # The index keeps no copy of a chunk's embedded text (it keeps no full-text copy): a build reusing
    # an unchanged note makes it again from the note's title and the chunk's heading and text.
    body = "# Part\n\n## Détail\n\n[00:01] First idea here.\n[00:05] Second one, naïve.\n\n# Next\n\n[00:09] Third.\n"
    path = tmp_path / "n.md"
    path.write_text(HEADER + body, encoding="utf-8")
    note = read_note(path, tmp_path)
    packed = pack(parse_note(note), lambda text: len(text.split()))
    assert len(packed) == 2
    for chunk in packed:
        assert stored_embed_text(note.title, chunk.heading, chunk.text) == embed_text(note.title, chunk)
