"""Tests of cvalue.datasets: the bundled reference data and the synthetic CRM."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import hyp2f1

from cvalue.datasets import (
    ACQUISITION_CHANNELS,
    CATEGORIES,
    CDNOW,
    CONTACT_KINDS,
    SALES_CHANNELS,
    CostAssumptions,
    CRMTruth,
    SegmentProfile,
    SyntheticCRM,
    load_cdnow,
    load_donations,
    make_crm,
)
from cvalue.errors import SchemaError
from cvalue.units import TimeUnit

ONE_DAY = pd.Timedelta(days=1)
ONE_WEEK = pd.Timedelta(days=TimeUnit.WEEK.days)


def _weeks(elapsed: pd.Series) -> pd.Series:
    """Timedeltas in weeks of exactly seven days."""
    weeks: pd.Series = elapsed.dt.total_seconds() / ONE_WEEK.total_seconds()
    return weeks


# --- CDNOW and donations -------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow_sample() -> CDNOW:
    return load_cdnow()


def test_cdnow_sample_counts_and_columns(cdnow_sample: CDNOW) -> None:
    transactions = cdnow_sample.transactions
    assert len(transactions) == 6_919
    assert transactions["customer_id"].nunique() == 2_357
    assert list(transactions.columns[:4]) == ["customer_id", "timestamp", "amount", "quantity"]
    assert transactions["customer_id"].dtype == np.int64
    assert transactions["quantity"].dtype == np.int64
    assert transactions["amount"].dtype == np.float64
    assert pd.api.types.is_datetime64_dtype(transactions["timestamp"])
    assert transactions["timestamp"].min() == pd.Timestamp("1997-01-01")
    assert transactions["timestamp"].max() <= cdnow_sample.observation_end


def test_cdnow_published_summary(cdnow_sample: CDNOW) -> None:
    """The 39-week calibration summary of Fader, Hardie & Lee (2005)."""
    summary = cdnow_sample.summary
    assert summary is not None
    assert list(summary.columns) == ["frequency", "recency", "T", "monetary_value"]
    assert summary.index.name == "customer_id"
    assert len(summary) == 2_357
    assert summary["frequency"].sum() == 2_457
    assert (summary["frequency"] == 0).sum() == 1_411
    assert (summary["frequency"] > 0).sum() == 946  # the Gamma-Gamma repeat buyers


def test_cdnow_summary_matches_the_sample_transactions(cdnow_sample: CDNOW) -> None:
    """customer_id is the sample id: the published summary is recomputed from the log."""
    summary = cdnow_sample.summary
    assert summary is not None
    transactions = cdnow_sample.transactions
    calibration = transactions[transactions["timestamp"] <= cdnow_sample.calibration_end]
    days = calibration.groupby("customer_id")["timestamp"].agg(["nunique", "min", "max"])
    first = transactions.groupby("customer_id")["timestamp"].min()
    frequency = (days["nunique"] - 1).reindex(summary.index)
    recency = _weeks(days["max"] - days["min"]).reindex(summary.index)
    age = _weeks(cdnow_sample.calibration_end - first).reindex(summary.index)
    np.testing.assert_array_equal(frequency.to_numpy(), summary["frequency"].to_numpy())
    np.testing.assert_allclose(recency.to_numpy(), summary["recency"].to_numpy(), atol=0.0051)
    np.testing.assert_allclose(age.to_numpy(), summary["T"].to_numpy(), atol=0.0051)


def test_cdnow_master_counts() -> None:
    cdnow = load_cdnow("master")
    assert cdnow.summary is None
    assert len(cdnow.transactions) == 69_659
    assert cdnow.transactions["customer_id"].nunique() == 23_570
    assert list(cdnow.transactions.columns) == ["customer_id", "timestamp", "amount", "quantity"]


def test_cdnow_sample_rows_are_master_rows(cdnow_sample: CDNOW) -> None:
    master = load_cdnow("master").transactions
    sample = cdnow_sample.transactions.drop(columns="customer_id")
    sample = sample.rename(columns={"master_customer_id": "customer_id"})
    matched = sample.merge(master.drop_duplicates(), how="left", indicator=True)
    assert (matched["_merge"] == "both").all()
    sampled_ids = set(sample["customer_id"])
    assert master["customer_id"].isin(sampled_ids).sum() == 6_919


def test_load_cdnow_rejects_unknown_kind() -> None:
    with pytest.raises(SchemaError, match="unknown CDNOW file kind 'full'"):
        load_cdnow("full")  # type: ignore[arg-type]


def test_donations() -> None:
    """The BG/BB table of Fader, Hardie & Shang (2010): 11,104 donors in 22 patterns."""
    donations = load_donations()
    assert list(donations.columns) == ["frequency", "recency", "n_periods", "weight"]
    assert len(donations) == 22
    assert donations["weight"].sum() == 11_104
    assert all(dtype == np.int64 for dtype in donations.dtypes)
    assert (donations["n_periods"] == 6).all()
    assert (donations["recency"] >= donations["frequency"]).all()


# --- make_crm ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crm() -> SyntheticCRM:
    return make_crm(20_000, seed=7)


def _purchases(crm: SyntheticCRM) -> pd.DataFrame:
    transactions = crm.transactions
    return transactions[~transactions["is_return"]]


def test_tables_have_the_documented_columns(crm: SyntheticCRM) -> None:
    assert crm.customers.index.name == "customer_id"
    assert list(crm.customers.columns) == [
        "acquisition_date",
        "cohort",
        "segment",
        "channel",
        "acquisition_cost",
    ]
    assert list(crm.transactions.columns) == [
        "customer_id",
        "order_id",
        "timestamp",
        "amount",
        "category",
        "channel",
        "is_promotion",
        "is_return",
    ]
    assert list(crm.service_contacts.columns) == ["customer_id", "timestamp", "kind", "cost"]
    assert list(crm.surveys.columns) == ["customer_id", "timestamp", "nps", "csat", "ces"]
    assert isinstance(crm.truth, CRMTruth)
    assert list(crm.truth.purchase_params.columns) == ["r", "alpha", "a", "b"]
    assert list(crm.truth.spend_params.columns) == ["p", "q", "gamma"]
    assert crm.truth.purchase_params.index.names == ["segment", "cohort"]


def test_customers_table(crm: SyntheticCRM) -> None:
    customers = crm.customers
    assert len(customers) == 20_000
    assert set(customers["cohort"]) == {"2022", "2023", "2024"}
    assert set(customers["segment"]) == {"retail", "online", "corporate"}
    assert set(customers["channel"]) <= set(ACQUISITION_CHANNELS)
    assert (customers["acquisition_cost"] > 0).all()
    by_channel = customers.groupby("channel")["acquisition_cost"].mean()
    assert by_channel["search"] > by_channel["referral"]
    years = customers["acquisition_date"].dt.year.astype(str)
    assert (years == customers["cohort"]).all()
    # Acquisitions are spread over the window: every quarter has new customers.
    assert customers["acquisition_date"].dt.to_period("Q").nunique() == 12


def test_quarterly_cohorts() -> None:
    customers = make_crm(500, seed=1, cohort_unit="quarter").customers
    quarters = customers["acquisition_date"].dt.to_period("Q").astype(str)
    assert (quarters == customers["cohort"]).all()


def test_same_seed_same_data_and_different_seed_different_data() -> None:
    first, second = make_crm(1_500, seed=3), make_crm(1_500, seed=3)
    for name in ("customers", "transactions", "service_contacts", "surveys"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    pd.testing.assert_frame_equal(first.truth.customers, second.truth.customers)
    np.testing.assert_array_equal(first.truth.unprofitable_ids, second.truth.unprofitable_ids)
    other = make_crm(1_500, seed=4)
    assert not first.transactions.equals(other.transactions)
    assert not first.customers.equals(other.customers)


def _check_invariants(crm: SyntheticCRM) -> None:
    """What must hold for any seed and window."""
    transactions = crm.transactions
    acquired = crm.customers["acquisition_date"]
    end = crm.truth.observation_end
    when_acquired = transactions["customer_id"].map(acquired)
    assert (transactions["timestamp"] >= when_acquired).all()
    assert (transactions["timestamp"] <= end).all()
    assert transactions["order_id"].is_unique
    is_return = transactions["is_return"]
    assert (transactions.loc[is_return, "amount"] < 0).all()
    assert (transactions.loc[~is_return, "amount"] > 0).all()
    first = transactions.groupby("customer_id")["timestamp"].min()
    assert first.index.equals(crm.customers.index)  # every customer bought once at least
    assert ((first >= acquired) & (first < acquired + ONE_DAY)).all()
    earliest = transactions.groupby("customer_id")["timestamp"].idxmin()
    assert not transactions.loc[earliest, "is_return"].any()
    for table in (crm.service_contacts, crm.surveys):
        times = table["timestamp"]
        assert (times >= table["customer_id"].map(acquired)).all()
        assert (times <= end).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_customers=st.integers(min_value=1, max_value=300),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    start=st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2030, 1, 1)),
    span_days=st.integers(min_value=1, max_value=2_000),
)
def test_invariants_hold_for_any_seed_and_window(
    n_customers: int, seed: int, start: dt.date, span_days: int
) -> None:
    begin = pd.Timestamp(start)
    crm = make_crm(
        n_customers, seed=seed, start=begin, observation_end=begin + pd.Timedelta(days=span_days)
    )
    assert len(crm.customers) == n_customers
    _check_invariants(crm)


def test_invariants_on_a_large_run(crm: SyntheticCRM) -> None:
    _check_invariants(crm)


def test_transaction_labels(crm: SyntheticCRM) -> None:
    transactions = crm.transactions
    assert set(transactions["category"]) == set(CATEGORIES)
    assert set(transactions["channel"]) == set(SALES_CHANNELS)
    purchases = _purchases(crm)
    returned = transactions[transactions["is_return"]]
    assert 0 < len(returned) < len(purchases)
    # Every return undoes an earlier purchase of the same customer, item for item.
    keys = ["customer_id", "amount", "category", "channel", "is_promotion"]
    matches = returned.assign(amount=-returned["amount"]).merge(
        purchases, on=keys, suffixes=("", "_purchase")
    )
    is_earlier = matches["timestamp_purchase"] + ONE_DAY <= matches["timestamp"]
    assert set(matches.loc[is_earlier, "order_id"]) == set(returned["order_id"])


def test_latent_draws_match_the_planted_heterogeneity(crm: SyntheticCRM) -> None:
    truth = crm.truth
    latent = truth.customers.join(crm.customers[["segment", "cohort"]])
    cells = latent.groupby(["segment", "cohort"])
    params = truth.purchase_params
    size = np.sqrt(cells.size().to_numpy())
    for name, expected in (
        ("lambda", params["r"] / params["alpha"]),
        ("p", params["a"] / (params["a"] + params["b"])),
    ):
        mean = cells[name].mean().to_numpy()
        standard_error = cells[name].std().to_numpy() / size
        z_scores = (mean - expected.reindex(cells[name].mean().index).to_numpy()) / standard_error
        assert np.all(np.abs(z_scores) < 4), name


def test_later_cohorts_drop_out_more(crm: SyntheticCRM) -> None:
    """Planted: a/(a+b) grows with the cohort; observed: fewer still buy in their 2nd year."""
    params = crm.truth.purchase_params
    dropout = params["a"] / (params["a"] + params["b"])
    assert (dropout.groupby(level="segment").diff().dropna() > 0).all()
    purchases = _purchases(crm)
    cohort = purchases["customer_id"].map(crm.customers["cohort"]).astype(int)
    in_second_year = purchases["timestamp"].dt.year == cohort + 1
    active = purchases.loc[in_second_year, "customer_id"].map(crm.customers["cohort"])
    share = active.groupby(active).size() / crm.customers.groupby("cohort").size()
    assert share["2022"] > share["2023"] + 0.03


@pytest.fixture(scope="module")
def homogeneous() -> SyntheticCRM:
    profile = SegmentProfile(1.0, r=0.6, alpha=5.0, a=0.7, b=2.5, p=6.0, q=4.0, gamma=20.0)
    return make_crm(20_000, seed=11, segments={"all": profile}, cohort_dropout_trend=0.0)


def _bgnbd_expected_purchases(
    t: npt.NDArray[np.float64], r: float, alpha: float, a: float, b: float
) -> npt.NDArray[np.float64]:
    """E[X(t)]: Fader, Hardie & Lee (2005), eq. (9)."""
    z = t / (alpha + t)
    hypergeometric = np.asarray(hyp2f1(r, b, a + b - 1, z), dtype=np.float64)
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hypergeometric)


def test_repeat_purchases_match_the_bgnbd_expectation(homogeneous: SyntheticCRM) -> None:
    params = homogeneous.truth.purchase_params
    assert len(params.drop_duplicates()) == 1
    r, alpha, a, b = params.iloc[0]
    purchases = _purchases(homogeneous)
    counts = purchases.groupby("customer_id")["timestamp"].agg(["size", "min"])
    age_weeks = _weeks(homogeneous.truth.observation_end - counts["min"]).to_numpy()
    repeat = (counts["size"] - 1).to_numpy()
    np.testing.assert_array_equal(repeat, homogeneous.truth.customers["n_repeat_purchases"])
    expected = _bgnbd_expected_purchases(age_weeks, r, alpha, a, b)
    z_score = (repeat.sum() - expected.sum()) / np.sqrt(((repeat - expected) ** 2).sum())
    assert abs(z_score) < 4
    assert repeat.mean() == pytest.approx(expected.mean(), rel=0.05)


def test_spend_matches_the_gamma_gamma_mean(homogeneous: SyntheticCRM) -> None:
    """E[z] = p * gamma / (q - 1) over customers (Fader, Hardie & Lee 2005, RFM and CLV)."""
    p, q, gamma = homogeneous.truth.spend_params.iloc[0]
    first = _purchases(homogeneous).groupby("customer_id")["amount"].first()
    standard_error = first.std() / np.sqrt(len(first))
    assert abs(first.mean() - p * gamma / (q - 1)) < 4 * standard_error


def test_dropout_truth_is_consistent(homogeneous: SyntheticCRM) -> None:
    truth = homogeneous.truth.customers
    dead = truth[~truth["is_alive"]]
    assert truth.loc[truth["is_alive"], "dropout_time"].isna().all()
    assert (dead["n_repeat_purchases"] >= 1).all()
    last = _purchases(homogeneous).groupby("customer_id")["timestamp"].max()
    pd.testing.assert_series_equal(
        dead["dropout_time"], last.loc[dead.index], check_names=False, check_freq=False
    )


def _net_margin(crm: SyntheticCRM) -> pd.Series:
    """Net margin recomputed from the tables with the documented cost assumptions."""
    costs = crm.truth.costs
    transactions = crm.transactions
    rate = costs.margin_rate - costs.promotion_discount_rate * transactions["is_promotion"]
    contribution = transactions["amount"] * rate
    contribution -= costs.return_handling_cost * transactions["is_return"]
    per_customer = contribution.groupby(transactions["customer_id"]).sum()
    service = crm.service_contacts.groupby("customer_id")["cost"].sum()
    return per_customer.sub(service, fill_value=0.0).reindex(crm.customers.index, fill_value=0.0)


def test_planted_unprofitable_cross_buyers(crm: SyntheticCRM) -> None:
    truth = crm.truth.customers
    margin = _net_margin(crm)
    np.testing.assert_allclose(margin.to_numpy(), truth["net_margin"].to_numpy(), atol=1e-6)
    categories = _purchases(crm).groupby("customer_id")["category"].nunique()
    is_cross_buyer = categories.reindex(truth.index) >= 2
    pd.testing.assert_series_equal(is_cross_buyer, truth["is_cross_buyer"], check_names=False)
    planted = pd.Index(crm.truth.unprofitable_ids)
    assert truth.loc[planted, "is_cross_buyer"].all()
    assert truth["is_unprofitable"].sum() == len(planted)
    assert len(planted) / is_cross_buyer.sum() == pytest.approx(0.2, abs=0.001)
    rest = truth.index[is_cross_buyer & ~truth["is_unprofitable"]]
    assert margin[planted].mean() < 0 < margin[rest].mean()
    losses = (-margin).clip(lower=0)
    assert losses[planted].sum() / losses.sum() == pytest.approx(0.7, abs=0.1)
    assert crm.truth.loss_share == pytest.approx(losses[planted].sum() / losses.sum())


def test_planted_group_behaviour(crm: SyntheticCRM) -> None:
    is_planted = crm.transactions["customer_id"].isin(crm.truth.unprofitable_ids)
    purchases = crm.transactions[~crm.transactions["is_return"]]
    planted_purchases = is_planted[purchases.index]
    promotion = purchases["is_promotion"].groupby(planted_purchases).mean()
    assert promotion[True] > 0.5 > promotion[False]
    returns = crm.transactions["is_return"].groupby(is_planted).sum()
    orders = planted_purchases.value_counts()
    assert returns[True] / orders[True] > 3 * returns[False] / orders[False]
    contacts = crm.service_contacts["customer_id"].isin(crm.truth.unprofitable_ids)
    assert contacts.sum() / orders[True] > 2 * (~contacts).sum() / orders[False]


def test_service_contacts(crm: SyntheticCRM) -> None:
    contacts = crm.service_contacts
    assert len(contacts) > 0
    assert set(contacts["kind"]) == set(CONTACT_KINDS)
    assert (contacts["cost"] > 0).all()
    mean_cost = contacts.groupby("kind")["cost"].mean()
    assert mean_cost["call"] > mean_cost["chat"] > mean_cost["email"]


def test_surveys_follow_value_and_the_planted_group(crm: SyntheticCRM) -> None:
    surveys = crm.surveys
    assert len(surveys) > 0
    assert surveys["nps"].between(0, 10).all()
    assert surveys["csat"].between(1, 5).all()
    assert surveys["ces"].between(1, 7).all()
    assert all(surveys[name].dtype == np.int64 for name in ("nps", "csat", "ces"))
    is_planted = surveys["customer_id"].isin(crm.truth.unprofitable_ids)
    for name in ("nps", "csat", "ces"):
        means = surveys[name].groupby(is_planted).mean()
        assert means[True] < means[False] - 0.3
    truth = crm.truth.customers
    segment_shape = crm.customers["segment"].map(
        crm.truth.spend_params["p"].groupby("segment").first()
    )
    weekly_value = truth["lambda"] * segment_shape / truth["nu"]
    ordinary = surveys[~is_planted]
    correlation = ordinary["nps"].corr(ordinary["customer_id"].map(weekly_value), method="spearman")
    assert correlation > 0.2


def test_custom_costs_are_used() -> None:
    costs = CostAssumptions(margin_rate=0.5, return_handling_cost=0.0)
    crm = make_crm(300, seed=2, costs=costs)
    assert crm.truth.costs is costs
    np.testing.assert_allclose(_net_margin(crm), crm.truth.customers["net_margin"], atol=1e-6)


def test_one_customer() -> None:
    crm = make_crm(1, seed=0)
    assert len(crm.customers) == 1
    assert len(crm.truth.unprofitable_ids) <= 1
    _check_invariants(crm)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_customers": 0}, "n_customers must be >= 1, got 0"),
        ({"n_customers": 2.5}, "n_customers must be an integer"),
        ({"start": "2024-01-01", "observation_end": "2023-01-01"}, "before observation_end"),
        ({"start": "2024-01-01", "observation_end": "2024-01-01"}, "before observation_end"),
        ({"start": "not a date"}, "cannot read start='not a date'"),
        ({"observation_end": "2024-12-31 00:00+01:00"}, "timezone-naive"),
        ({"unprofitable_share": 1.5}, "unprofitable_share must be in [0, 1]"),
        ({"cohort_dropout_trend": -1.0}, "cohort_dropout_trend must be > -1"),
        ({"cohort_unit": "month"}, "cohort_unit must be 'year' or 'quarter', got 'month'"),
        ({"segments": {}}, "segments must map at least one segment name to a SegmentProfile"),
    ],
)
def test_make_crm_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SchemaError, match=re.escape(message)):
        make_crm(**kwargs)  # type: ignore[arg-type]


def test_make_crm_collects_every_problem() -> None:
    with pytest.raises(SchemaError, match=r"observation_end.*n_customers.*unprofitable_share"):
        make_crm(0, start="2025-01-01", unprofitable_share=-0.1)


def test_bad_profiles_and_costs_are_rejected() -> None:
    with pytest.raises(SchemaError, match=r"segment profile has invalid parameters \{'alpha'"):
        SegmentProfile(1.0, r=0.5, alpha=-1.0, a=1.0, b=1.0, p=1.0, q=2.0, gamma=1.0)
    with pytest.raises(SchemaError, match="channel_weights"):
        SegmentProfile(1.0, 0.5, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0, channel_weights=(0, 0, 0, 0))
    with pytest.raises(SchemaError, match="contact_costs"):
        CostAssumptions(contact_costs=(1.0, 0.0, 1.0))
    with pytest.raises(SchemaError, match="margin_rate"):
        CostAssumptions(margin_rate=float("nan"))
