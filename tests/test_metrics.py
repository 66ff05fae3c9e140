"""CX and base metrics: values by hand, interval coverage in seeded Monte Carlo, value tiers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from cvalue.datasets import make_crm
from cvalue.errors import DataQualityError, SchemaError
from cvalue.metrics import (
    SMALL_SAMPLE,
    SmallSampleWarning,
    by_value,
    cac,
    ces,
    churn_from_counts,
    churn_rate,
    csat,
    enps,
    iqs,
    nps,
    retention_from_counts,
    retention_rate,
)

Z95 = 1.959963984540054


# --- hand-computed values ---------------------------------------------------------------------


def test_nps_by_hand():
    answers = [10] * 30 + [9] * 20 + [8] * 15 + [7] * 10 + [6] * 10 + [2] * 15  # 100 answers
    result = nps(answers)
    promoters, detractors = 0.50, 0.25
    assert result.estimate == pytest.approx(25.0)
    assert dict(result.parts) == pytest.approx(
        {"promoters": 0.5, "passives": 0.25, "detractors": 0.25}
    )
    half = 100 * Z95 * math.sqrt((promoters + detractors - 0.25**2) / 100)
    assert result.ci_lower == pytest.approx(25.0 - half)
    assert result.ci_upper == pytest.approx(25.0 + half)
    assert (result.metric, result.n, result.level) == ("NPS", 100, 0.95)
    assert enps(answers).estimate == pytest.approx(25.0)
    assert enps(answers).metric == "eNPS"


def test_nps_interval_stays_on_the_scale():
    result = nps([10] * 150)
    assert (result.estimate, result.ci_lower, result.ci_upper) == (100.0, 100.0, 100.0)
    result = nps([0] * 120 + [10] * 2)
    assert result.ci_lower >= -100.0


def test_csat_is_the_top_two_box_share_with_the_wilson_interval():
    answers = [5] * 41 + [4] * 32 + [3] * 12 + [2] * 9 + [1] * 6
    result = csat(answers, level=0.9)
    assert result.estimate == pytest.approx(0.73)
    assert result.parts["satisfied"] == 73
    reference = stats.binomtest(73, 100).proportion_ci(confidence_level=0.9, method="wilson")
    assert result.ci_lower == pytest.approx(reference.low, rel=1e-12)
    assert result.ci_upper == pytest.approx(reference.high, rel=1e-12)
    top_three = csat(answers, top_box=3)
    assert top_three.estimate == pytest.approx(0.85)
    seven = csat([7, 6, 5, 1] * 30, scale=(1, 7))
    assert seven.estimate == pytest.approx(0.5)


def test_ces_is_the_mean_with_a_t_interval():
    answers = np.array([7, 6, 6, 5, 4, 3, 6, 7, 2, 5] * 12)
    result = ces(answers)
    low, high = stats.t.interval(
        0.95, len(answers) - 1, loc=answers.mean(), scale=stats.sem(answers)
    )
    assert result.estimate == pytest.approx(answers.mean())
    assert (result.ci_lower, result.ci_upper) == pytest.approx((low, high), rel=1e-12)
    assert result.parts["std_dev"] == pytest.approx(answers.std(ddof=1))


def test_iqs_is_the_points_earned_over_those_possible():
    # reviews on scorecards of 10 and 20 points: 100 * (8 + 15 + 9 + 12) / (10 + 20 + 10 + 20)
    points, possible = [8, 15, 9, 12] * 30, [10, 20, 10, 20] * 30
    result = iqs(points, possible)
    assert result.estimate == pytest.approx(100 * 44 / 60)
    ratio, y, m = 44 / 60, np.array(points, float), np.array(possible, float)
    std_error = np.sqrt(np.sum((y - ratio * m) ** 2) / (len(y) - 1) / len(y)) / m.mean()
    half = stats.t.ppf(0.975, len(y) - 1) * std_error
    assert (result.ci_lower, result.ci_upper) == pytest.approx(
        (100 * (ratio - half), 100 * (ratio + half)), rel=1e-12
    )
    assert result.parts["points"] == 44 * 30
    assert result.parts["possible"] == 60 * 30


@given(st.lists(st.integers(0, 10), min_size=2, max_size=80).filter(lambda v: len(set(v)) > 1))
def test_iqs_of_one_scorecard_is_the_mean_percentage_with_a_t_interval(points):
    """With one scorecard for every review, the ratio estimator is the mean of the reviews'
    percentages and its interval the t interval of that mean (cut to 0-100)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        result = iqs(points, max_points=10)
    shares = 10.0 * np.array(points, dtype=float)
    low, high = stats.t.interval(0.95, len(shares) - 1, loc=shares.mean(),
                                 scale=stats.sem(shares))  # fmt: skip
    assert result.estimate == pytest.approx(shares.mean(), rel=1e-12)
    assert result.ci_lower == pytest.approx(max(low, 0.0), rel=1e-9, abs=1e-9)
    assert result.ci_upper == pytest.approx(min(high, 100.0), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    ("points", "possible", "said"),
    [([5, -1, 3], 10, "1 negative points"), ([5, 11, 3], 10, "1 points above the possible"),
     ([5, None, 3], 10, "1 missing or non-numeric points"), ([5, 6], 0, "not > 0"),
     ([5, 6], [10, 10, 10], "3 values for 2 reviews"), ([], 10, "no reviews")],
)  # fmt: skip
def test_iqs_refuses_what_is_no_review(points, possible, said):
    with pytest.raises((DataQualityError, SchemaError), match=said):
        iqs(points, possible)


def test_rates_match_the_binomial_intervals():
    for method, interval in (("wilson", "wilson"), ("exact", "exact")):
        kept = retention_from_counts(412, 520, level=0.9, interval=interval)
        reference = stats.binomtest(412, 520).proportion_ci(confidence_level=0.9, method=method)
        assert kept.estimate == pytest.approx(412 / 520)
        assert (kept.ci_lower, kept.ci_upper) == pytest.approx(
            (reference.low, reference.high), rel=1e-10
        )
        lost = churn_from_counts(520 - 412, 520, level=0.9, interval=interval)
        assert lost.estimate == pytest.approx(1 - kept.estimate)
        assert (lost.ci_lower, lost.ci_upper) == pytest.approx(
            (1 - kept.ci_upper, 1 - kept.ci_lower), rel=1e-10
        )
    assert churn_from_counts(0, 150, interval="exact").ci_lower == 0.0
    assert retention_from_counts(150, 150, interval="exact").ci_upper == 1.0


def test_cac_by_channel():
    spend = pd.Series({"search": 9_000.0, "social": 2_000.0, "events": 500.0})
    new = pd.Series({"social": 50, "search": 200, "events": 0})
    table = cac(spend, new)
    assert table.index.tolist() == ["search", "social", "events"]
    assert table.loc["search", "cac"] == 45.0
    assert table.loc["social", "cac"] == 40.0
    assert math.isinf(table.loc["events", "cac"])
    assert table["share_of_spend"].sum() == pytest.approx(1.0)
    crm = make_crm(2_000, seed=3)
    by_channel = cac(
        crm.customers.groupby("channel")["acquisition_cost"].sum(),
        crm.customers["channel"].value_counts(),
    )
    means = crm.customers.groupby("channel")["acquisition_cost"].mean()
    np.testing.assert_allclose(by_channel["cac"], means.reindex(by_channel.index))
    with pytest.raises(DataQualityError, match=r"\['events'\] have spend only"):
        cac(spend, new.drop("events"))
    with pytest.raises(DataQualityError, match="1 of 3 channels have a missing or negative spend"):
        cac(spend.replace(500.0, -1.0), new)


# --- coverage in seeded Monte Carlo -----------------------------------------------------------


def coverage(draw, estimate, truth: float, n_trials: int = 3_000) -> float:
    rng = np.random.default_rng(20261128)
    hits = 0
    for _ in range(n_trials):
        result = estimate(draw(rng))
        hits += result.ci_lower <= truth <= result.ci_upper
    return hits / n_trials


# with 3,000 trials the observed coverage of a 95 % interval has a standard error of 0.4 points
COVERAGE = (0.935, 0.965)


def test_nps_interval_covers_at_the_stated_rate():
    shares = [0.22, 0.38, 0.40]  # detractors (0-6), passives (7-8), promoters (9-10)
    scores = np.array([3, 8, 10])

    def draw(rng):
        return scores[rng.choice(3, size=300, p=shares)]

    rate = coverage(draw, nps, 100 * (0.40 - 0.22))
    assert COVERAGE[0] <= rate <= COVERAGE[1]


def test_csat_interval_covers_at_the_stated_rate():
    def draw(rng):
        return rng.choice([1, 2, 3, 4, 5], size=150, p=[0.05, 0.1, 0.15, 0.4, 0.3])

    rate = coverage(draw, csat, 0.70)
    assert COVERAGE[0] <= rate <= COVERAGE[1]


def test_ces_interval_covers_at_the_stated_rate():
    probabilities = np.array([0.05, 0.05, 0.1, 0.2, 0.25, 0.2, 0.15])
    truth = float(np.dot(np.arange(1, 8), probabilities))

    def draw(rng):
        return rng.choice(np.arange(1, 8), size=120, p=probabilities)

    rate = coverage(draw, ces, truth)
    assert COVERAGE[0] <= rate <= COVERAGE[1]


def test_rate_interval_covers_at_the_stated_rate():
    rng = np.random.default_rng(7)
    retained = rng.binomial(240, 0.83, size=3_000)
    hits = [
        (found := retention_from_counts(int(count), 240)).ci_lower <= 0.83 <= found.ci_upper
        for count in retained
    ]
    assert COVERAGE[0] <= np.mean(hits) <= COVERAGE[1]


# --- small samples and bad input --------------------------------------------------------------


def test_a_small_sample_is_named_in_a_warning():
    with pytest.warns(SmallSampleWarning, match="NPS from 57 answers: fewer than 100"):
        nps([9] * 57)
    with pytest.warns(SmallSampleWarning, match="CSAT from 99 answers"):
        csat([5] * 99)
    with pytest.warns(SmallSampleWarning, match="CES from 3 answers"):
        ces([4, 5, 6])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not nps([9] * SMALL_SAMPLE).is_small_sample
    with pytest.warns(SmallSampleWarning):
        assert nps([9] * (SMALL_SAMPLE - 1)).is_small_sample


def test_count_rates_on_few_customers_warn_and_flag():
    with pytest.warns(SmallSampleWarning) as caught:
        kept = retention_from_counts(40, 50)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "retention rate from 50 customers at the start: fewer than 100" in message
    assert "pass min_customers=" in message
    assert caught[0].filename == __file__  # the warning points at the caller
    assert kept.is_small_sample
    assert kept.estimate == pytest.approx(0.8)
    with pytest.warns(SmallSampleWarning, match="churn rate from 99 customers"):
        assert churn_from_counts(10, 99).is_small_sample
    # a threshold of the user's choosing: 50 customers are enough when asked for
    assert not retention_from_counts(40, 50, min_customers=50).is_small_sample
    assert not churn_from_counts(5, 50, min_customers=0).is_small_sample
    with pytest.warns(SmallSampleWarning, match="churn rate from 50 customers"):
        assert churn_from_counts(5, 50, min_customers=51).is_small_sample
    for bad in (-1, 2.5, True, "100"):
        with pytest.raises(SchemaError, match="min_customers must be a whole number >= 0"):
            retention_from_counts(40, 50, min_customers=bad)  # type: ignore[arg-type]


def test_count_rates_on_enough_customers_do_not_warn():
    # warnings are errors in the tests: a warning here fails the test
    assert not retention_from_counts(80, SMALL_SAMPLE).is_small_sample
    assert not churn_from_counts(20, SMALL_SAMPLE, interval="exact").is_small_sample
    assert not retention_from_counts(8_500, 10_000).is_small_sample


def test_answers_outside_the_scale_are_counted():
    answers = pd.Series([10, 11, 7, -1, 7.5, None, 3] + [8] * 100)
    with pytest.raises(DataQualityError) as caught:
        nps(answers)
    message = str(caught.value)
    assert "2 answers outside the 0-10 scale (e.g. row 1: 11" in message
    assert "1 answers that are not whole points (e.g. row 4: 7.5)" in message
    assert "1 missing or non-numeric answers (e.g. row 5" in message
    assert "among 107 answers" in message
    with pytest.raises(DataQualityError, match="answers outside the 1-5 scale"):
        csat([0, 5, 4] * 40)
    with pytest.raises(DataQualityError, match="answers outside the 1-7 scale"):
        ces([8] * 200)
    with pytest.raises(DataQualityError, match="there are no answers"):
        nps([])
    with pytest.raises(SchemaError, match="top_box must be"):
        csat([5] * 200, top_box=5)
    with pytest.raises(SchemaError, match="level must be"):
        nps([9] * 200, level=95)
    with pytest.raises(DataQualityError, match="0 <= retained <= at_start"):
        retention_from_counts(12, 10)
    with pytest.raises(SchemaError, match="interval must be"):
        churn_from_counts(1, 10, interval="wald")


@given(
    counts=st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(0, 60)).filter(
        lambda counts: sum(counts) > 0
    )
)
def test_nps_is_on_its_scale_and_inside_its_interval(counts):
    answers = [2] * counts[0] + [7] * counts[1] + [10] * counts[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        result = nps(answers)
    expected = 100 * (counts[2] - counts[0]) / sum(counts)
    assert result.estimate == pytest.approx(expected)
    assert -100 <= result.ci_lower <= result.estimate + 1e-9
    assert result.estimate - 1e-9 <= result.ci_upper <= 100


# --- by value ---------------------------------------------------------------------------------


def hand_survey():
    """Ten customers valued 1..10 (tiers: top 20 % = 10 and 9) answering NPS twice or once."""
    values = pd.Series(np.arange(1.0, 11.0), index=pd.Index(range(1, 11), name="customer_id"))
    answers = pd.DataFrame({
        "customer_id": [10, 10, 9, 1, 1, 2, 3, 4],
        "timestamp": pd.to_datetime(["2024-01-01", "2024-03-01", "2024-02-01", "2024-01-01",
                                     "2024-02-01", "2024-01-05", "2024-01-06", "2024-01-07"]),
        "nps": [10, 3, 9, 2, 9, 6, 8, 10],
    })  # fmt: skip
    return values, answers


def test_nps_by_value_tier_by_hand():
    values, answers = hand_survey()
    with pytest.warns(SmallSampleWarning, match=r"NPS by value tier: 3 of 3 tiers have fewer "
                      r"than 100 answers \(top 20%: 3, bottom 80%: 5, all: 8\)"):  # fmt: skip
        table = by_value("nps", answers, values, cuts=(0.2,))
    assert table["is_small_sample"].tolist() == [True, True, True]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        top = nps([10, 3, 9])
        bottom = nps([2, 9, 6, 8, 10])
    assert table.loc["top 20%", "estimate"] == pytest.approx(top.estimate)
    assert table.loc["bottom 80%", "ci_upper"] == pytest.approx(bottom.ci_upper)
    assert table["answers"].tolist() == [3, 5, 8]
    assert table["customers_answering"].tolist() == [2, 4, 6]
    assert table["value"].tolist() == [19.0, 36.0, 55.0]
    # latest answers: 10 -> 3 (detracts), 9 -> 9, 1 -> 9, 2 -> 6 (detracts), 3 -> 8, 4 -> 10
    assert table["detractors"].tolist() == [1, 1, 2]
    assert table["detractor_value"].tolist() == [10.0, 2.0, 12.0]
    assert table.loc["all", "detractor_value_share"] == pytest.approx(12 / 55)


def test_by_value_errors():
    values, answers = hand_survey()
    with pytest.raises(DataQualityError, match=r"1 of 9 answers come from customers without a "
                       r"value \(e.g. customer 99\)"):  # fmt: skip
        by_value("nps", pd.concat([answers, answers.iloc[:1].assign(customer_id=99)]), values)
    with pytest.raises(DataQualityError, match="repeat a customer and there is no timestamp"):
        by_value("nps", answers.drop(columns="timestamp"), values, timestamp=None)
    with pytest.raises(SchemaError, match="metric must be one of"):
        by_value("ces_mean", answers, values)
    with pytest.raises(SchemaError, match=r"columns 'customer_id' and 'csat'"):
        by_value("csat", answers, values)


def test_by_value_on_make_crm():
    crm = make_crm(20_000, seed=9)
    spend = crm.transactions.groupby("customer_id")["amount"].sum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every tier has hundreds of answers
        table = by_value("nps", crm.surveys, spend, cuts=(0.05, 0.2))
        satisfaction = by_value("csat", crm.surveys, spend, cuts=(0.05, 0.2))
        effort = by_value("ces", crm.surveys, spend, cuts=(0.05, 0.2))
    assert not table["is_small_sample"].any()
    # make_crm's satisfaction rises with the customer's latent value
    assert table.loc["top 5%", "ci_lower"] > table.loc["bottom 80%", "ci_upper"]
    assert satisfaction.loc["top 5%", "estimate"] > satisfaction.loc["bottom 80%", "estimate"]
    assert effort.loc["top 5%", "estimate"] > effort.loc["bottom 80%", "estimate"]
    assert table.loc["all", "estimate"] == pytest.approx(nps(crm.surveys["nps"]).estimate)
    assert satisfaction.loc["all", "ci_lower"] == pytest.approx(csat(crm.surveys["csat"]).ci_lower)
    assert table.loc["all", "answers"] == len(crm.surveys)
    latest = crm.surveys.sort_values("timestamp").drop_duplicates("customer_id", keep="last")
    detractors = latest.loc[latest["nps"] <= 6, "customer_id"]
    assert table.loc["all", "detractor_value"] == pytest.approx(spend[detractors].sum())


def test_the_old_names_of_the_count_rates_warn_and_give_the_same_rate():
    with pytest.warns(DeprecationWarning, match="call cvalue.metrics.retention_from_counts"):
        old = retention_rate(850, 1_000)
    assert old == retention_from_counts(850, 1_000)
    with pytest.warns(DeprecationWarning, match="call cvalue.metrics.churn_from_counts"):
        old = churn_rate(150, 1_000, interval="exact")
    assert old == churn_from_counts(150, 1_000, interval="exact")
