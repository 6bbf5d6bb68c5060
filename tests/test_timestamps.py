"""Reading timestamp values, the per-note reading rules, and deep links (search/timestamps.py)."""

from __future__ import annotations

import pytest

from search import timestamps as ts
from search.timestamps import Reading, TimestampError

# --- split / parse / to_seconds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("02:15", 2 * 60 + 15),
        ("0:07", 7),
        ("59:59", 59 * 60 + 59),
        ("75:30", 75 * 60 + 30),  # MM:SS of a long video: minutes above 59 are fine without an hour part
        ("1:02:03", 3600 + 2 * 60 + 3),
        ("01:02:03", 3600 + 2 * 60 + 3),
        ("10:20:30", 10 * 3600 + 20 * 60 + 30),
        ("1:00:00", 3600),  # hour 1 is not "more than one above" the largest real hour (0)
        ("  00:01:50 ", 110),  # surrounding spaces are ignored
    ],
)
def test_parse_two_and_three_part_values(raw: str, seconds: int) -> None:
    assert ts.parse(raw) == seconds


def test_split_numbers_and_last_digits() -> None:
    p = ts.split("01:02:003")
    assert p.numbers == (1, 2, 3)
    assert p.last_digits == 3
    assert ts.split("5:07").numbers == (5, 7)
    assert ts.split("5:07").last_digits == 2


def test_four_part_value_drops_the_last_part() -> None:
    p = ts.split("01:00:21:00")
    assert p.numbers == (1, 0, 21)
    assert p.last_digits == 2
    assert ts.parse("01:00:21:00") == 3600 + 21
    # The dropped part may be anything (frames, centiseconds).
    assert ts.parse("00:10:15:99") == 10 * 60 + 15


@pytest.mark.parametrize(
    "raw",
    ["1", "", "   ", "ab:cd", "1:2:3:4:5", "1234:00", "01-02-03", "01:02:", ":01:02", "1.5:00", "[01:02]"],
)
def test_split_rejects_garbage(raw: str) -> None:
    with pytest.raises(TimestampError):
        ts.split(raw)
    with pytest.raises(TimestampError):
        ts.parse(raw)


def test_timestamp_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        ts.parse("ab:cd")


@pytest.mark.parametrize("raw", ["01:60:15", "00:10:75", "10:75", "02:61:30"])
def test_minutes_or_seconds_above_59_are_rejected_under_the_hours_reading(raw: str) -> None:
    with pytest.raises(TimestampError, match="above 59"):
        ts.parse(raw)


def test_values_later_than_max_seconds_are_rejected() -> None:
    assert ts.MAX_SECONDS == 12 * 3600
    assert ts.parse("11:59:59") == ts.MAX_SECONDS - 1
    assert ts.parse("720:00") == ts.MAX_SECONDS  # exactly the limit is allowed
    with pytest.raises(TimestampError, match="later than 12 hours"):
        ts.parse("12:00:01")
    with pytest.raises(TimestampError, match="later than"):
        ts.parse("721:00")


def test_to_seconds_under_each_reading() -> None:
    p = ts.split("03:21:45")
    assert ts.to_seconds(p, Reading.HOURS, 3) == 3 * 3600 + 21 * 60 + 45
    assert ts.to_seconds(p, Reading.FRACTION) == 3 * 60 + 21
    assert ts.to_seconds(p, Reading.MINUTES) == 3 * 60 + 21
    # Two-part values do not depend on the reading.
    q = ts.split("04:05")
    assert {ts.to_seconds(q, r) for r in Reading} == {4 * 60 + 5}


# --- choose_reading / seconds_list ----------------------------------------------------------------------


def test_two_impossible_last_parts_mean_fraction() -> None:
    values = ["03:21:921", "08:20:79"]
    reading, _ = ts.choose_reading(ts.split(v) for v in values)
    assert reading is Reading.FRACTION
    assert ts.seconds_list(values) == [3 * 60 + 21, 8 * 60 + 20]


def test_three_digit_last_parts_count_as_impossible_even_below_60() -> None:
    values = ["03:21:050", "04:10:007"]
    assert ts.choose_reading(ts.split(v) for v in values)[0] is Reading.FRACTION
    assert ts.seconds_list(values) == [3 * 60 + 21, 4 * 60 + 10]


def test_fraction_reading_applies_to_every_three_part_value_but_not_to_two_part_ones() -> None:
    values = ["03:21:921", "08:20:79", "00:10:15", "05:00"]
    assert ts.seconds_list(values) == [3 * 60 + 21, 8 * 60 + 20, 10, 5 * 60]


def test_a_single_impossible_value_does_not_switch_the_note_to_fraction() -> None:
    parts = [ts.split(v) for v in ["03:21:921", "00:10:15", "00:20:30"]]
    reading, max_hour = ts.choose_reading(parts)
    assert reading is Reading.HOURS
    assert max_hour == 3
    # ... so the odd value is dropped rather than repaired, and the others keep their hours reading.
    with pytest.raises(TimestampError):
        ts.to_seconds(parts[0], reading, max_hour)
    assert ts.to_seconds(parts[1], reading, max_hour) == 10 * 60 + 15
    with pytest.raises(TimestampError):
        ts.seconds_list(["03:21:921", "00:10:15", "00:20:30"])


def test_all_three_part_values_ending_in_00_mean_minutes() -> None:
    values = ["03:32:00", "05:02:00", "09:30:00"]
    assert ts.choose_reading(ts.split(v) for v in values)[0] is Reading.MINUTES
    assert ts.seconds_list(values) == [212, 302, 570]


def test_minutes_reading_ignores_two_part_values_and_reads_them_as_usual() -> None:
    values = ["03:32:00", "10:15", "05:02:00", "09:30:00"]
    assert ts.choose_reading(ts.split(v) for v in values)[0] is Reading.MINUTES
    assert ts.seconds_list(values) == [212, 615, 302, 570]


def test_minutes_reading_needs_at_least_three_values() -> None:
    # Two whole-minute values are plausible real times: read as hours.
    two = ["01:05:00", "01:10:00"]
    assert ts.choose_reading(ts.split(v) for v in two)[0] is Reading.HOURS
    assert ts.seconds_list(two) == [3600 + 5 * 60, 3600 + 10 * 60]
    three = [*two, "01:20:00"]
    assert ts.choose_reading(ts.split(v) for v in three)[0] is Reading.MINUTES
    assert ts.seconds_list(three) == [65, 70, 80]


def test_whole_minute_values_far_from_the_only_real_one_read_as_minutes() -> None:
    # Three whole-minute hour values (1 in 60 each by chance) beside one real time: they are minutes:seconds:00.
    values = ["01:05:00", "01:10:00", "01:20:00", "00:10:15"]
    assert ts.choose_reading(ts.split(v) for v in values) == (Reading.HOURS, 0)
    assert ts.seconds_list(values) == [65, 70, 80, 615]


# --- the clock read as a sequence (read_clock), the cases of real notes ------------------------------------


def _clock(*runs: list[str]) -> ts.Clock:
    return ts.read_clock([[ts.split(v) for v in run] for run in runs])


def test_a_run_of_minutes_seconds_00_continuing_real_seconds_is_minutes() -> None:
    # fireship/JKxlsvZXG7c (a video under two minutes): every link after 0:59 was an hour late.
    values = ["00:00:44", "00:00:47", "00:00:54", "00:00:59", "01:03:00", "01:09:00", "01:12:00", "01:17:00"]
    clock = _clock(*([v] for v in values))
    assert [s for run in clock.seconds for s in run] == [44, 47, 54, 59, 63, 69, 72, 77]
    assert clock.repaired == 4
    warning = clock.warning()
    assert warning is not None and "4 timestamps such as 01:03:00 as minutes:seconds:00" in warning


def test_one_bracket_is_never_read_two_ways() -> None:
    # everyinc/ncQHS8gqhTc: `[01:50:00] [02:01:00]` in one bracket had become 6600 s and 121 s.
    clock = _clock(
        ["00:00:14"], ["01:50:00", "02:01:00"], ["00:00:03"], ["09:31:00"], ["09:11:00"], ["30:20:00"]
    )
    assert clock.seconds == [[14], [110, 121], [3], [571], [551], [1820]]


def test_one_whole_minute_value_among_real_ones_is_read_in_their_sequence() -> None:
    # 3blue1brown/rB83DpBJQsE (curl): `[01:17:00]` was 4620 s between 0:05:03 and 0:05:19, `[02:03:00]` 123 s.
    clock = _clock(
        ["00:04:36"], ["02:03:00"], ["00:04:41"], ["00:05:03"], ["01:17:00"], ["00:05:19"], ["00:13:13"]
    )
    assert clock.seconds == [[276], [123], [281], [303], [77], [319], [793]]


def test_single_digit_fractions_among_whole_minutes_are_minutes_and_seconds() -> None:
    # amiteshanand/Cbwq8lUeyLk (Couchbase, a nine-minute talk): `01:23:05` and `05:01:04` were read as hours while the
    # whole-minute values around them were already read as minutes:seconds.
    values = [
        "01:23:05",
        "01:18:03",
        "01:29:00",
        "01:34:09",
        "01:39:00",
        "05:01:04",
        "05:28:09",
        "05:48:00",
        "03:06:00",
    ]
    clock = _clock(*([v] for v in values))
    assert [s for run in clock.seconds for s in run] == [83, 78, 89, 94, 99, 301, 328, 348, 186]
    assert (clock.repaired, clock.fractions) == (4, 5)
    warning = clock.warning()
    assert warning is not None and "5 timestamps such as 01:23:05 as minutes:seconds:fraction" in warning


def test_fractions_are_not_read_as_minutes_when_other_values_have_real_seconds() -> None:
    # Real seconds 1 to 9 are 1 in 6 of all values: in a note with other real seconds (`02:19:58`), `03:09:07` is
    # read as written, as every value with real seconds is.
    values = ["02:19:58", "02:29:27", "03:09:07", "02:55:56", "03:26:00", "03:37:00", "03:03:00", "02:11:02"]
    clock = _clock(*([v] for v in values))
    assert [s for run in clock.seconds for s in run][:3] == [8398, 8967, 11347]
    assert clock.fractions == 0


def test_real_seconds_far_past_a_whole_minute_note_are_a_fraction() -> None:
    # jimruttshow8596/Z5dompWURVo writes minutes:seconds:00 under an hour, then real hours (01:00:40), and once
    # 04:49:53 among 04:38:00 and 05:01:00: as hours, four hours past everything else.
    values = ["00:36:00", "04:49:53", "04:38:00", "05:01:00", "59:13:00", "59:48:00", "01:00:40", "01:05:54"]
    clock = _clock(*([v] for v in values))
    assert [s for run in clock.seconds for s in run] == [36, 289, 278, 301, 3553, 3588, 3640, 3954]
    assert (clock.repaired, clock.fractions) == (5, 1)
    warning = clock.warning()
    assert warning is not None and "1 timestamp such as 04:49:53 as minutes:seconds:fraction" in warning


def test_real_seconds_are_not_a_fraction_outside_a_whole_minute_note() -> None:
    # The same late value in a note without whole-minute values: a long video's real time, read as written.
    clock = _clock(["00:00:36"], ["04:49:53"], ["00:04:38"], ["00:05:01"])
    assert [s for run in clock.seconds for s in run] == [36, 17393, 278, 301] and clock.warning() is None


def test_a_fraction_in_a_note_without_whole_minute_values_stays_hours() -> None:
    clock = _clock(["01:02:07"], ["01:05:30"], ["01:09:13"])
    assert clock.seconds == [[3727], [3930], [4153]] and clock.warning() is None


def test_whole_minute_values_inside_a_run_of_real_hours_keep_their_hour() -> None:
    # bankless/WpjcPPrrN2E mixes both: minutes:seconds:00 at the start, then 01:09:13, 01:11:00, 01:13:42.
    values = [
        "00:51:00",
        "01:00:00",
        "01:08:00",
        "06:44:00",
        "01:09:02",
        "01:09:13",
        "01:11:00",
        "01:12:00",
        "01:13:42",
    ]
    clock = _clock(*([v] for v in values))
    assert [s for run in clock.seconds for s in run] == [51, 60, 68, 404, 4142, 4153, 4260, 4320, 4422]
    assert clock.repaired == 4


def test_a_few_whole_minute_values_in_an_hours_note_stay_hours() -> None:
    # when-shift-happens/npnbqnlQtoQ: 01:27:00 between 01:26:35 and 01:27:58 is an hour value.
    values = ["00:00:22", "01:15:09", "01:26:16", "01:26:35", "01:27:00", "01:27:58", "01:27:00", "01:31:00"]
    clock = _clock(*([v] for v in values))
    assert [s for run in clock.seconds for s in run] == [ts.parse(v) for v in values]
    assert clock.repaired == 0 and clock.warning() is None


def test_values_past_twelve_hours_with_real_seconds_mean_fractions_and_a_one_digit_hour_stays() -> None:
    # acquiredfm/y6NfxiemvHg (Nvidia): `[03:20:00]` was 12000 s and `[08:01:00]` 481 s in one bullet, 18:48:58 and
    # 46:40:53 were dropped; the note writes minutes:seconds:fraction, except its H:MM:SS `1:26:07`.
    values = ["04:45:10", "04:49:00", "06:24:00", "03:20:00", "08:01:00", "18:48:58", "46:40:53", "1:26:07"]
    clock = _clock(*([v] for v in values))
    assert clock.reading is Reading.FRACTION
    assert [s for run in clock.seconds for s in run] == [285, 289, 384, 200, 481, 1128, 2800, 5167]
    assert clock.warning() is not None


def test_seconds_written_twice_mean_minutes_seconds_seconds() -> None:
    # causalpython/w9Dy4xqn7mA, goingonchain/nc8Qi8UTT7Y: 04:16:16, 06:12:12, ... (1 in 60 each by chance).
    values = ["03:40:42", "04:16:16", "06:12:12", "08:20:20", "09:16:16", "04:32:00"]
    assert ts.seconds_list(values) == [220, 256, 372, 500, 556, 272]


def test_an_impossible_hour_is_repaired_even_in_a_note_of_few_whole_minute_values() -> None:
    # hrishikeshyadav8883/fHRdb8sGd-w: 07:13:00 among 00:01:07 and 00:01:28 is 7 min 13 s, not dropped.
    clock = _clock(["00:00:59"], ["00:01:07"], ["07:13:00"], ["00:01:28"], ["07:07:00"], ["00:02:42"])
    assert clock.seconds == [[59], [67], [433], [88], [427], [162]]


def test_hour_far_above_the_real_hours_is_read_as_minutes() -> None:
    values = ["00:10:15", "00:45:12", "56:04:00", "01:05:00"]
    assert ts.choose_reading(ts.split(v) for v in values) == (Reading.HOURS, 0)
    assert ts.seconds_list(values) == [615, 2712, 56 * 60 + 4, 3900]


def test_hour_exactly_one_above_the_largest_real_hour_stays_an_hour() -> None:
    values = ["01:10:15", "02:30:00", "03:30:00"]
    assert ts.choose_reading(ts.split(v) for v in values) == (Reading.HOURS, 1)
    assert ts.seconds_list(values) == [3600 + 615, 2 * 3600 + 30 * 60, 3 * 60 + 30]


def test_real_hours_ignore_values_past_max_seconds() -> None:
    # 13:00:05 is past the limit, so it does not raise the largest real hour to 13.
    parts = [ts.split(v) for v in ["13:00:05", "00:10:15", "05:30:00"]]
    reading, max_hour = ts.choose_reading(parts)
    assert (reading, max_hour) == (Reading.HOURS, 0)
    assert ts.to_seconds(parts[2], reading, max_hour) == 5 * 60 + 30


def test_no_three_part_values_is_the_hours_reading() -> None:
    assert ts.choose_reading(ts.split(v) for v in ["01:02", "03:04"]) == (Reading.HOURS, 0)
    assert ts.choose_reading([]) == (Reading.HOURS, 0)
    assert ts.seconds_list([]) == []


# --- format_hms / valid_video_id / video_url ------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "00:00:00"), (59, "00:00:59"), (110, "00:01:50"), (3661, "01:01:01"), (43200, "12:00:00")],
)
def test_format_hms(seconds: int, text: str) -> None:
    assert ts.format_hms(seconds) == text


def test_format_hms_round_trips_through_parse_when_seconds_are_not_zero() -> None:
    for seconds in (1, 61, 3601, 5469, 43199):
        assert ts.parse(ts.format_hms(seconds)) == seconds


@pytest.mark.parametrize(
    "video_id", ["aircAruvnKk", "dQw4w9WgXcQ", "a-b_c-d_e-f", "___________", "01234567890"]
)
def test_valid_video_ids(video_id: str) -> None:
    assert ts.valid_video_id(video_id)


@pytest.mark.parametrize(
    "video_id",
    [
        "aircAruvnK",  # 10 characters
        "aircAruvnKkk",  # 12 characters
        "aircAruvn k",  # a space inside
        " aircAruvnK",  # a leading space
        "aircAruvnK!",  # a character outside [A-Za-z0-9_-]
        "aircAruvnKé",
        "",
        None,
        12345678901,
        b"aircAruvnKk",
        ["aircAruvnKk"],
    ],
)
def test_invalid_video_ids(video_id: object) -> None:
    assert not ts.valid_video_id(video_id)


def test_video_id_with_trailing_newline_is_invalid() -> None:
    assert not ts.valid_video_id("aircAruvnKk\n")


def test_video_url_with_and_without_seconds() -> None:
    assert ts.video_url("aircAruvnKk", 110) == "https://www.youtube.com/watch?v=aircAruvnKk&t=110s"
    assert ts.video_url("aircAruvnKk", None) == "https://www.youtube.com/watch?v=aircAruvnKk"
    # Zero is a time (the very start), not "no time".
    assert ts.video_url("aircAruvnKk", 0) == "https://www.youtube.com/watch?v=aircAruvnKk&t=0s"


def test_chapter_marks_on_whole_minutes_keep_the_plain_reading() -> None:
    assert ts.seconds_list(["00:02:00", "00:05:00", "00:10:00"]) == [120, 300, 600]


def test_a_value_read_alone_is_never_repaired() -> None:
    assert ts.parse("03:04:00") == 3 * 3600 + 4 * 60
    assert ts.parse(ts.format_hms(7200)) == 7200


# --- the clock read against the other notes of its video (agrees_as_fraction) -----------------------------------

# humblelifeskills/bASS0_vof0c: one note writes whole minutes as A:B:00, the other minutes:seconds:fraction.
SIBLING = [
    "01:10:10",
    "01:12:00",
    "02:20:00",
    "02:24:00",
    "03:06:00",
    "03:13:00",
    "05:02:00",
    "05:54:00",
    "08:21:00",
]
FRACTION_NOTE = [
    "01:10:17",
    "02:20:24",
    "02:24:26",
    "03:06:09",
    "03:13:17",
    "05:02:04",
    "05:54:57",
    "08:30:32",
]


def _parts(values: list[str]) -> list[ts.Parts]:
    return [ts.split(v) for v in values]


def test_a_note_whose_other_note_cites_the_same_moments_reads_minutes_seconds_fraction() -> None:
    others = ts.alone(_parts(SIBLING))
    assert max(others) == 501  # the sibling reads as minutes:seconds on its own
    assert ts.agrees_as_fraction(_parts(FRACTION_NOTE), others)
    assert not ts.agrees_as_fraction(_parts(FRACTION_NOTE), [])  # alone, it reads as hours
    clock = ts.read_clock([[p] for p in _parts(FRACTION_NOTE)], others_latest=max(others))
    assert [t for run in clock.seconds for t in run] == [70, 140, 144, 186, 193, 302, 354, 510]
    assert clock.warning() == (
        "reads its three-part timestamps as minutes:seconds:fraction, as the video's other notes cite the same "
        "moments (read as hours they would run to 08:30:32, past those notes' latest, 00:08:21)"
    )


def test_a_note_of_a_later_part_of_a_long_video_keeps_its_hours() -> None:
    # Part 1 of a three-hour talk cites every 20 s of its first hour; part 3 cites 02:10:00-02:40:00. Read as
    # minutes:seconds:fraction part 3 would fit inside part 1, but it does not land on part 1's moments.
    part_one = list(range(20, 3300, 20))
    part_three = [
        f"02:{m:02d}:{s:02d}"
        for m, s in zip(range(10, 40, 3), (7, 33, 51, 14, 48, 27, 3, 39, 56, 11), strict=True)
    ]
    assert not ts.agrees_as_fraction(_parts(part_three), part_one)
    # A note that fits the other notes' times as hours is never re-read, whatever it lands on.
    assert not ts.agrees_as_fraction(_parts(["00:01:10", "00:02:20", "00:03:06"]), [70, 140, 186])


def test_a_note_with_a_value_no_fraction_reading_reads_keeps_its_hours() -> None:
    # 01:75:10 has no minutes:seconds:fraction reading (75 seconds), so the note is not re-read.
    assert not ts.agrees_as_fraction(_parts([*FRACTION_NOTE, "01:75:10"]), ts.alone(_parts(SIBLING)))
