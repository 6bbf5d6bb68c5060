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


def test_one_value_with_real_seconds_keeps_the_hours_reading() -> None:
    values = ["01:05:00", "01:10:00", "01:20:00", "00:10:15"]
    assert ts.choose_reading(ts.split(v) for v in values) == (Reading.HOURS, 0)
    assert ts.seconds_list(values) == [3900, 4200, 4800, 615]


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
