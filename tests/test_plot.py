"""cvalue.plot: each plot returns the Axes it drew on, with the model's own numbers, no pyplot."""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import cvalue as cv
import cvalue.plot as cvplot
from cvalue.datasets import load_cdnow, load_donations, make_crm
from cvalue.errors import DataQualityError, SchemaError
from cvalue.report.plots import plot_tracking

CALIBRATION_END, OBSERVATION_END = "1997-09-30", "1998-06-30"  # 1998-06-30 is a Tuesday


@pytest.fixture(autouse=True)
def no_pyplot_figure() -> Iterator[None]:
    assert plt.get_fignums() == []
    yield
    assert plt.get_fignums() == [], "a plot made a pyplot figure (global state)"


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return load_cdnow().transactions


@pytest.fixture(scope="module")
def split(cdnow: pd.DataFrame) -> pd.DataFrame:
    return cv.calibration_holdout(
        cdnow, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END
    )


@pytest.fixture(scope="module")
def model(split: pd.DataFrame) -> cv.BetaGeo:
    return cv.BetaGeo().fit(split)


@pytest.fixture(scope="module")
def published() -> cv.BetaGeo:
    return cv.BetaGeo.from_params(0.243, 4.414, 0.793, 2.426, unit="week")


def own_axes() -> Axes:
    return Figure().add_subplot()


def history(x: int, t_x: float, age: float) -> pd.DataFrame:
    return pd.DataFrame({"frequency": [x], "recency": [t_x], "T": [age]})


def test_frequency_recency_matrix_cells_are_the_models_expectation(
    published: cv.BetaGeo,
) -> None:
    ax = cvplot.frequency_recency_matrix(published, horizon=52.0, max_frequency=10, T=38.0)
    assert isinstance(ax, Axes)
    assert len(ax.images) == 1
    matrix = np.ma.filled(ax.images[0].get_array(), np.nan)
    assert matrix.shape == (11, 39)  # frequency 0..10, recency 0..38 weeks
    assert np.isnan(matrix[0, 1:]).all()
    assert np.isnan(matrix[1:, 0]).all()
    for x, t_x in ((0, 0), (3, 20), (10, 38), (1, 5)):
        expected = published.expected_purchases(history(x, t_x, 38.0), horizon=52.0).iloc[0]
        assert matrix[x, t_x] == pytest.approx(expected, rel=1e-12)
    assert ax.get_xlabel().startswith("recency")
    assert ax.get_ylabel().startswith("frequency")
    assert "Expected purchases" in ax.get_title()


def test_probability_alive_matrix_on_a_given_axes(published: cv.BetaGeo) -> None:
    ax = own_axes()
    assert cvplot.probability_alive_matrix(published, max_recency=20, T=30.0, ax=ax) is ax
    matrix = np.ma.filled(ax.images[0].get_array(), np.nan)
    assert matrix.shape == (31, 21)  # max_frequency defaults to T
    assert matrix[4, 12] == pytest.approx(published.p_alive(history(4, 12, 30.0)).iloc[0])
    assert np.nanmin(matrix) >= 0.0
    assert np.nanmax(matrix) <= 1.0
    assert ax.get_title() == "Probability alive by frequency and recency"


def test_matrices_refuse_what_they_cannot_lay_out(published: cv.BetaGeo) -> None:
    with pytest.raises(SchemaError, match="pass T"):
        cvplot.probability_alive_matrix(published)
    bgbb = cv.BetaGeoBetaBinom.from_params(1.2, 0.75, 0.66, 2.78)
    ax = cvplot.probability_alive_matrix(bgbb, max_frequency=6, T=6.0)  # n_periods is the age
    matrix = np.ma.filled(ax.images[0].get_array(), np.nan)
    data = pd.DataFrame({"frequency": [3], "recency": [5.0], "n_periods": [6.0]})
    assert matrix[3, 5] == pytest.approx(bgbb.p_alive(data).iloc[0])
    assert np.isnan(matrix[4, 3])  # four purchases in three opportunities: no history


@pytest.fixture(scope="module")
def donations() -> pd.DataFrame:
    return load_donations()


@pytest.fixture(scope="module")
def bgbb(donations: pd.DataFrame) -> cv.BetaGeoBetaBinom:
    return cv.BetaGeoBetaBinom().fit(donations)


def test_matrices_of_the_bg_bb_on_the_donations(
    bgbb: cv.BetaGeoBetaBinom, donations: pd.DataFrame
) -> None:
    ax = cvplot.frequency_recency_matrix(bgbb, horizon=5, max_frequency=6, T=6.0)
    matrix = np.ma.filled(ax.images[0].get_array(), np.nan)
    assert matrix.shape == (7, 7)  # frequency and recency 0..6 opportunities
    histories = donations[["frequency", "recency", "n_periods"]]
    expected = bgbb.expected_purchases(histories, horizon=5)
    cells = matrix[donations["frequency"], donations["recency"]]
    assert cells == pytest.approx(expected.to_numpy(), rel=1e-12)
    # every possible history of six opportunities is a cell, and nothing else
    n_cells = int(np.isfinite(matrix).sum())
    assert n_cells == 1 + sum(t_x for t_x in range(1, 7)) == len(donations)
    assert "next 5 opportunities" in ax.get_title()
    alive = cvplot.probability_alive_matrix(bgbb, max_frequency=6, T=6.0)
    cells = np.ma.filled(alive.images[0].get_array(), np.nan)
    assert cells[donations["frequency"], donations["recency"]] == pytest.approx(
        bgbb.p_alive(histories).to_numpy(), rel=1e-12
    )
    with pytest.raises(SchemaError, match="whole number"):
        cvplot.frequency_recency_matrix(bgbb, horizon=2.5, T=6.0)


@pytest.fixture(scope="module")
def weekly_bgbb(cdnow: pd.DataFrame) -> cv.BetaGeoBetaBinom:
    summary = cv.rfm_summary(cdnow, observation_end=OBSERVATION_END, unit="week", grain="week")
    summary = summary[summary["T"] > 0].rename(columns={"T": "n_periods"})
    return cv.BetaGeoBetaBinom().fit(summary)


def test_customer_history_of_the_bg_bb_in_whole_opportunities(
    weekly_bgbb: cv.BetaGeoBetaBinom, cdnow: pd.DataFrame
) -> None:
    customer = 1
    own = cdnow[cdnow["customer_id"] == customer]
    history = cvplot.customer_history(weekly_bgbb, cdnow, customer, observation_end=OBSERVATION_END)
    assert list(history.columns) == ["frequency", "recency", "n_periods"]
    assert list(history["n_periods"]) == list(range(1, len(history) + 1))
    # each row is the summary of whole weeks that rfm_summary gives at the row's date
    for end, row in history.iterrows():
        summary = cv.rfm_summary(own[own["timestamp"] <= end], observation_end=end,
                                 unit="week", grain="week")  # fmt: skip
        found = summary[["frequency", "recency", "T"]].iloc[0].to_list()
        assert found == row.to_list(), end
    # 1998-06-30 is a Tuesday: the last week is partial, counted as an opportunity (as the
    # summary counts it) and dated at the observation end
    assert history.index[-1] == pd.Timestamp(OBSERVATION_END)
    assert history.index[-2] == pd.Timestamp("1998-06-28")
    ax = cvplot.probability_alive_history(
        weekly_bgbb, cdnow, customer, observation_end=OBSERVATION_END
    )
    alive, purchases = ax.get_lines()
    assert list(alive.get_ydata()) == pytest.approx(list(weekly_bgbb.p_alive(history)), rel=1e-12)
    assert alive.get_drawstyle() == "steps-post"  # known at the end of each week
    assert len(purchases.get_xdata()) == history["frequency"].iloc[-1]


def test_probability_alive_history_ends_at_the_models_p_alive(
    model: cv.BetaGeo, cdnow: pd.DataFrame
) -> None:
    customer = 1
    ax = cvplot.probability_alive_history(model, cdnow, customer, observation_end=OBSERVATION_END)
    alive, purchases = ax.get_lines()
    own = cdnow[cdnow["customer_id"] == customer]
    summary = cv.rfm_summary(own, observation_end=OBSERVATION_END, unit="week")
    assert alive.get_ydata()[-1] == pytest.approx(model.p_alive(summary).iloc[0], rel=1e-12)
    days = pd.to_datetime(alive.get_xdata())
    first = own["timestamp"].min()
    assert days[0] == first + pd.Timedelta(days=1)
    assert days[-1] == pd.Timestamp(OBSERVATION_END)
    assert len(purchases.get_xdata()) == own["timestamp"].dt.normalize().nunique() - 1
    # on each day, the summary rfm_summary gives on that day
    middle = pd.Timestamp("1997-12-31")
    at_middle = cv.rfm_summary(own, observation_end=middle, unit="week")
    assert alive.get_ydata()[days.get_loc(middle)] == pytest.approx(
        model.p_alive(at_middle).iloc[0], rel=1e-12
    )
    with pytest.raises(DataQualityError, match="no purchase"):
        cvplot.probability_alive_history(model, cdnow, -5)


def test_period_transactions_bars_are_the_frequency_fit(
    model: cv.BetaGeo, split: pd.DataFrame
) -> None:
    ax = own_axes()
    assert cvplot.period_transactions(model, split, ax=ax) is ax
    table = cvplot.frequency_fit_table(model, split)
    actual, expected = ax.containers
    assert [bar.get_height() for bar in actual] == list(table["observed"])
    assert [bar.get_height() for bar in expected] == pytest.approx(list(table["expected"]))
    assert [label.get_text() for label in ax.get_xticklabels()][-1] == "7+"
    assert ax.get_ylabel() == "customers"


def pmf_variance(model: cv.BetaGeo | cv.BetaGeoBetaBinom, summary: pd.DataFrame) -> np.ndarray:
    """Var of each frequency bin's customer count: sum_i p_ix (1 - p_ix), bins as the table's."""
    weights = summary["weight"] if "weight" in summary else pd.Series(1.0, summary.index)
    variance = np.zeros(8)
    for age, weight in weights.groupby(summary[model.age_column]).sum().items():
        head = model.purchase_pmf(np.arange(7), horizon=float(age))
        probabilities = np.append(head, 1.0 - head.sum())
        variance += weight * probabilities * (1.0 - probabilities)
    return variance


@pytest.mark.parametrize("data", ["cdnow", "donations"])
def test_period_transactions_simulated_bars_agree_with_the_pmf(
    data: str, model: cv.BetaGeo, split: pd.DataFrame
) -> None:
    if data == "cdnow":
        fitted, summary = model, split
    else:
        summary = load_donations()
        fitted = cv.BetaGeoBetaBinom().fit(summary)
    ax = cvplot.period_transactions(fitted, summary, rng=np.random.default_rng(5))
    actual, expected, simulated = ax.containers
    drawn = np.array([bar.get_height() for bar in simulated])
    means = np.array([bar.get_height() for bar in expected])
    n_customers = summary["weight"].sum() if "weight" in summary else len(summary)
    assert drawn.sum() == n_customers
    # each bin counts independent Bernoulli(p_ix) customers: mean sum_i p_ix, variance
    # sum_i p_ix (1 - p_ix); 5 standard deviations leave a 6e-7 chance per bin (normal limit)
    bound = 5.0 * np.sqrt(pmf_variance(fitted, summary))
    assert np.all(np.abs(drawn - means) <= bound + 1e-9)
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [
        "actual",
        "model",
        "simulated",
    ]
    assert [bar.get_height() for bar in actual] == list(
        cvplot.frequency_fit_table(fitted, summary)["observed"]
    )


def test_period_transactions_simulates_each_customers_own_age(
    model: cv.BetaGeo, split: pd.DataFrame
) -> None:
    table = cvplot.frequency_fit_table(model, split, rng=np.random.default_rng(11))
    rng = np.random.default_rng(11)
    counts = np.zeros(8)
    for age, customers in split.groupby("T").size().items():
        drawn = model.simulate(int(customers), float(age), rng=rng)["frequency"].to_numpy()
        assert (drawn >= 0).all()
        counts += np.bincount(np.minimum(drawn, 7), minlength=8)
    assert list(table["simulated"]) == list(counts)
    assert "simulated" not in cvplot.frequency_fit_table(model, split)


def test_calibration_holdout_purchases(model: cv.BetaGeo, split: pd.DataFrame) -> None:
    ax = cvplot.calibration_holdout_purchases(model, split, max_frequency=5)
    actual, predicted = ax.get_lines()
    zero = split[split["frequency"] == 0]
    assert actual.get_ydata()[0] == pytest.approx(zero["frequency_holdout"].mean())
    assert predicted.get_ydata()[0] == pytest.approx(
        model.expected_purchases(zero, horizon=39.0).mean()
    )
    assert len(actual.get_xdata()) == 6
    assert ax.get_title() == "Calibration against holdout"


def test_the_calibration_plot_from_its_table_and_from_given_predictions(
    model: cv.BetaGeo, split: pd.DataFrame
) -> None:
    """A job's check scores the split in blocks and keeps the table: the same plot and numbers."""
    table = cvplot.calibration_holdout_table(model, split)
    predicted = model.expected_purchases(split, horizon=39.0).to_numpy() * 2.0
    doubled = cvplot.calibration_holdout_table(model, split, predicted=predicted)
    np.testing.assert_allclose(doubled["predicted"], table["predicted"] * 2.0, rtol=1e-12)
    pd.testing.assert_series_equal(doubled["actual"], table["actual"])
    with pytest.raises(SchemaError, match="one value per row"):
        cvplot.calibration_holdout_table(model, split, predicted=predicted[1:])
    drawn = cvplot.calibration_holdout_lines(table).get_lines()
    again = cvplot.calibration_holdout_purchases(model, split).get_lines()
    for found, expected in zip(drawn, again, strict=True):
        assert found.get_label() == expected.get_label()
        np.testing.assert_array_equal(found.get_ydata(), expected.get_ydata())


def test_the_frequency_fit_of_a_large_pattern_table_holds_no_copy_of_its_rows(
    model: cv.BetaGeo,
) -> None:
    """A chunked run's table has millions of patterns: the table is built from sums per
    distinct frequency and age, not from sorted or converted copies of its columns."""
    rng = np.random.default_rng(0)
    n_rows = 400_000
    patterns = pd.DataFrame({
        "frequency": rng.integers(0, 30, n_rows).astype(np.float64),
        "T": rng.integers(1, 700, n_rows) / 7.0,
        "weight": rng.integers(1, 5, n_rows).astype(np.float64),
    })  # fmt: skip
    tracemalloc.start()
    try:
        table = cvplot.frequency_fit_table(model, patterns)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 8 * n_rows  # the weights checked (a copy), and no other column
    assert table["observed"].sum() == patterns["weight"].sum()


# --- pattern tables: rows weighted by their customers -----------------------------------------

SPLIT_COLUMNS = ["frequency", "recency", "T", "frequency_holdout", "duration_holdout"]


def as_patterns(split: pd.DataFrame) -> pd.DataFrame:
    """The split grouped into patterns, as a database returns it: a weight column per row."""
    return split.groupby(SPLIT_COLUMNS).size().rename("weight").reset_index()


def repeated(patterns: pd.DataFrame) -> pd.DataFrame:
    """One row per customer of a pattern table, the weight column dropped."""
    rows = np.repeat(np.arange(len(patterns)), patterns["weight"].to_numpy(dtype=np.int64))
    return patterns.drop(columns="weight").iloc[rows].reset_index(drop=True)


def test_the_fit_plots_of_a_pattern_split_are_those_of_its_customers(
    model: cv.BetaGeo, split: pd.DataFrame
) -> None:
    patterns = as_patterns(split)
    assert len(patterns) < len(split) // 2
    pd.testing.assert_frame_equal(
        cvplot.frequency_fit_table(model, patterns, rng=np.random.default_rng(3)),
        cvplot.frequency_fit_table(model, split, rng=np.random.default_rng(3)),
        check_exact=True,
    )
    bars = [
        [[bar.get_height() for bar in bars] for bars in ax.containers]
        for ax in (
            cvplot.period_transactions(model, data, rng=np.random.default_rng(3))
            for data in (patterns, split)
        )
    ]
    assert bars[0] == bars[1]
    pd.testing.assert_frame_equal(
        cvplot.calibration_holdout_table(model, patterns),
        cvplot.calibration_holdout_table(model, split),
        check_exact=False,
        rtol=1e-12,
    )
    lines = [
        [line.get_ydata() for line in cvplot.calibration_holdout_purchases(model, data).get_lines()]
        for data in (patterns, split)
    ]
    for found, expected in zip(*lines, strict=True):
        np.testing.assert_allclose(found, expected, rtol=1e-12)


@st.composite
def pattern_splits(draw: st.DrawFn) -> pd.DataFrame:
    """Small valid splits of whole weights (some 0), few distinct ages: ties in every column."""
    n_rows = draw(st.integers(1, 12))
    frequency = np.array(draw(st.lists(st.integers(0, 9), min_size=n_rows, max_size=n_rows)))
    ages = np.array(
        draw(st.lists(st.sampled_from([4.0, 10.5, 30.0]), min_size=n_rows, max_size=n_rows))
    )
    share = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n_rows, max_size=n_rows)))
    weights = np.array(draw(st.lists(st.integers(0, 40), min_size=n_rows, max_size=n_rows)))
    weights[draw(st.integers(0, n_rows - 1))] += 1  # at least one customer
    return pd.DataFrame(
        {
            "frequency": frequency,
            "recency": np.where(frequency > 0, share * ages, 0.0),
            "T": ages,
            "frequency_holdout": draw(
                st.lists(st.integers(0, 6), min_size=n_rows, max_size=n_rows)
            ),
            "duration_holdout": draw(
                st.lists(st.sampled_from([13.0, 39.0]), min_size=n_rows, max_size=n_rows)
            ),
            "weight": weights,
        }
    )


@given(pattern_splits(), st.integers(1, 8))
@settings(max_examples=40, database=None)
def test_weighted_fit_tables_equal_the_rows_repeated(
    published: cv.BetaGeo, patterns: pd.DataFrame, max_frequency: int
) -> None:
    expanded = repeated(patterns)
    seed = int(patterns["weight"].sum())
    pd.testing.assert_frame_equal(
        cvplot.frequency_fit_table(
            published, patterns, max_frequency=max_frequency, rng=np.random.default_rng(seed)
        ),
        cvplot.frequency_fit_table(
            published, expanded, max_frequency=max_frequency, rng=np.random.default_rng(seed)
        ),
        check_exact=True,
    )
    pd.testing.assert_frame_equal(
        cvplot.calibration_holdout_table(published, patterns, max_frequency=max_frequency),
        cvplot.calibration_holdout_table(published, expanded, max_frequency=max_frequency),
        check_exact=False,
        rtol=1e-12,
        atol=1e-12,
    )


def test_fractional_weights_draw_the_weights_total_in_whole_customers(
    published: cv.BetaGeo,
) -> None:
    # ages' weights 0.6, 0.6, 0.8 (total 2): one customer at the largest remainder, 0.8, and
    # one at the first of the tied 0.6; none at the other
    summary = pd.DataFrame(
        {
            "frequency": [0, 1, 2],
            "recency": [0.0, 1.0, 5.0],
            "T": [3.0, 8.0, 20.0],
            "weight": [0.6, 0.6, 0.8],
        }
    )
    table = cvplot.frequency_fit_table(published, summary, rng=np.random.default_rng(8))
    rng = np.random.default_rng(8)
    counts = np.zeros(8)
    for age in (3.0, 20.0):
        drawn = published.simulate(1, age, rng=rng)["frequency"].to_numpy()
        counts += np.bincount(np.minimum(drawn, 7), minlength=8)
    assert list(table["simulated"]) == list(counts)
    assert list(table["observed"]) == pytest.approx([0.6, 0.6, 0.8, 0, 0, 0, 0, 0])
    assert table["expected"].sum() == pytest.approx(2.0, rel=1e-12)


def test_fractional_weights_weigh_the_holdout_means(published: cv.BetaGeo) -> None:
    # frequency 0: half a customer who bought twice and 1.5 who bought nothing, mean 1 / 2
    split = pd.DataFrame(
        {
            "frequency": [0, 0, 3],
            "recency": [0.0, 0.0, 5.0],
            "T": [8.0, 20.0, 20.0],
            "frequency_holdout": [2, 0, 1],
            "duration_holdout": 39.0,
            "weight": [0.5, 1.5, 0.25],
        }
    )
    table = cvplot.calibration_holdout_table(published, split, max_frequency=2)
    predicted = published.expected_purchases(split, horizon=39.0).to_numpy()
    assert table.index.tolist() == ["0", "2+"]
    assert table["customers"].tolist() == [2.0, 0.25]
    assert table["actual"].tolist() == [0.5, 1.0]
    assert table["predicted"].tolist() == pytest.approx(
        [(0.5 * predicted[0] + 1.5 * predicted[1]) / 2.0, predicted[2]], rel=1e-12
    )


@given(pattern_splits(), st.sampled_from([0.3, 0.5, 2.7]))
@settings(max_examples=30, database=None)
def test_scaled_weights_draw_as_many_customers_as_they_sum_to(
    published: cv.BetaGeo, patterns: pd.DataFrame, scale: float
) -> None:
    scaled = patterns.assign(weight=patterns["weight"] * scale)
    table = cvplot.frequency_fit_table(published, scaled, rng=np.random.default_rng(2))
    total = float(scaled["weight"].sum())
    assert table["simulated"].sum() == np.rint(total)
    assert table["observed"].sum() == pytest.approx(total, rel=1e-12)
    assert table["expected"].sum() == pytest.approx(total, rel=1e-12)
    # means are unchanged by a common scale; frequencies whose weights are 0 have no row
    found = cvplot.calibration_holdout_table(published, scaled)
    whole = cvplot.calibration_holdout_table(published, patterns)
    pd.testing.assert_frame_equal(
        found.drop(columns="customers"), whole.drop(columns="customers"), rtol=1e-12
    )
    np.testing.assert_allclose(found["customers"], whole["customers"] * scale, rtol=1e-12)


@pytest.mark.parametrize("table", ["frequency_fit_table", "calibration_holdout_table"])
def test_fit_tables_refuse_bad_weights_with_their_count(published: cv.BetaGeo, table: str) -> None:
    patterns = pd.DataFrame(
        {
            "frequency": [0, 1, 2, 3],
            "recency": [0.0, 1.0, 2.0, 3.0],
            "T": [5.0] * 4,
            "frequency_holdout": [0, 1, 0, 2],
            "duration_holdout": [39.0] * 4,
            "weight": [1.0, -2.0, np.nan, 3.0],
        },
        index=["a", "b", "c", "d"],
    )
    make = getattr(cvplot, table)
    with pytest.raises(
        DataQualityError,
        match=r"'weight' is negative, missing or infinite in "
        r"2 of 4 rows \(e\.g\. row 'b': -2\.0\)",
    ):
        make(published, patterns)
    nullable = patterns.assign(weight=pd.array([1, 2, None, 3], dtype="Int64"))
    with pytest.raises(DataQualityError, match=r"1 of 4 rows \(e\.g\. row 'c': nan\)"):
        make(published, nullable)
    with pytest.raises(SchemaError, match="'weight' column must be numbers"):
        make(published, patterns.assign(weight=["1", "2", "x", "3"]))


def test_tracking_cumulative_ends_at_the_totals(model: cv.BetaGeo, cdnow: pd.DataFrame) -> None:
    ax = cvplot.tracking(
        model, cdnow, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END
    )
    actual, _expected = ax.get_lines()[:2]
    total = cv.rfm_summary(cdnow, observation_end=OBSERVATION_END, unit="week")
    assert actual.get_ydata()[-1] == total["frequency"].sum()
    assert pd.to_datetime(actual.get_xdata())[-1] == pd.Timestamp(OBSERVATION_END)
    assert len(ax.get_lines()) == 3  # actual, model, the calibration end


def test_tracking_per_period_leaves_out_the_partial_last_week(
    model: cv.BetaGeo, cdnow: pd.DataFrame
) -> None:
    # regression: 1998-06-30 is a Tuesday, so the last "week" held two days and the per-week
    # line ended in a false drop to about 2/7 of a week's purchases
    table = cvplot.tracking_table(
        model, cdnow, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END
    )
    assert table.index[-1] == pd.Timestamp(OBSERVATION_END)
    assert table["days"].iloc[-1] == 2
    assert bool(table["is_partial"].iloc[-1])
    assert not table["is_partial"].iloc[1:-1].any()
    ax = cvplot.tracking(
        model, cdnow, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END,
        cumulative=False,
    )  # fmt: skip
    actual, expected = ax.get_lines()[:2]
    days = pd.to_datetime(actual.get_xdata())
    assert days[-1] == pd.Timestamp("1998-06-28")  # the last whole week, ending on Sunday
    whole = table[~table["is_partial"]]
    assert list(actual.get_ydata()) == list(whole["actual"])
    assert list(expected.get_ydata()) == pytest.approx(list(whole["expected"]))
    # the report's figure draws the same per-week line
    figure = plot_tracking(
        model, cdnow, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END
    )
    per_week = figure.axes[1].get_lines()[0]
    assert pd.to_datetime(per_week.get_xdata())[-1] == pd.Timestamp("1998-06-28")


def test_tracking_of_the_bg_bb_counts_whole_opportunities(
    weekly_bgbb: cv.BetaGeoBetaBinom, cdnow: pd.DataFrame
) -> None:
    # regression: a discrete-time model was asked for E[X] at ages of a seventh of a week
    table = cvplot.tracking_table(
        weekly_bgbb, cdnow, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END
    )
    born = cdnow.groupby("customer_id")["timestamp"].min()
    cohort = born.index[born <= pd.Timestamp(CALIBRATION_END)]
    # at the end of every whole week: the weekly summaries' purchases, and sum_i E[X(n_i)]
    for end in ("1997-09-28", "1998-01-04", "1998-06-28"):
        seen = cdnow[cdnow["timestamp"] <= end]
        summary = cv.rfm_summary(seen, observation_end=end, unit="week", grain="week")
        summary = summary.loc[cohort]
        assert table.loc[end, "actual_cumulative"] == summary["frequency"].sum()
        expected = sum(weekly_bgbb.expected_purchases_new(horizon=n) for n in summary["T"])
        assert table.loc[end, "expected_cumulative"] == pytest.approx(expected, rel=1e-9)
    # the last week, cut after two of its seven days, expects two sevenths of a whole one
    last, whole = table.iloc[-1], table.loc["1998-06-28"]
    assert last["days"] == 2
    assert bool(last["is_partial"])
    seen = cv.rfm_summary(cdnow, observation_end=OBSERVATION_END, unit="week", grain="week")
    full_week = sum(weekly_bgbb.expected_purchases_new(horizon=n) for n in seen.loc[cohort, "T"])
    assert last["expected_cumulative"] == pytest.approx(
        whole["expected_cumulative"] + 2 / 7 * (full_week - whole["expected_cumulative"]),
        rel=1e-9,
    )
    ax = cvplot.tracking(
        weekly_bgbb, cdnow, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END,
        cumulative=False,
    )  # fmt: skip
    assert pd.to_datetime(ax.get_lines()[0].get_xdata())[-1] == pd.Timestamp("1998-06-28")


@pytest.fixture(scope="module")
def crm() -> cv.datasets.SyntheticCRM:
    return make_crm(300, seed=3)


def test_whale_curve(crm: cv.datasets.SyntheticCRM) -> None:
    profit = pd.Series(np.random.default_rng(1).normal(10.0, 30.0, 200))
    whale = cv.whale_curve(profit)
    ax = own_axes()
    assert cvplot.whale_curve(whale, ax=ax) is ax
    (line,) = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
    assert line.get_ydata()[-1] == pytest.approx(profit.sum())
    assert max(line.get_ydata()) == pytest.approx(whale.peak_profit_)
    assert ax.get_title() == "Whale curve"
    cvplot.whale_curve(whale.curve_)


def test_cohort_retention_draws_one_curve_per_cohort(crm: cv.datasets.SyntheticCRM) -> None:
    states = cv.lifecycle_states(crm.transactions, period="Q", rule=cv.InactivityRule(2))
    with pytest.warns(cv.SmallSampleWarning):
        cohorts = cv.cohort_retention(states)
    ax = cvplot.cohort_retention(cohorts)
    lines = ax.get_lines()
    assert len(lines) == len(cohorts.shares)
    first = cohorts.shares.iloc[0].to_numpy(dtype=float)
    assert np.array_equal(lines[0].get_ydata(), first, equal_nan=True)
    small = cohorts.is_small_sample.to_numpy()
    assert [line.get_linestyle() == "--" for line in lines] == list(small)
    assert ax.get_ylabel() == "share active"
    heatmap = cvplot.cohort_heatmap(cohorts.shares)
    assert len(heatmap.images) == 1


CUT_END, CUT = "2024-11-15", pd.Period("2024Q4", "Q")  # a quarter observed for six weeks


@pytest.fixture(scope="module")
def cut_states(crm: cv.datasets.SyntheticCRM) -> pd.DataFrame:
    seen = crm.transactions[crm.transactions["timestamp"] <= CUT_END]
    return cv.lifecycle_states(seen, period="Q", rule=cv.InactivityRule(2),
                               observation_end=CUT_END)  # fmt: skip


def test_lifecycle_flows_leave_out_a_cut_last_period(cut_states: pd.DataFrame) -> None:
    # regression: the last quarter, observed for six weeks, showed a false drop of actives
    flows = cv.lifecycle_flows(cut_states)
    assert flows.index[-1] == CUT
    assert cvplot.partial_last_period(flows.index, CUT_END) == CUT
    assert cvplot.partial_last_period(flows.index, "2024-12-31") is None
    ax = cvplot.lifecycle_flows(flows, stock=True, observation_end=CUT_END)
    (active,) = ax.get_lines()
    assert list(active.get_ydata()) == list(flows["active"].iloc[:-1])
    assert "2024Q4, cut at 2024-11-15, left out" in ax.get_xlabel()
    bars = cvplot.lifecycle_flows(flows, observation_end=CUT_END)
    assert [len(container) for container in bars.containers] == [len(flows) - 1] * 3
    (whole,) = cvplot.lifecycle_flows(flows, stock=True, observation_end="2024-12-31").get_lines()
    assert list(whole.get_ydata()) == list(flows["active"])
    with pytest.raises(SchemaError, match="calendar periods"):
        cvplot.lifecycle_flows(flows.reset_index(drop=True), observation_end=CUT_END)


def test_cohort_plots_leave_out_a_cut_last_period(cut_states: pd.DataFrame) -> None:
    cohorts = cv.cohort_retention(cut_states, min_customers=1)
    # cell (cohort, age) is calendar quarter cohort + age: the cut quarter's cells are blank
    expected = cohorts.shares.to_numpy(dtype=float).copy()
    for row, cohort in enumerate(cohorts.shares.index):
        age = (CUT - cohort).n
        assert not np.isnan(expected[row, age])  # every cohort reached the last quarter
        expected[row, age] = np.nan
    curves = cvplot.cohort_retention(cohorts, observation_end=CUT_END)
    for line, row in zip(curves.get_lines(), expected, strict=True):
        assert np.array_equal(line.get_ydata(), row, equal_nan=True)
    assert "2024Q4, cut at 2024-11-15, left out" in curves.get_xlabel()
    heatmap = cvplot.cohort_heatmap(cohorts, observation_end=CUT_END)
    cells = np.ma.filled(heatmap.images[0].get_array(), np.nan)
    assert np.array_equal(cells, expected, equal_nan=True)
    unmarked = cvplot.cohort_retention(cohorts)
    assert np.array_equal(unmarked.get_lines()[0].get_ydata(),
                          cohorts.shares.iloc[0].to_numpy(dtype=float), equal_nan=True)  # fmt: skip


def test_clv_by_segment_draws_a_box_per_segment() -> None:
    rng = np.random.default_rng(0)
    values = pd.Series(rng.gamma(2.0, 50.0, 300), name="clv")
    segment = pd.Series(rng.choice(["gold", "silver", "bronze"], 300), name="tier")
    ax = cvplot.clv_by_segment(values, segment)
    labels = [label.get_text().split("\n")[0] for label in ax.get_xticklabels()]
    assert labels == ["bronze", "gold", "silver"]
    medians = [line.get_ydata()[0] for line in ax.get_lines()[4::5]]  # whiskers, caps, median
    assert medians == pytest.approx([values[segment == name].median() for name in labels])
    assert ax.get_title() == "clv by tier"


def test_clv_distribution_leaves_out_customers_without_a_value() -> None:
    # regression: one NaN value made the histogram's range NaN and the plot raise
    values = pd.Series([10.0, np.nan, 30.0, 20.0, np.inf, 40.0], name="clv")
    ax = cvplot.clv_distribution(values, bins=4)
    assert sum(patch.get_height() for patch in ax.patches) == 4
    assert "2 customers without a value left out" in ax.get_xlabel()
    complete = cvplot.clv_distribution(values[np.isfinite(values)], bins=4)
    assert "left out" not in complete.get_xlabel()


def test_other_plots_draw_on_a_given_axes(crm: cv.datasets.SyntheticCRM) -> None:
    values = pd.Series(np.linspace(0.0, 100.0, 50), name="clv")
    ax = own_axes()
    assert cvplot.clv_distribution(values, ax=ax) is ax
    assert sum(patch.get_height() for patch in ax.patches) == 50
    states = cv.lifecycle_states(crm.transactions, period="Q", rule=cv.InactivityRule(2))
    flows = cv.lifecycle_flows(states)
    assert len(cvplot.lifecycle_flows(flows).containers) == 3
    (active,) = cvplot.lifecycle_flows(flows, stock=True).get_lines()
    assert list(active.get_ydata()) == list(flows["active"])
    risk = pd.Series(np.linspace(0.01, 0.99, 50))
    grid = cv.value_risk_grid(values, risk)
    assert len(cvplot.value_risk_grid(grid).images) == 1


def test_cvalue_plot_is_imported_on_first_use() -> None:
    assert cv.plot is cvplot
    assert "plot" in cv.__all__
    with pytest.raises(AttributeError, match="no attribute 'plots'"):
        _ = cv.plots  # type: ignore[attr-defined]


DOCS = Path(__file__).resolve().parents[1] / "docs"
NOT_PLOTS = {"calibration_holdout_table", "frequency_fit_table", "tracking_table",
             "customer_history", "tracking_lines", "calibration_holdout_lines",
             "partial_last_period"}  # fmt: skip


def test_every_plot_is_in_the_docs_with_an_image_the_script_makes() -> None:
    page = (DOCS / "plots.md").read_text(encoding="utf-8")
    for name in sorted(set(cvplot.__all__) - NOT_PLOTS):
        assert f"plot.{name}(" in page, f"docs/plots.md has no example of plot.{name}"
    shown = set(re.findall(r"\]\(images/plots/(\w+)\.png\)", page))
    saved = set(re.findall(r'_save\(\s*"(\w+)"', (DOCS / "generate_plots.py").read_text()))
    on_disk = {path.stem for path in (DOCS / "images" / "plots").glob("*.png")}
    assert shown == saved == on_disk
