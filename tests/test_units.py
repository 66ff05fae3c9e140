import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvalue.errors import SchemaError
from cvalue.units import DAYS_PER_YEAR, Duration, Rate, TimeUnit, as_duration, as_time_unit

UNITS = st.sampled_from(list(TimeUnit))
RATES = st.floats(min_value=-0.9, max_value=5.0, allow_nan=False)


def test_unit_lengths_are_exact_calendar_lengths():
    assert TimeUnit.DAY.days == 1.0
    assert TimeUnit.WEEK.days == 7.0
    assert TimeUnit.MONTH.days == pytest.approx(365.2425 / 12, rel=0, abs=1e-12)
    assert TimeUnit.MONTH.days != 30.0
    assert TimeUnit.QUARTER.days == pytest.approx(3 * TimeUnit.MONTH.days, rel=1e-15)
    assert TimeUnit.YEAR.days == DAYS_PER_YEAR == 365.2425
    assert TimeUnit.YEAR.per(TimeUnit.MONTH) == pytest.approx(12.0, rel=1e-15)


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [
        ("52w", 52, TimeUnit.WEEK),
        ("18M", 18, TimeUnit.MONTH),
        ("3y", 3, TimeUnit.YEAR),
        ("90 days", 90, TimeUnit.DAY),
        ("1.5 years", 1.5, TimeUnit.YEAR),
        ("2q", 2, TimeUnit.QUARTER),
        (" 60 months ", 60, TimeUnit.MONTH),
    ],
)
def test_duration_parses(text, value, unit):
    assert Duration.parse(text) == Duration(value, unit)


def test_duration_conversions_are_exact():
    assert Duration.parse("18M").to("year") == pytest.approx(1.5, rel=1e-15)
    assert Duration.parse("1y").to(TimeUnit.WEEK) == pytest.approx(365.2425 / 7, rel=1e-15)
    assert Duration.parse("60M").to("y") == pytest.approx(5.0, rel=1e-15)
    assert Duration.parse("52w").days == 364.0


@pytest.mark.parametrize("text", ["3m", "52", "w52", "three years", "", "-3y", "3 fortnights"])
def test_bad_durations_are_rejected_with_the_fix(text):
    with pytest.raises(SchemaError, match=r"duration|time unit|'M'"):
        Duration.parse(text)


def test_minutes_are_never_months():
    with pytest.raises(SchemaError, match="write 'M' for months"):
        as_time_unit("m")


def test_as_duration_and_as_time_unit_pass_values_through():
    duration = Duration(3, TimeUnit.YEAR)
    assert as_duration(duration) is duration
    assert as_duration("3y") == duration
    assert as_time_unit(TimeUnit.DAY) is TimeUnit.DAY


def test_rate_per_unit_matches_the_compounding_formula():
    rate = Rate(0.10)
    assert rate.per("year") == pytest.approx(0.10, rel=1e-14)
    assert rate.per("month") == pytest.approx(1.10 ** (1 / 12) - 1, rel=1e-12)
    assert rate.per("week") == pytest.approx(1.10 ** (7 / 365.2425) - 1, rel=1e-12)
    assert rate.continuous() == pytest.approx(math.log(1.10), rel=1e-14)
    assert rate.discount_factor("3y") == pytest.approx(1.10**-3, rel=1e-14)
    assert rate.discount_factor("6M") == pytest.approx(1.10**-0.5, rel=1e-14)


@pytest.mark.parametrize("bad", [-1.0, -2.0, math.inf, math.nan])
def test_impossible_rates_are_rejected(bad):
    with pytest.raises(SchemaError, match="rate"):
        Rate(bad)


@given(annual=RATES, unit=UNITS)
def test_rates_round_trip_through_every_unit(annual, unit):
    rate = Rate(annual)
    assert Rate.from_per(rate.per(unit), unit).annual == pytest.approx(annual, rel=1e-9, abs=1e-12)
    back = Rate.from_continuous(rate.continuous(unit), unit).annual
    assert back == pytest.approx(annual, rel=1e-9, abs=1e-12)


@given(annual=RATES, first=UNITS, second=UNITS)
def test_compounding_per_unit_is_consistent_across_units(annual, first, second):
    rate = Rate(annual)
    # compounding the per-`first` rate over one `second` gives the per-`second` rate
    compounded = (1.0 + rate.per(first)) ** (second.days / first.days) - 1.0
    assert compounded == pytest.approx(rate.per(second), rel=1e-9, abs=1e-12)


@given(value=st.floats(min_value=0, max_value=1e6, allow_nan=False), first=UNITS, second=UNITS)
def test_durations_round_trip(value, first, second):
    duration = Duration(value, first)
    there = Duration(duration.to(second), second)
    assert there.to(first) == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert there.days == pytest.approx(duration.days, rel=1e-12, abs=1e-12)
