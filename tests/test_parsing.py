import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.errors import SchemaError
from cvalue.io.parsing import (
    DATE_LAYOUTS,
    Formats,
    detect_date_format,
    parse_amounts,
    parse_timestamps,
    resolve_formats,
)


def read(values, **options):
    return parse_timestamps(pd.Series(values), **options)


# --- detection ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "layout"),
    [
        (["2024-07-05", "2024-07-06 10:00", "2024-07-07T10:00:00.5"], "ISO8601"),
        (["05.07.2024", "25.07.2024"], "%d.%m.%Y"),
        (["07.05.2024", "07.25.2024"], "%m.%d.%Y"),
        (["05/07/2024 10:00", "25/07/2024 11:00:59"], "%d/%m/%Y"),
        (["07/05/2024", "07/25/2024"], "%m/%d/%Y"),
        (["05-07-2024", "25-07-2024"], "%d-%m-%Y"),
        (["2024/07/05", "2024.07.25"], "ISO8601"),  # pandas' ISO reader takes / and . too
    ],
)
def test_each_supported_layout_is_detected(values, layout):
    assert detect_date_format(pd.Series(values)) == layout


def test_the_layout_reading_most_rows_wins_and_the_rest_stay_unread():
    values = ["05.07.2024", "25.07.2024", "26.07.2024", "2024-07-27", "07/28/2024", None]
    parsed = read(values)
    assert parsed.date_format == "%d.%m.%Y"
    assert parsed.timestamps.notna().tolist() == [True, True, True, False, False, False]
    # rows count, not distinct values: the repeated ISO date outweighs three dotted ones
    assert read(["2024-07-27"] * 4 + values[:3]).date_format == "ISO8601"


def test_dayfirst_keeps_only_layouts_of_that_order():
    values = pd.Series(["05.07.2024", "06.07.2024"])
    assert detect_date_format(values, dayfirst=True) == "%d.%m.%Y"
    assert detect_date_format(values, dayfirst=False) == "%m.%d.%Y"
    # a day above 12 cannot be read month-first: with dayfirst=False it is unread
    assert read(["05.07.2024", "20.07.2024"], dayfirst=False).timestamps.isna().tolist() == [
        False,
        True,
    ]
    assert detect_date_format(pd.Series(["2024-07-05"]), dayfirst=True) == "ISO8601"


def test_the_ambiguity_error_names_the_column_an_example_and_both_fixes():
    with pytest.raises(SchemaError) as caught:
        read(["05.07.2024 10:00", "06.07.2024 11:30", None], column="paid_at")
    text = str(caught.value)
    assert "column 'paid_at'" in text
    assert "'05.07.2024 10:00'" in text
    assert "date_format='%d.%m.%Y %H:%M' or dayfirst=True" in text
    assert "date_format='%m.%d.%Y %H:%M' or dayfirst=False" in text


def test_two_digit_years_are_not_guessed():
    assert read(["05.07.24", "25.07.24"]).timestamps.isna().all()
    given_format = read(["05.07.24", "25.07.24"], date_format="%d.%m.%y").timestamps
    assert given_format.tolist() == [pd.Timestamp("2024-07-05"), pd.Timestamp("2024-07-25")]


def test_a_given_format_is_used_as_it_is_for_every_value():
    parsed = read(["05.07.2024", "05.07.2024 10:00", " 06.07.2024 "], date_format="%d.%m.%Y")
    assert parsed.timestamps.tolist() == [pd.Timestamp("2024-07-05"), pd.NaT,
                                          pd.Timestamp("2024-07-06")]  # fmt: skip


def test_a_large_column_costs_a_few_parses_not_one_per_value(monkeypatch):
    calls = []
    to_datetime = pd.to_datetime

    sizes = []

    def counting(*args, **kwargs):
        calls.append(kwargs.get("format"))
        sizes.append(len(args[0]))
        return to_datetime(*args, **kwargs)

    monkeypatch.setattr(pd, "to_datetime", counting)
    moments = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(20_000) * 3_607, "s")
    read(moments.strftime("%Y-%m-%dT%H:%M:%S"))
    assert calls == ["ISO8601", "ISO8601"]  # an evenly spaced sample, then the whole column
    calls.clear()
    sizes.clear()
    parsed = read(moments.strftime("%d.%m.%Y %H:%M"))
    assert parsed.date_format == "%d.%m.%Y"
    assert parsed.timestamps.notna().all()
    assert len(calls) < 40
    # the month-first layout is read on the sample only: the sample shows days above 12
    month_first = [size for call, size in zip(calls, sizes[-len(calls):], strict=True)
                   if call == "%m.%d.%Y %H:%M"]  # fmt: skip
    assert month_first
    assert max(month_first) <= 1_000


# --- zones and objects --------------------------------------------------------------------------


def test_offsets_written_in_several_ways_are_one_zone():
    parsed = read(["2024-07-05T10:00+02", "2024-07-05T10:00:00+0200", "2024-07-05 10:00 +02:00",
                   "2024-07-05T10:00:00-05:00"])  # fmt: skip
    assert parsed.is_main_zone.tolist() == [True, True, True, False]
    assert parsed.timestamps.iloc[:3].dt.hour.tolist() == [10, 10, 10]
    assert parsed.timestamps.isna().tolist() == [False, False, False, True]


def test_a_dashed_date_is_not_an_offset():
    parsed = read(["05-07-2024", "25-07-2024 10:00"])
    assert parsed.is_main_zone.all()
    assert parsed.timestamps.dt.day.tolist() == [5, 25]


def test_object_columns_mix_date_objects_text_and_numbers():
    values = pd.Series([dt.date(2024, 1, 1), dt.datetime(2024, 1, 2, 10), "2024-01-03", 17, None,
                        np.datetime64("2024-01-04")], dtype=object)  # fmt: skip
    parsed = parse_timestamps(values)
    assert parsed.timestamps.tolist() == [pd.Timestamp("2024-01-01"),
                                          pd.Timestamp("2024-01-02 10:00"),
                                          pd.Timestamp("2024-01-03"), pd.NaT, pd.NaT,
                                          pd.Timestamp("2024-01-04")]  # fmt: skip


def test_datetime_columns_pass_through_and_numbers_are_not_nanoseconds():
    stamps = pd.Series(pd.to_datetime(["2024-01-02", None]))
    assert parse_timestamps(stamps).timestamps.equals(stamps)
    for numbers in ([1_719_792_000, 2], [1.7e9, np.nan], [True, False]):
        parsed = read(numbers)
        assert parsed.timestamps.isna().all()
        assert parsed.date_format is None


def test_unix_timestamps_out_of_range_or_not_numbers_are_unread():
    parsed = read(["1e30", "inf", "x", "-1", True], date_format="unix_s")
    assert parsed.timestamps.iloc[:3].isna().all()
    assert parsed.timestamps.iloc[3] == pd.Timestamp("1969-12-31 23:59:59", tz="UTC")
    assert read([True, False], date_format="unix_ms").timestamps.isna().all()


def test_time_zone_conversion_keeps_dst_rules():
    parsed = read(["2024-03-31T02:30:00", "2024-10-27T02:30:00", "2024-06-01T12:00:00"],
                  timezone="Europe/Berlin")  # fmt: skip
    assert parsed.timestamps.isna().tolist() == [True, True, False]


# --- amounts ------------------------------------------------------------------------------------


def test_amounts_that_are_numbers_pass_through():
    numbers = pd.Series([1.5, 2.0, np.nan])
    assert parse_amounts(numbers, decimal=",", thousands=" ").equals(numbers)
    assert parse_amounts(pd.Series([1, 2]), decimal=",").tolist() == [1.0, 2.0]


def test_text_amounts_follow_the_marks_strictly():
    text = pd.Series(["1 234,50", "1\u00a0234", "1\u202f234\u202f567,1", "-12,5", ",5", "1,5 ",
                      "12 34", "1.234,5", "1e3", "", None])  # fmt: skip
    amounts = parse_amounts(text, decimal=",", thousands=" ")
    assert amounts.tolist()[:6] == [1234.5, 1234.0, 1234567.1, -12.5, 0.5, 1.5]
    assert amounts.iloc[6:].isna().all()
    mixed = pd.Series([2.5, "3,5", "x"], dtype=object)
    assert parse_amounts(mixed, decimal=",").tolist()[:2] == [2.5, 3.5]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**9), st.sampled_from([",", ".", " ", "'"]))
def test_wrong_grouping_is_never_read(number, thousands):
    written = f"{number:,}".replace(",", thousands)
    assert parse_amounts(pd.Series([written]), thousands=thousands, decimal="," if thousands ==
                         "." else ".").tolist() == [float(number)]  # fmt: skip
    if number >= 10_000:  # the last separator one digit to the left: a group of four digits
        broken = written[:-5] + thousands + written[-5] + written[-3:]
        assert parse_amounts(pd.Series([broken]), thousands=thousands,
                             decimal="," if thousands == "." else ".").isna().all()  # fmt: skip


# --- options ------------------------------------------------------------------------------------


def test_recorded_formats_apply_unless_given_and_conflicts_are_refused():
    recorded = Formats(dayfirst=True, decimal=",").as_dict()
    assert resolve_formats(Formats(), recorded) == Formats(dayfirst=True, decimal=",")
    assert resolve_formats(Formats(thousands=" "), recorded) == Formats(
        dayfirst=True, decimal=",", thousands=" "
    )
    assert resolve_formats(Formats(decimal=","), recorded) == Formats(dayfirst=True, decimal=",")
    with pytest.raises(SchemaError, match=r"decimal='\.'|decimal=';'"):
        resolve_formats(Formats(decimal=";"), recorded)
    with pytest.raises(SchemaError, match="unknown format option"):
        resolve_formats(Formats(), {"dayfirst": True, "sep": ";"})
    assert resolve_formats(Formats(dayfirst=False), None) == Formats(dayfirst=False)


def test_the_layouts_are_listed_once():
    assert len(set(DATE_LAYOUTS)) == len(DATE_LAYOUTS)
