"""Dask frames give the pandas results: summaries, patterns, fits, lifecycle, profit and scores.

Every test runs on a ``distributed.LocalCluster`` of two worker processes (the session's
``dask_cluster``, shared with tests/test_job_dask.py), so each function and model crosses a
process boundary (pickled) and each customer's rows are gathered by a shuffle. The logs are
shuffled row by row before they are split, so that a customer's rows start out in several
partitions.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe", reason="the Dask tests need cvalue[dask]")
distributed = pytest.importorskip("distributed", reason="the Dask tests need cvalue[dask]")

from cvalue import (  # noqa: E402  (after the skips: dask is optional)
    BetaDiscreteWeibull,
    BetaGeo,
    BetaGeoBetaBinom,
    BetaGeoCNBD,
    GammaGamma,
    ModifiedBetaGeo,
    ModifiedBetaGeoCNBD,
    ParetoNBD,
    Rate,
    ShiftedBetaGeo,
    SmallSampleWarning,
    UnmatchedCostsWarning,
    calibration_holdout,
    clv,
    cnbd_summary,
    compress,
    rfm_summary,
)
from cvalue.dask import is_dask_frame, map_scores  # noqa: E402
from cvalue.datasets import load_cdnow, load_donations, make_crm  # noqa: E402
from cvalue.errors import SchemaError  # noqa: E402
from cvalue.lifecycle import (  # noqa: E402
    InactivityRule,
    ModelRule,
    cohort_retention,
    lifecycle_flows,
    lifecycle_states,
)
from cvalue.segments import Costs, customer_profitability  # noqa: E402

CDNOW = load_cdnow()
N_PARTITIONS = 4


@pytest.fixture(scope="module", autouse=True)
def client(dask_cluster):
    with distributed.Client(dask_cluster) as connected:
        yield connected


def scattered(frame: pd.DataFrame, seed: int = 0):
    """The frame's rows in random order, in partitions: each customer starts out spread."""
    order = np.random.default_rng(seed).permutation(len(frame))
    return dd.from_pandas(frame.iloc[order].reset_index(drop=True), npartitions=N_PARTITIONS)


@pytest.fixture(scope="module")
def log():
    return scattered(CDNOW.transactions)


@pytest.fixture(scope="module")
def crm():
    return make_crm(1_000, seed=5)


def by_customer(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_index(kind="stable")


# --- per customer --------------------------------------------------------------------------------


def test_a_dask_frame_is_told_from_a_pandas_one(log):
    assert is_dask_frame(log)
    assert not is_dask_frame(CDNOW.transactions)
    assert not is_dask_frame(log["amount"])  # a Dask Series is no log


@pytest.mark.parametrize(
    ("observation_end", "unit", "grain"),
    [(None, "week", "day"), ("1998-06-30", "day", "week"), ("1998-06-30", "month", "month")],
)
def test_rfm_summary_of_a_dask_log_is_the_pandas_summary(log, observation_end, unit, grain):
    summary = rfm_summary(log, observation_end=observation_end, unit=unit, grain=grain)
    assert is_dask_frame(summary)
    assert summary.npartitions == N_PARTITIONS
    expected = rfm_summary(
        CDNOW.transactions, observation_end=observation_end, unit=unit, grain=grain
    )
    computed = summary.compute()
    assert computed.attrs == {"unit": unit}
    pd.testing.assert_frame_equal(by_customer(computed), expected)


def test_the_default_end_is_the_last_purchase_of_the_whole_log_not_a_return(crm):
    late_return = crm.transactions.iloc[[0]].assign(
        timestamp=crm.transactions["timestamp"].max() + pd.Timedelta(days=9),
        amount=-crm.transactions["amount"].iloc[0], is_return=True,
    )  # fmt: skip
    transactions = pd.concat([crm.transactions, late_return], ignore_index=True)
    summary = rfm_summary(scattered(transactions, seed=1)).compute()
    pd.testing.assert_frame_equal(by_customer(summary), rfm_summary(transactions))


def test_calibration_holdout_of_a_dask_log_is_the_pandas_split(log):
    ends = {"calibration_end": CDNOW.calibration_end, "observation_end": CDNOW.observation_end}
    split = calibration_holdout(log, **ends).compute()
    expected = calibration_holdout(CDNOW.transactions, **ends)
    assert split.attrs == {"unit": "week"}  # the count of new customers is per partition: left out
    expected.attrs = split.attrs
    pd.testing.assert_frame_equal(by_customer(split), expected)


def test_a_log_partitioned_by_time_newest_first_splits_as_pandas_does():
    # the first partition holds only the holdout: it cannot show what a split looks like
    newest_first = CDNOW.transactions.sort_values("timestamp", ascending=False, kind="stable")
    log = dd.from_pandas(newest_first.reset_index(drop=True), npartitions=N_PARTITIONS)
    assert log.partitions[0].compute()["timestamp"].min() > CDNOW.calibration_end
    ends = {"calibration_end": CDNOW.calibration_end, "observation_end": CDNOW.observation_end}
    split = calibration_holdout(log, **ends).compute()
    expected = calibration_holdout(CDNOW.transactions, **ends)
    expected.attrs = split.attrs
    pd.testing.assert_frame_equal(by_customer(split), expected)


# --- patterns and fits ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def summaries(log):
    """The 39-week calibration summary, from the Dask log (persisted) and from pandas."""
    end = {"observation_end": CDNOW.calibration_end}
    calibration = log[log["timestamp"] <= CDNOW.calibration_end]
    pandas_log = CDNOW.transactions
    expected = rfm_summary(pandas_log[pandas_log["timestamp"] <= CDNOW.calibration_end], **end)
    return rfm_summary(calibration, **end).persist(), expected


def test_compress_of_a_dask_summary_is_the_pandas_pattern_table(summaries):
    summary, expected = summaries
    patterns, weights, inverse = compress(summary)
    wanted = compress(expected)
    pd.testing.assert_frame_equal(patterns, wanted.patterns)
    np.testing.assert_array_equal(weights, wanted.weights)
    assert weights.dtype == np.int64
    rows = summary.compute().reset_index(drop=True)[["frequency", "recency", "T"]]
    pd.testing.assert_frame_equal(patterns.iloc[inverse].reset_index(drop=True), rows)


@pytest.mark.parametrize("model_class", [BetaGeo, ParetoNBD, ModifiedBetaGeo])
def test_a_fit_on_the_dask_pattern_table_is_the_pandas_fit_to_1e_8(summaries, model_class):
    summary, expected = summaries
    patterns, weights, _ = compress(summary)
    fitted = model_class().fit(patterns.assign(weight=weights), unit="week")
    reference = model_class().fit(expected)
    np.testing.assert_allclose(fitted.params_, reference.params_, rtol=1e-8)
    np.testing.assert_allclose(fitted.log_likelihood_, reference.log_likelihood_, rtol=1e-8)
    assert fitted.n_customers_ == reference.n_customers_ == len(expected)


# --- scores --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(summaries):
    _, expected = summaries
    repeat = expected[expected["frequency"] > 0]
    return BetaGeo().fit(expected), GammaGamma().fit(repeat)


def assert_scores(scores, expected: pd.DataFrame) -> None:
    computed = by_customer(scores.compute())
    assert list(computed.columns) == list(expected.columns)
    pd.testing.assert_index_equal(computed.index, expected.index)
    for column in expected:
        np.testing.assert_allclose(computed[column], expected[column], rtol=1e-10, atol=0)


def test_predict_maps_over_the_partitions_to_the_pandas_scores(summaries, fitted):
    summary, expected = summaries
    purchases, spend = fitted
    assert_scores(
        map_scores(purchases.predict, summary, horizon=52),
        purchases.predict(expected, horizon=52),
    )
    assert_scores(map_scores(purchases.p_alive, summary), purchases.p_alive(expected).to_frame())
    repeat = summary[summary["frequency"] > 0]
    expected_spend = spend.conditional_expected_spend(expected[expected["frequency"] > 0])
    assert_scores(map_scores(spend.conditional_expected_spend, repeat), expected_spend.to_frame())


def test_clv_maps_over_the_partitions_to_the_pandas_values(summaries, fitted):
    summary, expected = summaries
    purchases, spend = fitted
    options = {"purchases": purchases, "spend": spend, "margin": 0.3, "horizon": "2y",
               "rates": Rate(0.10), "cost_to_serve": 1.5,
               "marketing_cost": 0.0}  # fmt: skip
    values = map_scores(clv, summary, table="customers", **options)
    assert_scores(values, clv(expected, **options).customers)
    with pytest.raises(SchemaError, match="table="):
        map_scores(clv, summary, **options)


# --- lifecycle -----------------------------------------------------------------------------------


def test_lifecycle_states_and_flows_of_a_dask_log_are_the_pandas_ones(log):
    rule = InactivityRule(2)
    states = lifecycle_states(log, period="M", rule=rule)
    expected = lifecycle_states(CDNOW.transactions, period="M", rule=rule)
    computed = states.compute()
    as_ids = {"customer_id": lambda frame: frame["customer_id"].astype(np.int64)}
    pd.testing.assert_frame_equal(
        computed.assign(**as_ids).sort_values(["customer_id", "period"], ignore_index=True),
        expected.assign(**as_ids),
    )
    pd.testing.assert_frame_equal(lifecycle_flows(states), lifecycle_flows(expected))


def test_model_rule_states_carry_the_fitted_model_to_the_workers(log, fitted):
    rule = ModelRule(fitted[0], threshold=0.5)
    flows = lifecycle_flows(lifecycle_states(log, period="Q", rule=rule))
    pd.testing.assert_frame_equal(
        flows, lifecycle_flows(lifecycle_states(CDNOW.transactions, period="Q", rule=rule))
    )


def assert_cohorts_equal(got, expected) -> None:
    for name in ("sizes", "active", "shares", "survivors", "is_small_sample"):
        left, right = getattr(got, name), getattr(expected, name)
        if isinstance(right, pd.Series):
            pd.testing.assert_series_equal(left, right)
        else:
            pd.testing.assert_frame_equal(left, right)


@pytest.mark.parametrize(("period", "rule"), [("M", None), ("W", InactivityRule(4))])
def test_cohort_retention_of_a_dask_log_is_the_pandas_table(log, period, rule):
    options = {"period": period, "rule": rule, "min_customers": 1}
    assert_cohorts_equal(
        cohort_retention(log, **options), cohort_retention(CDNOW.transactions, **options)
    )


def test_cohort_retention_of_a_dask_panel_warns_once_about_small_cohorts(log):
    panel = lifecycle_states(log, period="M", rule=InactivityRule(1))
    expected_panel = lifecycle_states(CDNOW.transactions, period="M", rule=InactivityRule(1))
    with pytest.warns(SmallSampleWarning) as dask_warnings:
        got = cohort_retention(panel, min_customers=800)
    with pytest.warns(SmallSampleWarning) as pandas_warnings:
        expected = cohort_retention(expected_panel, min_customers=800)
    assert len(dask_warnings) == len(pandas_warnings) == 1
    assert str(dask_warnings[0].message) == str(pandas_warnings[0].message)
    assert dask_warnings[0].filename == __file__
    assert got.is_small_sample.any()
    assert not got.is_small_sample.all()
    assert_cohorts_equal(got, expected)


# --- profitability -------------------------------------------------------------------------------


def costs_of(crm, contacts: pd.DataFrame) -> Costs:
    assumed = crm.truth.costs
    return Costs(
        margin_rate=assumed.margin_rate,
        promotion_discount_rate=assumed.promotion_discount_rate,
        return_handling_cost=assumed.return_handling_cost,
        service_contacts=contacts,
    )


def assert_profit_tables(got, expected) -> None:
    pd.testing.assert_frame_equal(got.customers, expected.customers)
    pd.testing.assert_frame_equal(got.outside_window, expected.outside_window)
    counts = ["table", "rows", "customers"]
    pd.testing.assert_frame_equal(got.unmatched_costs[counts], expected.unmatched_costs[counts])
    # the cost of unmatched rows is a sum over partitions: equal to rounding
    np.testing.assert_allclose(got.unmatched_costs["cost"], expected.unmatched_costs["cost"],
                               rtol=1e-12)  # fmt: skip


def test_customer_profitability_of_a_dask_log_is_the_pandas_table(crm):
    costs = costs_of(crm, crm.service_contacts)
    expected = customer_profitability(crm.transactions, costs)
    got = customer_profitability(scattered(crm.transactions, seed=2), costs)
    assert_profit_tables(got, expected)
    assert got.unmatched_costs["rows"].sum() == 0


def test_unmatched_cost_rows_and_a_window_are_counted_once_for_the_whole_base(crm):
    window = {"start": "2024-01-01", "end": "2024-06-30"}
    contacts = crm.service_contacts
    inside = contacts[contacts["timestamp"].between(window["start"], window["end"])]
    stranger = inside.iloc[:3].assign(customer_id=10**9)  # in no partition's log
    costs = costs_of(crm, pd.concat([contacts, stranger], ignore_index=True))
    with pytest.warns(UnmatchedCostsWarning) as pandas_warnings:
        expected = customer_profitability(crm.transactions, costs, **window)
    with pytest.warns(UnmatchedCostsWarning) as dask_warnings:
        got = customer_profitability(scattered(crm.transactions, seed=3), costs, **window)
    assert len(dask_warnings) == len(pandas_warnings) == 1
    assert expected.unmatched_costs["rows"].iloc[0] >= len(stranger)
    assert expected.outside_window["rows"].gt(0).sum() >= 2
    assert_profit_tables(got, expected)


# --- models travel by pickle ---------------------------------------------------------------------


def _contracts(model_class, params: dict[str, float]) -> pd.DataFrame:
    truth = model_class.from_params(**params, unit="year")
    data = truth.simulate(2_000, 8, rng=np.random.default_rng(7))
    return data.assign(channel=np.where(np.arange(len(data)) % 3 == 0, "shop", "web"))


def _fits():
    """One fitted model of each class, with and without a covariate."""
    summary = CDNOW.summary.assign(
        channel=np.where(np.arange(len(CDNOW.summary)) % 2 == 0, "shop", "web")
    )
    repeat = summary[summary["frequency"] > 0]
    calibration = CDNOW.transactions[CDNOW.transactions["timestamp"] <= CDNOW.calibration_end]
    litt = cnbd_summary(calibration, observation_end=CDNOW.calibration_end)
    donations = load_donations()
    sbg = _contracts(ShiftedBetaGeo, {"alpha": 1.0, "beta": 3.0})
    bdw = _contracts(BetaDiscreteWeibull, {"alpha": 1.0, "beta": 3.0, "c": 1.3})
    cases = [
        (BetaGeo, summary, True), (ModifiedBetaGeo, summary, True), (ParetoNBD, summary, True),
        (BetaGeoCNBD, litt, False), (ModifiedBetaGeoCNBD, litt, False),
        (BetaGeoBetaBinom, donations, False), (ShiftedBetaGeo, sbg, True),
        (BetaDiscreteWeibull, bdw, True), (GammaGamma, repeat, True),
    ]  # fmt: skip
    for model_class, data, takes_covariates in cases:
        yield model_class().fit(data), data
        if takes_covariates:
            yield model_class().fit(data, covariates=["channel"]), data


def _scores(model, data: pd.DataFrame) -> np.ndarray:
    if isinstance(model, GammaGamma):
        return model.conditional_expected_spend(data).to_numpy()
    return model.expected_purchases(data, horizon=4).to_numpy()


def test_every_fitted_model_pickles_and_predicts_the_same():
    seen = set()
    for model, data in _fits():
        again = pickle.loads(pickle.dumps(model))
        pd.testing.assert_series_equal(again.params_, model.params_)
        np.testing.assert_array_equal(_scores(again, data), _scores(model, data))
        seen.add((type(model).__name__, any("channel" in name for name in model.params_.index)))
    assert len(seen) == 15  # nine classes, six of them also with a covariate
