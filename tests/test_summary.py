import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue import Columns, calibration_holdout, compress, rfm_summary
from cvalue.datasets import load_cdnow
from cvalue.errors import DataQualityError, SchemaError
from cvalue.models import BetaGeoBetaBinom
from cvalue.summary import add_summary_columns
from cvalue.units import TimeUnit

CALIBRATION_END = "1997-09-30"
OBSERVATION_END = "1998-06-30"
GRAINS = ["day", "week", "month", "quarter", "year"]
UNITS = ["day", "week", "month", "quarter", "year"]


@pytest.fixture(scope="module")
def cdnow():
    return load_cdnow()


@pytest.fixture(scope="module")
def calibration(cdnow):
    tx = cdnow.transactions
    return rfm_summary(
        tx[tx["timestamp"] <= CALIBRATION_END], observation_end=CALIBRATION_END, unit="week"
    )


def lifetimes_summary(tx, **options):
    with warnings.catch_warnings():  # lifetimes' own pandas deprecation warnings
        warnings.simplefilter("ignore")
        from lifetimes.utils import summary_data_from_transaction_data

        return summary_data_from_transaction_data(
            tx, "customer_id", "timestamp", freq="D", freq_multiplier=7, **options
        )


def test_cdnow_39_week_calibration_figures(calibration):
    """Fader, Hardie & Lee (2005), CDNOW sample: 2,357 customers, 2,457 repeat purchases."""
    assert len(calibration) == 2357
    assert calibration["frequency"].sum() == 2457
    assert (calibration["frequency"] == 0).sum() == 1411


def test_cdnow_matches_the_published_summary(calibration, cdnow):
    published = cdnow.summary.loc[calibration.index]
    assert (calibration["frequency"] == published["frequency"]).all()
    for column in ("recency", "T", "monetary_value"):
        np.testing.assert_allclose(calibration[column], published[column], atol=0.005 + 1e-9)


def test_cdnow_equals_lifetimes_row_for_row(calibration, cdnow):
    tx = cdnow.transactions
    theirs = lifetimes_summary(
        tx, observation_period_end=CALIBRATION_END, monetary_value_col="amount"
    )
    theirs = theirs.loc[calibration.index]
    assert (calibration["frequency"].to_numpy() == theirs["frequency"].to_numpy()).all()
    for column in ("recency", "T", "monetary_value"):
        np.testing.assert_allclose(calibration[column], theirs[column], rtol=1e-12)


def test_cdnow_calibration_holdout_matches_lifetimes(cdnow):
    tx = cdnow.transactions
    ours = calibration_holdout(
        tx, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END, unit="week"
    )
    with warnings.catch_warnings():  # lifetimes' own pandas deprecation warnings
        warnings.simplefilter("ignore")
        from lifetimes.utils import calibration_and_holdout_data

        theirs = calibration_and_holdout_data(
            tx, "customer_id", "timestamp", calibration_period_end=CALIBRATION_END,
            observation_period_end=OBSERVATION_END, freq="D", freq_multiplier=7,
            monetary_value_col="amount",
        )  # fmt: skip
    theirs = theirs.loc[ours.index]
    assert (ours["frequency"] == theirs["frequency_cal"]).all()
    assert (ours["frequency_holdout"] == theirs["frequency_holdout"]).all()
    np.testing.assert_allclose(ours["T"], theirs["T_cal"], rtol=1e-12)
    assert ours["duration_holdout"].iloc[0] == theirs["duration_holdout"].iloc[0] == 39.0
    assert ours["frequency_holdout"].sum() == 1882
    assert ours.attrs["n_new_in_holdout"] == 0


def reference_summary(tx, end, grain, unit):
    """A direct, slow pandas statement of the definitions, for comparison."""
    aliases = {"day": "D", "week": "W-SUN", "month": "M", "quarter": "Q", "year": "Y"}
    periods = tx["timestamp"].dt.to_period(aliases[grain])
    end_period = pd.Timestamp(end).to_period(aliases[grain])
    per_grain = tx.groupby([tx["customer_id"], periods])["amount"].sum().reset_index()
    per_grain.columns = ["customer_id", "period", "amount"]
    rows = {}
    for customer, group in per_grain.groupby("customer_id"):
        group = group.sort_values("period")
        first, last = group["period"].iloc[0], group["period"].iloc[-1]
        if grain == unit:
            recency, age = float((last - first).n), float((end_period - first).n)
        else:
            days = TimeUnit(unit).days
            recency = (last.start_time - first.start_time).days / days
            age = (end_period.start_time - first.start_time).days / days
        repeat = group["amount"].iloc[1:]
        rows[customer] = {
            "frequency": len(group) - 1,
            "recency": recency,
            "T": age,
            "monetary_value": repeat.mean() if len(repeat) else 0.0,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


@st.composite
def logs(draw):
    n_rows = draw(st.integers(1, 40))
    customers = draw(st.lists(st.integers(0, 6), min_size=n_rows, max_size=n_rows))
    minutes = draw(st.lists(st.integers(0, 730 * 24 * 60), min_size=n_rows, max_size=n_rows))
    amounts = draw(st.lists(st.floats(-50, 500, allow_nan=False), min_size=n_rows, max_size=n_rows))
    return pd.DataFrame({
        "customer_id": customers,
        "timestamp": pd.Timestamp("2023-01-01") + pd.to_timedelta(minutes, "min"),
        "amount": amounts,
    })  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(tx=logs(), grain=st.sampled_from(GRAINS), unit=st.sampled_from(UNITS))
def test_summary_matches_the_definitions(tx, grain, unit):
    end = "2025-01-05"
    ours = rfm_summary(tx, observation_end=end, unit=unit, grain=grain)
    expected = reference_summary(tx, end, grain, unit).loc[ours.index]
    assert ours.index.is_monotonic_increasing
    assert (ours["frequency"].to_numpy() == expected["frequency"].to_numpy()).all()
    for column in ("recency", "T", "monetary_value"):
        np.testing.assert_allclose(ours[column], expected[column], rtol=1e-9, atol=1e-9)
    assert (ours["recency"] <= ours["T"]).all()
    assert (ours["frequency"] >= 0).all()


@settings(max_examples=25, deadline=None)
@given(tx=logs())
def test_summary_equals_lifetimes_on_random_logs(tx):
    ours = rfm_summary(tx, observation_end="2025-01-05", unit="week")
    theirs = lifetimes_summary(
        tx, observation_period_end="2025-01-05", monetary_value_col="amount"
    ).loc[ours.index]
    assert (ours["frequency"].to_numpy() == theirs["frequency"].to_numpy()).all()
    for column in ("recency", "T", "monetary_value"):
        np.testing.assert_allclose(ours[column], theirs[column], rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(tx=logs(), grain=st.sampled_from(GRAINS))
def test_compress_round_trips(tx, grain):
    summary = rfm_summary(tx, observation_end="2025-01-05", grain=grain)
    patterns, weights, inverse = compress(summary)
    assert weights.sum() == len(summary)
    assert (weights > 0).all()
    assert not patterns.duplicated().any()
    assert patterns.equals(patterns.sort_values(list(patterns.columns)).reset_index(drop=True))
    restored = compress(summary).expand(summary.index)
    pd.testing.assert_frame_equal(restored, summary[["frequency", "recency", "T"]])
    pd.testing.assert_frame_equal(
        patterns.iloc[inverse].reset_index(drop=True),
        summary[["frequency", "recency", "T"]].reset_index(drop=True),
    )


def grouped_reference(summary, columns):
    """compress by a multi-column groupby: the definition the fast coding must reproduce."""
    values = summary.loc[:, list(columns)]
    codes = values.groupby(list(columns), sort=True).ngroup().to_numpy(dtype=np.intp)
    first_rows = pd.Series(np.arange(len(codes))).groupby(codes).min().to_numpy()
    return values.iloc[first_rows].reset_index(drop=True), np.bincount(codes), codes


def assert_same_compression(summary, columns):
    ours = compress(summary, columns)
    patterns, weights, inverse = grouped_reference(summary, columns)
    pd.testing.assert_frame_equal(ours.patterns, patterns)
    np.testing.assert_array_equal(ours.weights, weights)
    np.testing.assert_array_equal(ours.inverse, inverse)
    assert ours.weights.dtype == np.int64
    assert ours.inverse.dtype == np.intp


# whole units, whole days in each unit, and values on no grid at all
GRID_COLUMNS = {
    "weeks": lambda days: days / 7.0,
    "months": lambda days: days / TimeUnit.MONTH.days,
    "years": lambda days: days / TimeUnit.YEAR.days,
    "whole": lambda days: days.astype(np.float64),
    "negative": lambda days: (days - 50) / 7.0,
    "off_grid": lambda days: days / 7.0 + 1e-3 * np.sqrt(days),
}


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1), n_rows=st.integers(1, 400), span=st.integers(1, 900),
    kinds=st.lists(st.sampled_from(sorted(GRID_COLUMNS)), min_size=1, max_size=3),
)  # fmt: skip
def test_compress_codes_like_a_multi_column_groupby(seed, n_rows, span, kinds):
    rng = np.random.default_rng(seed)
    summary = pd.DataFrame({"frequency": rng.integers(0, 6, n_rows)})
    for i, kind in enumerate(kinds):
        summary[f"c{i}"] = GRID_COLUMNS[kind](rng.integers(0, span, n_rows))
    columns = ("frequency", *(f"c{i}" for i in range(len(kinds))))
    assert_same_compression(summary, columns)
    assert_same_compression(summary, columns[1:])


def test_compress_of_wide_ranges_and_other_dtypes():
    rng = np.random.default_rng(3)
    n_rows = 5_000
    summary = pd.DataFrame({
        # 10^6 x 10^6 x ... possible keys: merged by hashing instead of a table
        "a": rng.integers(0, 1_000_000, n_rows) * 1_000,
        "b": rng.integers(-3, 3, n_rows) * 2**40,  # integers spread wider than a table
        "c": rng.random(n_rows).round(2),  # hundredths: on no grid of compress
        "d": rng.integers(0, 3, n_rows).astype(np.float32),
        "e": pd.array(rng.integers(0, 4, n_rows), dtype="Int64"),
        "f": rng.integers(0, 2, n_rows).astype(bool),
    })  # fmt: skip
    for columns in [("a", "b", "c"), ("c", "d"), ("e", "f", "d"), ("b",), ("a", "c")]:
        assert_same_compression(summary, columns)


def test_compress_counts_rows_with_missing_values():
    summary = pd.DataFrame({
        "frequency": [0, 1, 2, 3], "recency": [0.0, np.nan, 1.0, np.nan],
        "T": [2.0, 3.0, np.inf, np.nan],
    })  # fmt: skip
    with pytest.raises(DataQualityError, match=r"2 of 4 summary rows have missing values"):
        compress(summary)
    with pytest.raises(DataQualityError, match="no rows"):
        compress(summary.iloc[:0])
    # an infinity is a value like any other
    assert compress(summary.iloc[[0, 2]]).patterns["T"].tolist() == [2.0, np.inf]


def test_compress_cdnow(calibration):
    compressed = compress(calibration)
    assert compressed.weights.sum() == 2357
    assert len(compressed.patterns) < 2357


def test_same_grain_purchases_merge_and_amounts_add():
    tx = pd.DataFrame({
        "customer_id": [1, 1, 1, 1],
        "timestamp": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 18:00", "2024-01-08 00:00",
                                     "2024-01-08 12:00"]),
        "amount": [10.0, 5.0, 20.0, 4.0],
    })  # fmt: skip
    summary = rfm_summary(tx, observation_end="2024-01-15", unit="day")
    assert summary.loc[1].to_dict() == {
        "frequency": 1, "recency": 7.0, "T": 14.0, "monetary_value": 24.0
    }  # fmt: skip


def test_weeks_start_on_monday():
    sunday, monday = pd.Timestamp("2024-01-07"), pd.Timestamp("2024-01-08")
    tx = pd.DataFrame({
        "customer_id": [1, 1, 2, 2],
        "timestamp": [sunday, monday, monday, monday + pd.Timedelta(days=6)],
        "amount": 1.0,
    })  # fmt: skip
    summary = rfm_summary(tx, observation_end="2024-01-29", unit="week", grain="week")
    assert summary["frequency"].tolist() == [1, 0]
    assert summary.loc[1, "recency"] == 1.0
    assert summary.loc[2, "T"] == 3.0


def test_monthly_grain_and_unit_count_whole_months():
    tx = pd.DataFrame({
        "customer_id": [1, 1, 1],
        "timestamp": pd.to_datetime(["2024-01-31", "2024-02-01", "2024-05-15"]),
        "amount": 1.0,
    })  # fmt: skip
    summary = rfm_summary(tx, observation_end="2024-12-31", unit="month", grain="month")
    assert summary.loc[1, ["frequency", "recency", "T"]].tolist() == [2, 4.0, 11.0]
    in_days = rfm_summary(tx, observation_end="2024-12-31", unit="day", grain="month")
    assert (
        in_days.loc[1, "recency"] == (pd.Timestamp("2024-05-01") - pd.Timestamp("2024-01-01")).days
    )


def test_exact_month_unit_with_day_grain():
    tx = pd.DataFrame({"customer_id": [1], "timestamp": pd.to_datetime(["2024-01-01"]),
                       "amount": [1.0]})  # fmt: skip
    summary = rfm_summary(tx, observation_end="2025-01-01", unit="month")
    assert summary.loc[1, "T"] == pytest.approx(366 / (365.2425 / 12), rel=1e-15)


def test_time_zone_aware_timestamps_use_their_own_calendar_day():
    stamps = pd.to_datetime(["2024-01-01 23:30", "2024-01-02 00:30"]).tz_localize("Europe/Berlin")
    tx = pd.DataFrame({"customer_id": [1, 1], "timestamp": stamps, "amount": 1.0})
    summary = rfm_summary(tx, observation_end="2024-01-03", unit="day")
    assert summary.loc[1, ["frequency", "recency", "T"]].tolist() == [1, 1.0, 2.0]


def test_default_observation_end_is_the_last_purchase_day():
    tx = pd.DataFrame({"customer_id": [1, 2], "timestamp": pd.to_datetime(["2024-01-01 00:00",
                       "2024-01-15 10:00"]), "amount": 1.0})  # fmt: skip
    assert rfm_summary(tx, unit="day")["T"].tolist() == [14.0, 0.0]


def test_summary_without_amounts_and_with_mapped_columns():
    tx = pd.DataFrame({"client": ["b", "a"], "paid": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    summary = rfm_summary(tx, unit="day", columns=Columns(customer_id="client", timestamp="paid"))
    assert list(summary.columns) == ["frequency", "recency", "T"]
    assert summary.index.tolist() == ["a", "b"]
    assert summary.index.name == "client"


def test_input_is_not_mutated(cdnow):
    tx = cdnow.transactions.copy()
    rfm_summary(tx, observation_end=OBSERVATION_END)
    pd.testing.assert_frame_equal(tx, cdnow.transactions)


def test_purchases_after_the_observation_end_are_an_error(cdnow):
    with pytest.raises(DataQualityError, match=r"1,959 of 6,919 rows after observation_end"):
        rfm_summary(cdnow.transactions, observation_end=CALIBRATION_END)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"customer_id": [1, None]}, DataQualityError, r"'customer_id' has missing customer ids"),
        ({"timestamp": pd.to_datetime(["2024-01-01", None])}, DataQualityError, "missing times"),
        ({"timestamp": ["2024-01-01", "2024-01-02"]}, SchemaError, "validate_transactions"),
        ({"amount": [1.0, np.nan]}, DataQualityError, "non-numeric amounts in 1 of 2 rows"),
    ],
)
def test_unclean_input_is_refused(change, error, message):
    tx = pd.DataFrame({
        "customer_id": [1, 2], "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02"]),
        "amount": [1.0, 2.0],
    }).assign(**change)  # fmt: skip
    with pytest.raises(error, match=message):
        rfm_summary(tx)


def test_shape_errors():
    with pytest.raises(SchemaError, match="must be a pandas DataFrame"):
        rfm_summary([1, 2])
    with pytest.raises(SchemaError, match=r"\['customer_id'\] not found.*\['id', 'timestamp'\]"):
        rfm_summary(pd.DataFrame({"id": [1], "timestamp": pd.to_datetime(["2024-01-01"])}))
    empty = pd.DataFrame({"customer_id": [], "timestamp": pd.to_datetime([])})
    with pytest.raises(DataQualityError, match="no purchases"):
        rfm_summary(empty)
    with pytest.raises(SchemaError, match="not a date"):
        rfm_summary(pd.DataFrame({"customer_id": [1], "timestamp": pd.to_datetime(["2024-01-01"])}),
                    observation_end="someday")  # fmt: skip
    with pytest.raises(SchemaError, match="unknown time unit"):
        rfm_summary(pd.DataFrame({"customer_id": [1], "timestamp": pd.to_datetime(["2024-01-01"])}),
                    unit="fortnight")  # fmt: skip
    with pytest.raises(SchemaError, match=r"\['T'\] not found"):
        compress(pd.DataFrame({"frequency": [1], "recency": [1.0]}))


def test_calibration_end_must_precede_observation_end(cdnow):
    with pytest.raises(SchemaError, match="must be before observation_end"):
        calibration_holdout(cdnow.transactions, calibration_end=OBSERVATION_END,
                            observation_end=CALIBRATION_END)  # fmt: skip


def test_holdout_newcomers_are_counted_not_hidden():
    tx = pd.DataFrame({
        "customer_id": [1, 1, 2, 3],
        "timestamp": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-20", "2024-03-02"]),
        "amount": [1.0, 2.0, 3.0, 4.0],
    })  # fmt: skip
    result = calibration_holdout(tx, calibration_end="2024-01-31", observation_end="2024-03-31",
                                 unit="day")  # fmt: skip
    assert result.index.tolist() == [1]
    assert result.attrs["n_new_in_holdout"] == 2
    holdout = ["frequency_holdout", "monetary_value_holdout", "duration_holdout"]
    assert result.loc[1, holdout].tolist() == [1, 2.0, 60.0]


def test_returns_are_not_purchases():
    tx = pd.DataFrame({
        "customer_id": [1, 1, 1, 2],
        "timestamp": pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-02"]),
        "amount": [10.0, 30.0, -30.0, 5.0],
        "is_return": [False, False, True, False],
    })  # fmt: skip
    summary = rfm_summary(tx, observation_end="2024-01-29", unit="day")
    assert summary.loc[1, ["frequency", "recency", "monetary_value"]].tolist() == [1, 7.0, 30.0]
    ignoring = rfm_summary(tx, observation_end="2024-01-29", unit="day", columns=Columns())
    assert ignoring.loc[1, "frequency"] == 2
    with pytest.raises(SchemaError, match="true/false without gaps"):
        rfm_summary(tx.assign(is_return=["no", "no", "yes", "no"]))


def test_n_periods_is_the_whole_periods_of_a_summary_merged_per_period() -> None:
    data = load_cdnow()
    weekly = rfm_summary(data.transactions, observation_end="1998-06-30", unit="week",
                                grain="week")  # fmt: skip
    added = add_summary_columns(weekly, data.transactions, ["n_periods"])
    np.testing.assert_array_equal(added["n_periods"], weekly["T"])
    assert (added["recency"] <= added["n_periods"]).all()
    model = BetaGeoBetaBinom().fit(added)  # the BG/BB reads it as it is
    assert model.n_customers_ == len(weekly)
    daily = rfm_summary(data.transactions, observation_end="1998-06-30", unit="week")
    with pytest.raises(SchemaError, match="grain equal to the unit"):
        add_summary_columns(daily, data.transactions, ["n_periods"])
