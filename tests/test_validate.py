import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cvalue as cv
from cvalue import Columns, validate_transactions
from cvalue.errors import DataQualityError, EmptyExtractError, SchemaError
from cvalue.io import RULES

MAPPED = Columns(customer_id="client_id", timestamp="paid_at", amount="net_amount")


def extract(**overrides):
    base = {
        "client_id": ["a", "b", "c", "d"],
        "paid_at": ["2024-01-02", "2024-01-03", "2024-02-10", "2024-03-01"],
        "net_amount": [10.0, 20.5, 7.25, 3.0],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def check_rejected(raw, reason, n_rows, *, columns=MAPPED, message=(), **options):
    """Non-strict: the rows come back with the reason; strict: one message naming everything."""
    result = validate_transactions(raw, columns, **options)
    rejected = result.rejected
    assert (rejected["rejection_reason"] == reason).sum() == n_rows
    assert len(result.clean) + len(rejected) == len(raw)
    row = result.report.reasons.set_index("reason").loc[reason]
    assert row["rows"] == n_rows
    with pytest.raises(DataQualityError) as caught:
        validate_transactions(raw, columns, strict=True, **options)
    text = str(caught.value)
    assert f"column {row['column']!r}" in text
    assert f"in {n_rows:,} rows" in text
    assert "e.g. row" in text
    assert "fix:" in text
    for phrase in message:
        assert phrase in text
    return result


def test_clean_extract_passes_with_canonical_names():
    result = validate_transactions(extract(), MAPPED, strict=True)
    assert list(result.clean.columns) == ["customer_id", "timestamp", "amount"]
    assert pd.api.types.is_datetime64_any_dtype(result.clean["timestamp"])
    assert result.rejected.empty
    assert result.report.n_rejected == 0
    assert result.report.n_clean == 4


@pytest.mark.parametrize("missing", [None, np.nan, "", "  "])
def test_missing_customer_ids(missing):
    raw = extract(client_id=["a", missing, "c", missing])
    result = check_rejected(raw, "missing_customer_id", 2, message=["'client_id'", "missing"])
    assert result.rejected.index.tolist() == [1, 3]


def test_missing_and_unparsable_timestamps():
    raw = extract(paid_at=["2024-01-02", None, "not a date", "2024-13-45"])
    result = check_rejected(raw, "unparsable_timestamp", 2, message=["'paid_at'", "ISO dates"])
    assert result.report.reasons.set_index("reason").loc["missing_timestamp", "rows"] == 1
    assert result.clean.index.tolist() == [0]


def test_nat_timestamps_in_a_datetime_column():
    raw = extract(paid_at=pd.to_datetime(["2024-01-02", None, "2024-02-01", None]))
    check_rejected(raw, "missing_timestamp", 2, message=["'paid_at'", "missing timestamp"])


def test_string_and_nan_amounts():
    raw = extract(net_amount=["10.5", "ten", np.nan, "inf"])
    result = check_rejected(raw, "non_numeric_amount", 2, message=["'net_amount'", "finite"])
    assert result.report.reasons.set_index("reason").loc["missing_amount", "rows"] == 1
    assert result.clean["amount"].tolist() == [10.5]


def test_negative_amounts_are_rejected_unless_flagged_as_returns():
    raw = extract(net_amount=[10.0, -5.0, -2.0, 4.0])
    check_rejected(raw, "negative_amount", 2, message=["is_return"])
    flagged = raw.assign(returned=[False, True, "yes", "no"])
    columns = Columns(
        customer_id="client_id", timestamp="paid_at", amount="net_amount", is_return="returned"
    )
    result = validate_transactions(flagged, columns, strict=True)
    assert result.clean["amount"].tolist() == [10.0, -5.0, -2.0, 4.0]
    assert result.clean["is_return"].tolist() == [False, True, True, False]


def test_returns_recorded_as_positive_amounts_count_negative():
    raw = extract(net_amount=[10.0, 5.0, 2.0, 4.0]).assign(returned=[0, 1, 0, 0])
    columns = Columns(
        customer_id="client_id", timestamp="paid_at", amount="net_amount", is_return="returned"
    )
    assert validate_transactions(raw, columns).clean["amount"].tolist() == [10.0, -5.0, 2.0, 4.0]


def test_unreadable_return_flags():
    raw = extract().assign(returned=[True, "maybe", None, False])
    columns = Columns(
        customer_id="client_id", timestamp="paid_at", amount="net_amount", is_return="returned"
    )
    check_rejected(raw, "invalid_return_flag", 2, columns=columns, message=["'returned'"])


def test_exact_duplicate_rows_keep_the_first():
    raw = pd.concat([extract(), extract().iloc[[1, 1, 3]]], ignore_index=True)
    result = check_rejected(raw, "duplicate_row", 3, message=["duplicate", "join"])
    assert result.clean.index.tolist() == [0, 1, 2, 3]


def test_duplicate_order_ids_reject_every_row_of_the_order():
    raw = extract().assign(order=[1, 2, 2, 3])
    columns = Columns(
        customer_id="client_id", timestamp="paid_at", amount="net_amount", order_id="order"
    )
    result = check_rejected(raw, "duplicate_order_id", 2, columns=columns, message=["'order'"])
    assert result.rejected.index.tolist() == [1, 2]


def test_missing_order_ids():
    raw = extract().assign(order=[1, None, 3, 4])
    columns = Columns(
        customer_id="client_id", timestamp="paid_at", amount="net_amount", order_id="order"
    )
    check_rejected(raw, "missing_order_id", 1, columns=columns)


def test_timestamps_after_the_observation_end():
    raw = extract(paid_at=["2024-01-02", "2024-01-31 23:59", "2024-02-01", "2025-01-01"])
    result = check_rejected(
        raw, "after_observation_end", 2, observation_end="2024-01-31", message=["observation_end"]
    )
    assert result.clean.index.tolist() == [0, 1]


def test_mixed_time_zones_are_rejected_or_converted():
    raw = extract(
        paid_at=[
            "2024-01-02T10:00:00+01:00",
            "2024-01-03T10:00:00+01:00",
            "2024-01-04T10:00:00Z",
            "2024-01-05T10:00:00",
        ]
    )
    check_rejected(raw, "mixed_time_zone", 2, message=["timezone="])
    converted = validate_transactions(raw, MAPPED, timezone="UTC", strict=True).clean
    assert str(converted["timestamp"].dt.tz) == "UTC"
    assert converted["timestamp"].iloc[0] == pd.Timestamp("2024-01-02T09:00:00Z")
    assert converted["timestamp"].iloc[3] == pd.Timestamp("2024-01-05T10:00:00Z")


def test_timestamp_objects_from_different_zones():
    stamps = pd.Series(
        [
            pd.Timestamp("2024-01-02 10:00", tz="Europe/Berlin"),
            pd.Timestamp("2024-01-03 10:00", tz="Europe/Berlin"),
            pd.Timestamp("2024-01-04 10:00", tz="America/New_York"),
            pd.Timestamp("2024-01-05 10:00", tz="Europe/Berlin"),
        ],
        dtype=object,
    )
    result = check_rejected(extract(paid_at=stamps), "mixed_time_zone", 1)
    assert str(result.clean["timestamp"].dt.tz) == "Europe/Berlin"


def test_every_problem_is_reported_at_once():
    raw = extract(client_id=["a", None, "c", "d"], net_amount=[1.0, 2.0, "x", -1.0])
    with pytest.raises(DataQualityError) as caught:
        validate_transactions(raw, MAPPED, strict=True)
    text = str(caught.value)
    assert "3 of 4 rows rejected by 3 rule(s)" in text
    for column in ("'client_id'", "'net_amount'"):
        assert column in text


def test_a_row_gets_the_first_rule_it_breaks():
    raw = extract(client_id=[None, "b", "c", "d"], paid_at=[None, "2024-01-03", "x", "2024-03-01"])
    reasons = validate_transactions(raw, MAPPED).rejected["rejection_reason"]
    assert reasons.tolist() == ["missing_customer_id", "unparsable_timestamp"]


def test_an_empty_extract_is_an_error():
    with pytest.raises(DataQualityError, match=r"no rows.*query's filters"):
        validate_transactions(extract().iloc[0:0], MAPPED)


def test_unknown_columns_list_the_columns_that_exist():
    with pytest.raises(SchemaError) as caught:
        validate_transactions(extract(), Columns(customer_id="customer", timestamp="paid_at",
                                                 amount="net_amount"))  # fmt: skip
    text = str(caught.value)
    assert "'customer' (as customer_id)" in text
    assert "['client_id', 'paid_at', 'net_amount']" in text
    assert "cvalue.Columns(" in text


@pytest.mark.parametrize("data", [[{"customer_id": 1}], {"customer_id": [1]}, None, "tx.csv"])
def test_non_dataframe_input(data):
    with pytest.raises(SchemaError, match=r"expected a pandas DataFrame.*read_transactions"):
        validate_transactions(data)


def test_extra_columns_and_the_original_index_are_kept():
    raw = extract().assign(store=["x", "y", "z", "w"]).set_axis([10, 11, 12, 13])
    clean = validate_transactions(raw, MAPPED).clean
    assert clean.index.tolist() == [10, 11, 12, 13]
    assert clean["store"].tolist() == ["x", "y", "z", "w"]


def test_rejected_rows_keep_their_original_values():
    raw = extract(net_amount=[1.0, "oops", 3.0, 4.0])
    rejected = validate_transactions(raw, MAPPED).rejected
    assert rejected.loc[1, "net_amount"] == "oops"
    assert rejected.loc[1, "rejection_column"] == "net_amount"


def test_rules_have_unique_reasons():
    reasons = [rule.reason for rule in RULES]
    assert len(reasons) == len(set(reasons))


@settings(deadline=None)
@given(
    ids=st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c"])), min_size=1, max_size=30),
    data=st.data(),
)
def test_no_row_is_lost(ids, data):
    n_rows = len(ids)
    amounts = data.draw(
        st.lists(
            st.one_of(st.none(), st.floats(-10, 100), st.just("x")),
            min_size=n_rows,
            max_size=n_rows,
        )
    )
    days = data.draw(st.lists(st.integers(0, 40), min_size=n_rows, max_size=n_rows))
    raw = pd.DataFrame({
        "customer_id": ids,
        "timestamp": (pd.Timestamp("2024-01-01") + pd.to_timedelta(days, "D")).astype(str),
        "amount": pd.Series(amounts, dtype=object),
    })  # fmt: skip
    try:
        result = validate_transactions(raw, observation_end="2024-02-01")
        clean, rejected, report = result.clean, result.rejected, result.report
    except EmptyExtractError as empty:  # every row rejected: the error carries them
        clean, rejected, report = raw.iloc[0:0], empty.rejected, empty.report
    assert len(clean) + len(rejected) == n_rows
    assert sorted([*clean.index, *rejected.index]) == list(range(n_rows))
    assert report.reasons["rows"].sum() == len(rejected)
    assert (clean["amount"] >= 0).all()
    assert clean["customer_id"].notna().all()


def test_identical_rows_can_be_kept_as_real_repeat_purchases():
    raw = pd.concat([extract(), extract().iloc[[1]]], ignore_index=True)
    result = validate_transactions(raw, MAPPED, duplicates="keep", strict=True)
    assert len(result.clean) == 5


def test_default_mapping_picks_up_canonical_optional_columns():
    raw = pd.DataFrame({
        "customer_id": [1, 1], "timestamp": ["2024-01-01", "2024-01-05"], "amount": [5.0, -5.0],
        "is_return": [False, True], "order_id": [10, 11],
    })  # fmt: skip
    result = validate_transactions(raw, strict=True)
    assert result.clean["is_return"].tolist() == [False, True]
    assert result.clean["order_id"].tolist() == [10, 11]


# --- dates: one format per column (issue 13, item 1) -----------------------------------------


def test_day_first_dates_are_read_day_first_in_every_row():
    """A 48k-row export in dd.mm.yyyy: days up to 12 must not turn into months."""
    rng = np.random.default_rng(13)
    days = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 730, 48_000), "D")
    days = days.insert(0, pd.Timestamp("2023-07-05"))[:48_000]  # read 7 May by a first-value guess
    raw = pd.DataFrame({
        "client_id": rng.integers(0, 5_000, 48_000).astype(str),
        "paid_at": days.strftime("%d.%m.%Y"),
        "net_amount": rng.integers(1, 500, 48_000).astype(float),
    })  # fmt: skip
    assert (days.day <= 12).mean() > 0.3  # the rows a per-value guess would get wrong
    clean = validate_transactions(raw, MAPPED, duplicates="keep", strict=True).clean
    assert (clean["timestamp"].to_numpy() == days.to_numpy()).all()


def test_a_column_of_ambiguous_dates_is_refused_with_the_options_that_settle_it():
    raw = extract(paid_at=["05.07.2024", "06.07.2024", "01.02.2024", "12.11.2024"])
    with pytest.raises(SchemaError) as caught:
        validate_transactions(raw, MAPPED)
    text = str(caught.value)
    for phrase in ("'paid_at'", "'05.07.2024'", "day-first and month-first",
                   "date_format='%d.%m.%Y'", "dayfirst=True"):  # fmt: skip
        assert phrase in text
    day_first = validate_transactions(raw, MAPPED, dayfirst=True, strict=True).clean
    assert day_first["timestamp"].iloc[0] == pd.Timestamp("2024-07-05")
    month_first = validate_transactions(raw, MAPPED, dayfirst=False, strict=True).clean
    assert month_first["timestamp"].iloc[0] == pd.Timestamp("2024-05-07")
    given = validate_transactions(raw, MAPPED, date_format="%d.%m.%Y", strict=True).clean
    assert given["timestamp"].equals(day_first["timestamp"])


def test_values_outside_the_column_format_are_rejected_not_guessed():
    raw = extract(paid_at=["05.07.2024", "20.07.2024 10:30", "2024-07-21", "31.06.2024"])
    result = check_rejected(raw, "unparsable_timestamp", 2, message=["date_format="])
    assert result.clean["timestamp"].tolist() == [pd.Timestamp("2024-07-05"),
                                                  pd.Timestamp("2024-07-20 10:30")]  # fmt: skip


# what strftime writes, in every layout the detection supports
WRITTEN_DATES = ["%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%Y/%m/%d",
                 "%Y.%m.%d"]  # fmt: skip
WRITTEN_TIMES = {"": "D", " %H:%M": "min", " %H:%M:%S": "s"}


@settings(max_examples=150, deadline=None)
@given(
    moments=st.lists(
        st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 12, 31)),
        min_size=1, max_size=25,
    ),
    layout=st.sampled_from([*WRITTEN_DATES, "%Y-%m-%dT%H:%M:%S"]),
    time=st.sampled_from(list(WRITTEN_TIMES)),
    settling_day=st.integers(13, 28),
)  # fmt: skip
def test_dates_written_in_any_supported_format_read_back_unchanged(
    moments, layout, time, settling_day
):
    written_format = layout if "T" in layout else layout + time
    precision = "s" if "T" in layout else WRITTEN_TIMES[time]
    # one value with a day above 12 settles the day/month order for detection
    moments = [*moments, dt.datetime(2001, 1, settling_day, 12, 34, 56)]
    expected = pd.Series(pd.to_datetime(moments)).dt.floor(precision)
    raw = pd.DataFrame({
        "customer_id": range(len(moments)),
        "timestamp": [moment.strftime(written_format) for moment in moments],
        "amount": 1.0,
    })  # fmt: skip
    window = {"max_date": "2100-12-31", "strict": True}
    given_format = validate_transactions(raw, date_format=written_format, **window).clean
    assert given_format["timestamp"].tolist() == expected.tolist()
    detected = validate_transactions(raw, **window).clean
    assert detected["timestamp"].tolist() == expected.tolist()


def test_unix_timestamps_in_seconds_and_milliseconds():
    seconds = [1_719_792_000, 1_719_878_400, 1_722_470_400, 1_704_067_199]
    expected = pd.to_datetime(["2024-07-01", "2024-07-02", "2024-08-01", "2023-12-31 23:59:59"],
                              format="ISO8601",
                              utc=True).tolist()  # fmt: skip
    as_milliseconds = [value * 1000 for value in seconds]
    for values, date_format in ((seconds, "unix_s"), (as_milliseconds, "unix_ms")):
        for written in (values, [f" {value} " for value in values]):
            raw = extract(paid_at=written)
            clean = validate_transactions(raw, MAPPED, date_format=date_format, strict=True).clean
            assert clean["timestamp"].tolist() == expected
    in_moscow = validate_transactions(extract(paid_at=seconds), MAPPED, date_format="unix_s",
                                      timezone="Europe/Moscow").clean  # fmt: skip
    assert in_moscow["timestamp"].iloc[3] == pd.Timestamp("2024-01-01 02:59:59", tz="Europe/Moscow")
    fractions = extract(paid_at=[1_719_792_000_123, "1719792000500.0", "soon", None])
    result = validate_transactions(fractions, MAPPED, date_format="unix_ms")
    assert result.clean["timestamp"].iloc[0] == pd.Timestamp("2024-07-01 00:00:00.123", tz="UTC")
    assert result.rejected["rejection_reason"].tolist() == ["unparsable_timestamp",
                                                            "missing_timestamp"]  # fmt: skip


def test_numbers_are_not_read_as_dates_without_a_unix_format():
    raw = extract(paid_at=pd.Series(["2024-07-01", 1_719_792_000, 1_719_878_400, "2024-07-03"],
                                    dtype=object))  # fmt: skip
    result = check_rejected(raw, "unparsable_timestamp", 2, message=["date_format='unix_s'"])
    assert result.clean.index.tolist() == [0, 3]
    with pytest.raises(EmptyExtractError, match="date_format='unix_s'"):
        validate_transactions(extract(paid_at=[1_719_792_000] * 4), MAPPED)


def test_time_zone_offsets_written_in_several_ways_are_one_zone():
    raw = extract(paid_at=["2024-07-05T10:00+02", "2024-07-05T11:00:00+0200",
                           "2024-07-06 12:00 +02:00", "2024-07-07T10:00:00Z"])  # fmt: skip
    result = check_rejected(raw, "mixed_time_zone", 1)
    assert result.clean["timestamp"].dt.hour.tolist() == [10, 11, 12]


# --- amounts (item 2) --------------------------------------------------------------------------


def test_decimal_commas_and_thousands_separators():
    spaced = ["1 234,50", "1\u00a0234,50", "1\u202f234,50", "12,5"]
    clean = validate_transactions(extract(net_amount=spaced), MAPPED, decimal=",", thousands=" ",
                                  strict=True).clean  # fmt: skip
    assert clean["amount"].tolist() == [1234.5, 1234.5, 1234.5, 12.5]
    dotted = extract(net_amount=["1.234,50", "1.234.567", "0,99", 7.5])
    clean = validate_transactions(dotted, MAPPED, decimal=",", thousands=".", strict=True).clean
    assert clean["amount"].tolist() == [1234.5, 1234567.0, 0.99, 7.5]


def test_amounts_that_break_the_grouping_are_rejected_and_counted():
    raw = extract(net_amount=["1,5", "12,34,567", "1,234", "1234,5"])
    result = check_rejected(raw, "non_numeric_amount", 3, thousands=",",
                            message=["decimal=", "thousands="])  # fmt: skip
    assert result.clean["amount"].tolist() == [1234.0]
    assert validate_transactions(extract(net_amount=["1 234,50", "1", "2", "3"]),
                                 MAPPED).report.n_rejected == 1  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    units=st.integers(-(10**12), 10**12),
    places=st.integers(0, 4),
    marks=st.sampled_from([(".", None), (",", None), (".", ","), (",", "."), (",", " "),
                           (",", "\u00a0"), (".", "'"), (",", "\u202f")]),
)  # fmt: skip
def test_amounts_written_with_any_separators_read_back_unchanged(units, places, marks):
    decimal, thousands = marks
    value = Decimal(units).scaleb(-places)
    whole, _, fraction = f"{abs(value):f}".partition(".")
    if thousands is not None:
        whole = f"{int(whole):,}".replace(",", thousands)
    written = ("-" if value < 0 else "") + whole + (decimal + fraction if fraction else "")
    raw = pd.DataFrame({"customer_id": ["a"], "timestamp": ["2024-01-01"], "amount": [written],
                        "is_return": [value < 0]})  # fmt: skip
    clean = validate_transactions(raw, decimal=decimal, thousands=thousands, strict=True).clean
    assert clean["amount"].tolist() == [float(value)]


# --- the date range (item 7) -------------------------------------------------------------------


def test_rows_before_min_date_and_after_max_date_are_rejected():
    raw = extract(paid_at=["1900-01-01", "1969-12-31 23:59", "2024-03-01", "2200-06-30"])
    result = check_rejected(raw, "before_min_date", 2, message=["min_date"])
    assert result.report.reasons.set_index("reason").loc["after_max_date", "rows"] == 1
    assert result.clean.index.tolist() == [2]
    check_rejected(raw, "after_max_date", 2, min_date=None, max_date="2024-02-29",
                   message=["max_date"])  # fmt: skip
    assert validate_transactions(raw, MAPPED, min_date=None, max_date="2200-06-30",
                                 strict=True).report.n_clean == 4  # fmt: skip


def test_the_default_max_date_is_today_on_the_local_calendar():
    today = pd.Timestamp.now().normalize()
    raw = extract(paid_at=[str(today), str(today + pd.Timedelta(hours=23, minutes=59)),
                           str(today + pd.Timedelta(days=1)), "2024-01-01"])  # fmt: skip
    result = check_rejected(raw, "after_max_date", 1)
    assert result.clean.index.tolist() == [0, 1, 3]


def test_the_date_range_compares_calendar_days_in_the_column_zone():
    raw = extract(paid_at=["2024-02-29T23:30:00-05:00", "2024-03-01T00:30:00-05:00",
                           "2024-01-01T00:00:00-05:00", "2024-02-01T00:00:00-05:00"])  # fmt: skip
    end_of_february = pd.Timestamp("2024-03-01 04:59", tz="UTC")  # still 29 February at -05:00
    result = check_rejected(raw, "after_max_date", 1, max_date=end_of_february)
    assert result.rejected.index.tolist() == [1]


# --- nothing left (item 6) ---------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
def test_an_extract_without_a_clean_row_raises_empty_extract_error(strict):
    raw = extract(client_id=[None, None, "c", "d"], net_amount=[1.0, 2.0, -3.0, "x"])
    with pytest.raises(EmptyExtractError) as caught:
        validate_transactions(raw, MAPPED, strict=strict)
    error = caught.value
    assert isinstance(error, DataQualityError)
    text = str(error)
    assert "kept none of the 4 rows" in text
    assert "missing customer id (2 rows)" in text
    assert "negative amount on a row not flagged as a return in 1 rows" in text
    assert len(error.rejected) == 4
    assert error.report.n_clean == 0
    assert error.rejected["rejection_reason"].value_counts()["missing_customer_id"] == 2


# --- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        ({"date_format": "mixed"}, "not a strptime format"),
        ({"date_format": "%d.%m.%Y", "dayfirst": True}, "not both"),
        ({"dayfirst": "yes"}, "dayfirst must be"),
        ({"decimal": ",", "thousands": ","}, "the same mark"),
        ({"decimal": ",", "thousands": "\u00a0", "min_date": None}, None),
        ({"decimal": "", "thousands": None}, "one character"),
        ({"thousands": "5"}, "one character"),
    ],
)
def test_format_options_are_checked(options, phrase):
    if phrase is None:
        validate_transactions(extract(), MAPPED, **options)
        return
    with pytest.raises(SchemaError, match=phrase):
        validate_transactions(extract(), MAPPED, **options)


def test_cells_holding_lists_or_dicts_are_rejected_not_a_crash():
    raw = extract(
        paid_at=pd.Series(["2024-01-02", ["x"], {"a": 1}, "2024-03-01"], dtype=object),
        net_amount=pd.Series([1.0, 2.0, 3.0, [4]], dtype=object),
    )
    reasons = validate_transactions(raw, MAPPED).rejected["rejection_reason"].tolist()
    assert reasons == ["unparsable_timestamp", "unparsable_timestamp", "non_numeric_amount"]


# --- ids of one kind -----------------------------------------------------------------------------


def test_ids_of_another_kind_than_the_column_are_rejected_and_counted():
    # an object column as spreadsheets export it: numbers, then a text id, a date and a flag
    raw = pd.DataFrame({
        "customer_id": [7, 7, 12, "A-7", dt.datetime(2024, 1, 1), True, 12.0, None],
        "timestamp": [f"2024-01-{day:02d}" for day in range(1, 9)], "amount": [10.0] * 8,
    })  # fmt: skip
    result = validate_transactions(raw, max_date=None)
    reasons = result.rejected["rejection_reason"]
    assert reasons.to_dict() == {
        3: "mixed_customer_id", 4: "mixed_customer_id", 5: "mixed_customer_id",
        7: "missing_customer_id",
    }  # fmt: skip
    assert result.clean["customer_id"].tolist() == [7, 7, 12, 12.0]
    summary = cv.rfm_summary(result.clean, observation_end="2024-01-31")
    assert summary.index.tolist() == [7, 12]
    assert summary.loc[12, "frequency"] == 1  # 12 and 12.0 are one customer
    text = validate_transactions(raw.assign(customer_id=["a", "b", 3, "c", "d", "e", "f", "g"]))
    assert text.rejected["rejection_reason"].tolist() == ["mixed_customer_id"]


@settings(deadline=None, max_examples=60)
@given(
    ids=st.lists(
        st.one_of(st.integers(-5, 5), st.text(max_size=3), st.booleans(), st.none(),
                  st.floats(allow_nan=True), st.datetimes(dt.datetime(2000, 1, 1))),
        min_size=1, max_size=20,
    )
)  # fmt: skip
def test_the_clean_ids_of_any_column_are_of_one_kind_and_summarise(ids):
    raw = pd.DataFrame(
        {"customer_id": pd.Series(ids, dtype=object), "timestamp": "2024-01-05", "amount": 1.0}
    )
    try:
        result = validate_transactions(raw, max_date=None)
    except EmptyExtractError:
        return
    kinds = {
        type(v).__name__ if isinstance(v, str) else "number" for v in result.clean["customer_id"]
    }
    assert len(kinds) == 1
    summary = cv.rfm_summary(result.clean, observation_end="2024-01-31")
    assert len(summary) == result.clean["customer_id"].nunique()
