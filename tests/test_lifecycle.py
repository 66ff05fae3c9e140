"""Lifecycle states, flows, cohort tables, rates and per-cohort sBG fits.

Hand-built cases pin each rule and state; hypothesis checks the flow identity and compares the
vectorised panel with a plain per-customer loop written from the definitions; make_crm data with
cohorts planted to retain differently checks that the tables and the sBG recover the planted order.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from cvalue.datasets import make_crm
from cvalue.errors import DataQualityError, NotFittedError, SchemaError
from cvalue.lifecycle import (
    STATES,
    CohortRetention,
    ContractRule,
    InactivityRule,
    ModelRule,
    churn_rate,
    cohort_retention,
    fit_cohort_retention,
    lifecycle_flows,
    lifecycle_states,
    merge_contracts,
    retention_rate,
)
from cvalue.metrics import SMALL_SAMPLE, SmallSampleWarning
from cvalue.models import BetaGeo, ShiftedBetaGeo, lr_test
from cvalue.summary import rfm_summary
from cvalue.units import as_duration

# --- helpers --------------------------------------------------------------------------------------


def log_of(rows: dict[object, list[str]]) -> pd.DataFrame:
    """A transaction log from {customer: [dates]}."""
    pairs = [(customer, day) for customer, days in rows.items() for day in days]
    return pd.DataFrame({
        "customer_id": [customer for customer, _ in pairs],
        "timestamp": pd.to_datetime([day for _, day in pairs]),
    })  # fmt: skip


def states_of(frame: pd.DataFrame, customer: object) -> list[str]:
    return frame.loc[frame["customer_id"] == customer, "state"].astype(str).tolist()


def contracts_of(rows: list[tuple[object, str, str | None]]) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": [row[0] for row in rows],
        "start": pd.to_datetime([row[1] for row in rows]),
        "end": pd.to_datetime([row[2] for row in rows]),
    })  # fmt: skip


# --- the inactivity rule --------------------------------------------------------------------------


def test_window_of_periods_counts_periods_without_a_purchase():
    log = log_of({
        "lost then won back": ["2024-01-05", "2024-04-02"],
        "buys on the edge": ["2024-01-05", "2024-03-30"],
        "lapsed": ["2024-03-10"],
    })  # fmt: skip
    states = lifecycle_states(log, period="M", rule=InactivityRule(2), observation_end="2024-04-30")
    assert states_of(states, "lost then won back") == [
        "acquired",
        "inactive",
        "lost",
        "reactivated",
    ]
    # a purchase in the second period without one keeps the customer
    assert states_of(states, "buys on the edge") == ["acquired", "inactive", "retained", "inactive"]
    assert states_of(states, "lapsed") == ["acquired", "inactive"]


def test_window_of_days_purchase_exactly_on_the_edge_keeps_the_customer():
    # daily periods: with a 2-day window, day 1 + 2 is the window's last day
    on_edge = log_of({1: ["2024-01-01", "2024-01-03"]})
    states = lifecycle_states(on_edge, period="D", rule=InactivityRule("2D"))
    assert states_of(states, 1) == ["acquired", "inactive", "retained"]
    one_day_late = log_of({1: ["2024-01-01", "2024-01-04"]})
    states = lifecycle_states(one_day_late, period="D", rule=InactivityRule("2D"))
    assert states_of(states, 1) == ["acquired", "inactive", "lost", "reactivated"]


def test_window_of_days_runs_out_on_a_period_end():
    # 2024-01-31 + 29 days = 2024-02-29, February's last day (a leap year)
    log = log_of({"29 days": ["2024-01-31", "2024-03-01"]})
    states = lifecycle_states(log, period="M", rule=InactivityRule("29D"))
    assert states_of(states, "29 days") == ["acquired", "lost", "reactivated"]
    # with 30 days the window ends on 2024-03-01, the day of the next purchase
    states = lifecycle_states(log, period="M", rule=InactivityRule("30D"))
    assert states_of(states, "29 days") == ["acquired", "inactive", "retained"]


def test_fractional_windows_round_up_to_whole_days():
    # 3 months = 91.31 days: lost once 92 days have passed
    log = log_of({1: ["2024-01-01"], 2: ["2024-01-02"]})
    end = pd.Timestamp("2024-01-01") + pd.Timedelta(days=92)
    states = lifecycle_states(log, period="D", rule=InactivityRule("3M"), observation_end=end)
    assert states_of(states, 1)[-1] == "lost"
    assert states_of(states, 1).count("lost") == 1
    assert "lost" not in states_of(states, 2)


def test_last_period_is_judged_on_the_observation_end():
    log = log_of({1: ["2024-01-10"]})
    # the window of 40 days ends on 2024-02-19; February is judged on 2024-02-15
    states = lifecycle_states(log, period="M", rule=InactivityRule("40D"),
                              observation_end="2024-02-15")  # fmt: skip
    assert states_of(states, 1) == ["acquired", "inactive"]
    states = lifecycle_states(log, period="M", rule=InactivityRule("40D"),
                              observation_end="2024-02-19")  # fmt: skip
    assert states_of(states, 1) == ["acquired", "lost"]


def test_customer_acquired_in_the_last_period():
    log = log_of({1: ["2024-01-10", "2024-02-03"], 2: ["2024-03-31"]})
    states = lifecycle_states(log, period="M", rule=InactivityRule(1))
    assert states_of(states, 2) == ["acquired"]
    assert states.loc[states["customer_id"] == 2, "tenure"].tolist() == [0]
    flows = lifecycle_flows(states)
    assert flows.loc[pd.Period("2024-03", "M"), "acquired"] == 1
    assert flows["active"].tolist() == [1, 1, 1]


def test_returns_are_not_purchases():
    log = log_of({1: ["2024-01-10", "2024-02-03"]}).assign(is_return=[False, True])
    states = lifecycle_states(log, period="M", rule=InactivityRule(1),
                              observation_end="2024-02-29")  # fmt: skip
    assert states_of(states, 1) == ["acquired", "lost"]
    # by default the observation ends on the day of the last purchase, not of the last return
    assert states_of(lifecycle_states(log, period="M", rule=InactivityRule(1)), 1) == ["acquired"]


def test_mapped_columns_and_string_ids():
    log = log_of({"b": ["2024-01-10"], "a": ["2024-02-03"]})
    log = log.rename(columns={"customer_id": "client", "timestamp": "paid_at"})
    from cvalue import Columns

    mapping = Columns(customer_id="client", timestamp="paid_at")
    states = lifecycle_states(log, period="month", rule=InactivityRule(1), columns=mapping)
    assert states["customer_id"].cat.categories.tolist() == ["a", "b"]
    assert states["customer_id"].astype(str).tolist() == ["a", "b", "b"]


def test_other_pandas_periods():
    log = log_of({1: ["2024-03-05", "2024-04-20"]})
    fiscal = lifecycle_states(log, period="Q-MAR", rule=InactivityRule(1))
    # fiscal quarters ending in March: 2024-03-05 is in 2024Q4, 2024-04-20 in 2025Q1
    assert fiscal["period"].astype(str).tolist() == ["2024Q4", "2025Q1"]
    weeks = lifecycle_states(log, period="W-WED", rule=InactivityRule(1))
    assert weeks["period"].iloc[0] == pd.Period("2024-03-05", "W-WED")
    assert len(weeks) == (pd.Period("2024-04-20", "W-WED") - weeks["period"].iloc[0]).n + 1


# --- the contract rule ----------------------------------------------------------------------------


def test_overlapping_and_back_to_back_contracts_merge():
    contracts = contracts_of([
        (1, "2024-01-01", "2024-03-31"),
        (1, "2024-02-15", "2024-04-30"),  # overlaps the first
        (1, "2024-05-01", "2024-05-31"),  # starts the day after the end: back to back
        (1, "2024-07-01", None),  # still running
        (1, "2024-07-10", "2024-07-20"),  # inside the running one
    ])  # fmt: skip
    merged = merge_contracts(contracts)
    assert merged["start"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-01", "2024-07-01"]
    assert merged["end"].iloc[0] == pd.Timestamp("2024-05-31")
    assert pd.isna(merged["end"].iloc[1])
    states = lifecycle_states(contracts, period="M", rule=ContractRule(),
                              observation_end="2024-08-31")  # fmt: skip
    assert states_of(states, 1) == [
        "acquired", "retained", "retained", "retained", "retained", "lost", "reactivated",
        "retained",
    ]  # fmt: skip


def test_contract_gap_inside_one_period_is_no_loss():
    contracts = contracts_of([(1, "2024-01-01", "2024-01-10"), (1, "2024-01-20", "2024-02-10")])
    assert len(merge_contracts(contracts)) == 2  # a gap of nine days: two spells
    states = lifecycle_states(contracts, period="M", rule=ContractRule(),
                              observation_end="2024-03-31")  # fmt: skip
    assert states_of(states, 1) == ["acquired", "retained", "lost"]


def test_contract_ending_after_the_observation_end_and_custom_columns():
    contracts = contracts_of([(5, "2024-01-15", "2025-06-30")]).rename(
        columns={"customer_id": "account", "start": "signed", "end": "expires"}
    )
    rule = ContractRule(customer_id="account", start="signed", end="expires")
    states = lifecycle_states(contracts, period="Q", rule=rule, observation_end="2024-12-31")
    assert states_of(states, 5) == ["acquired", "retained", "retained", "retained"]


def test_contracts_never_have_the_inactive_state():
    contracts = contracts_of([(1, "2024-01-01", "2024-01-31"), (1, "2024-04-01", "2024-04-30")])
    states = lifecycle_states(contracts, period="M", rule=ContractRule(),
                              observation_end="2024-06-30")  # fmt: skip
    assert states_of(states, 1) == ["acquired", "lost", "lost", "reactivated", "lost", "lost"]


# --- the model rule -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bg_model() -> BetaGeo:
    return BetaGeo.from_params(0.5, 5.0, 0.8, 2.5, unit="week")


def test_model_rule_scores_the_history_up_to_each_period_end(bg_model):
    log = log_of({
        1: ["2024-01-03", "2024-01-20", "2024-02-10"],
        2: ["2024-01-08"],
        3: ["2024-01-05", "2024-01-06", "2024-01-07", "2024-01-09", "2024-05-02"],
    })  # fmt: skip
    end = pd.Timestamp("2024-06-30")
    rule = ModelRule(bg_model, threshold=0.6)
    states = lifecycle_states(log, period="M", rule=rule, observation_end=end)
    # the same judgement from cvalue.rfm_summary of the log cut at each period's end
    for month in pd.period_range("2024-01", "2024-06", freq="M"):
        cut = min(month.end_time.normalize(), end)
        seen = log[log["timestamp"] <= cut]
        summary = rfm_summary(seen, observation_end=cut, unit="week")
        alive = bg_model.p_alive(summary)
        bought = set(log.loc[log["timestamp"].dt.to_period("M") == month, "customer_id"])
        rows = states[states["period"] == month].set_index("customer_id")["state"].astype(str)
        for customer, state in rows.items():
            if customer in bought:
                assert state != "lost"
            elif alive[customer] < 0.6:
                assert state == "lost"
            else:
                assert state in ("inactive", "lost")  # lost stays lost until a purchase
    # one-time buyers are never lost under the BG/NBD (P(alive) = 1 without repeat purchases)
    assert "lost" not in states_of(states, 2)
    assert states_of(states, 3) == ["acquired", "lost", "lost", "lost", "reactivated", "inactive"]


def test_model_rule_threshold_one_loses_every_period_without_purchase(bg_model):
    log = log_of({1: ["2024-01-03", "2024-01-20", "2024-03-10"]})
    states = lifecycle_states(log, period="M", rule=ModelRule(bg_model, threshold=1.0))
    assert states_of(states, 1) == ["acquired", "lost", "reactivated"]


def test_model_rule_needs_a_fitted_model_with_a_unit():
    log = log_of({1: ["2024-01-03", "2024-02-20"]})
    with pytest.raises(NotFittedError, match="not fitted"):
        lifecycle_states(log, period="M", rule=ModelRule(BetaGeo()))
    no_unit = BetaGeo.from_params(0.5, 5.0, 0.8, 2.5)
    with pytest.raises(SchemaError, match="time unit"):
        lifecycle_states(log, period="M", rule=ModelRule(no_unit), observation_end="2024-05-01")
    with pytest.raises(SchemaError, match="p_alive"):
        ModelRule(ShiftedBetaGeo())  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="threshold"):
        ModelRule(no_unit, threshold=0.0)


# --- customers table ------------------------------------------------------------------------------


def test_acquisition_dates_start_the_lifecycle():
    log = log_of({1: ["2024-03-10"], 2: ["2024-01-05"]})
    customers = pd.DataFrame(
        {"acquisition_date": pd.to_datetime(["2024-01-20", "2024-01-05", "2024-02-01"])},
        index=pd.Index([1, 2, 3], name="customer_id"),
    )
    states = lifecycle_states(log, period="M", rule=InactivityRule(2), customers=customers,
                              observation_end="2024-04-30")  # fmt: skip
    assert states_of(states, 1) == ["acquired", "inactive", "retained", "inactive"]
    assert states_of(states, 3) == ["acquired", "inactive", "lost"]  # never bought
    assert states.groupby("customer_id", observed=True)["cohort"].first().astype(str).tolist() == [
        "2024-01", "2024-01", "2024-02",
    ]  # fmt: skip


def test_transactions_before_the_acquisition_date_are_an_error():
    log = log_of({1: ["2024-01-10", "2024-03-10"], 2: ["2024-01-05", "2024-01-06"]})
    customers = pd.DataFrame(
        {"acquisition_date": pd.to_datetime(["2024-02-01", "2024-01-06"])}, index=[1, 2]
    )
    with pytest.raises(DataQualityError, match=r"2 of 4 rows before the customer's acquisition"):
        lifecycle_states(log, period="M", rule=InactivityRule(1), customers=customers)
    with pytest.raises(DataQualityError, match=r"in 2 customers \(e.g. customer 1"):
        lifecycle_states(log, period="M", rule=InactivityRule(1), customers=customers)


def test_customers_table_problems():
    log = log_of({1: ["2024-01-10"], 9: ["2024-01-11"]})
    customers = pd.DataFrame({"acquisition_date": pd.to_datetime(["2024-01-01"])}, index=[1])
    with pytest.raises(DataQualityError, match="1 of 2 rows whose customer is not in the"):
        lifecycle_states(log, period="M", rule=InactivityRule(1), customers=customers)
    missing = pd.DataFrame({"acquisition_date": pd.to_datetime([None, "2024-01-01"])}, index=[1, 9])
    with pytest.raises(DataQualityError, match="missing acquisition dates in 1 of 2 rows"):
        lifecycle_states(log, period="M", rule=InactivityRule(1), customers=missing)
    with pytest.raises(SchemaError, match="'acquisition_date' column"):
        lifecycle_states(log, period="M", rule=InactivityRule(1), customers=customers[[]])


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("period", ["5X", "monthly", "ME", "2M", "h", "B", "3D", ""])
def test_periods_that_are_not_valid_pandas_frequencies(period):
    log = log_of({1: ["2024-01-10"]})
    with pytest.raises(SchemaError, match=r"period .* (not a valid pandas frequency|not one cal)"):
        lifecycle_states(log, period=period, rule=InactivityRule(1))


def test_contracts_ending_before_they_start_are_counted():
    contracts = contracts_of([
        (1, "2024-01-01", "2023-12-31"), (2, "2024-01-01", "2024-02-01"),
        (3, "2024-03-01", "2024-02-28"), (4, "2024-01-01", None),
    ])  # fmt: skip
    with pytest.raises(DataQualityError, match=r"'end' is before 'start' in 2 of 4 contracts"):
        lifecycle_states(contracts, period="M", rule=ContractRule())
    with pytest.raises(DataQualityError, match=r"e\.g\. customer 1"):
        merge_contracts(contracts)


def test_other_contract_problems():
    contracts = contracts_of([(1, "2024-01-01", "2024-02-01"), (None, "2024-01-01", None)])
    with pytest.raises(DataQualityError, match="missing values in 1 of 2 contracts"):
        lifecycle_states(contracts, period="M", rule=ContractRule())
    with pytest.raises(SchemaError, match=r"\['finish'\] not found"):
        lifecycle_states(contracts, period="M", rule=ContractRule(end="finish"))
    as_text = contracts.assign(start=contracts["start"].astype(str))
    with pytest.raises(SchemaError, match="not datetime"):
        lifecycle_states(as_text, period="M", rule=ContractRule())
    late = contracts_of([(1, "2024-01-01", None), (2, "2024-06-01", None)])
    with pytest.raises(DataQualityError, match="after observation_end in 1 of 2 rows"):
        lifecycle_states(late, period="M", rule=ContractRule(), observation_end="2024-03-31")


def test_transaction_problems():
    log = log_of({1: ["2024-01-10", "2024-05-01"]})
    with pytest.raises(DataQualityError, match="1 of 2 rows after observation_end"):
        lifecycle_states(log, period="M", rule=InactivityRule(1), observation_end="2024-03-31")
    with pytest.raises(DataQualityError, match="missing timestamps in 1 of 2 rows"):
        lifecycle_states(log.assign(timestamp=[log["timestamp"][0], pd.NaT]), period="M",
                         rule=InactivityRule(1))  # fmt: skip
    with pytest.raises(SchemaError, match=r"InactivityRule, ContractRule or ModelRule"):
        lifecycle_states(log, period="M", rule="inactivity")  # type: ignore[arg-type]


@pytest.mark.parametrize("window", [0, -2, True, 1.5, "0D", "soon"])
def test_invalid_windows(window):
    with pytest.raises(SchemaError, match=r"window|duration"):
        InactivityRule(window)


# --- panel layout and memory ----------------------------------------------------------------------


def test_panel_uses_codes():
    crm = make_crm(300, seed=4)
    states = lifecycle_states(crm.transactions, period="M", rule=InactivityRule(3),
                              observation_end=crm.truth.observation_end)  # fmt: skip
    for name in ("customer_id", "period", "cohort", "state"):
        assert isinstance(states[name].dtype, pd.CategoricalDtype)
    assert states["tenure"].dtype == np.int32
    assert states["period"].cat.codes.dtype == np.int8
    assert states["customer_id"].cat.codes.dtype == np.int16
    # well under 16 bytes a row: 1M customers x 36 months stays in the hundreds of MB
    per_row = (states.memory_usage(deep=True).sum() - 300 * 8) / len(states)
    assert per_row < 12
    n_periods = 36 - states.groupby("customer_id", observed=True)["cohort"].first().cat.codes
    assert len(states) == int(n_periods.sum())
    assert list(states["state"].cat.categories) == list(STATES)


def test_flows_refuse_a_panel_cut_by_period():
    log = log_of({1: ["2024-01-10", "2024-03-02"], 2: ["2024-02-11"]})
    states = lifecycle_states(log, period="M", rule=InactivityRule(1))
    with pytest.raises(SchemaError, match="every period from acquisition on"):
        lifecycle_flows(states[states["period"] != pd.Period("2024-02", "M")])
    with pytest.raises(SchemaError, match="states need the columns"):
        lifecycle_flows(states.drop(columns="cohort"))
    # whole customers may be left out, and rows may come in any order
    subset = states[states["customer_id"] == 1].iloc[::-1]
    assert lifecycle_flows(subset)["active"].tolist() == [1, 0, 1]


# --- hypothesis: the identity, one acquisition each, and a plain reference ------------------------


@st.composite
def purchase_logs(draw: st.DrawFn) -> pd.DataFrame:
    """A few customers with purchases (and some returns) over about a year and a half."""
    start = draw(st.sampled_from([dt.datetime(2023, 1, 30), dt.datetime(1969, 11, 3, 9)]))
    rows = []
    for customer in range(draw(st.integers(1, 6))):
        for _ in range(draw(st.integers(1, 6))):
            moment = dt.timedelta(
                days=draw(st.integers(0, 540)), seconds=draw(st.integers(0, 86399))
            )
            rows.append((customer * 7 - 3, start + moment, draw(st.integers(0, 6)) == 0))
    log = pd.DataFrame(rows, columns=["customer_id", "timestamp", "is_return"])
    if log["is_return"].all():
        log.loc[0, "is_return"] = False
    return log


PERIODS = ("D", "W", "M", "Q", "Y", "W-WED", "Q-MAR")
windows = st.integers(1, 4) | st.sampled_from(["1D", "10D", "30D", "45D", "90D", "13w", "3M"])


def reference_states(log: pd.DataFrame, period: str, window, end: pd.Timestamp) -> pd.DataFrame:
    """The inactivity rule as its definition reads, one customer at a time."""
    purchases = log[~log["is_return"]] if "is_return" in log else log
    if not isinstance(window, int):
        window = pd.Timedelta(days=math.ceil(as_duration(window).days))
    rows = []
    for customer, group in purchases.groupby("customer_id"):
        days = np.unique(group["timestamp"].dt.normalize().to_numpy())
        periods = pd.period_range(pd.Timestamp(days[0]).to_period(period), end.to_period(period))
        last_days = periods.end_time.normalize().to_numpy()
        # the last purchase on or before each period's last day, and purchases in the period
        last = days[np.searchsorted(days, last_days, side="right") - 1]
        bought = pd.DatetimeIndex(days).to_period(period)
        has_purchase = periods.isin(bought)
        if isinstance(window, int):
            gaps = periods.asi8 - pd.DatetimeIndex(last).to_period(period).asi8
            is_expired = gaps >= window
        else:
            is_expired = np.minimum(last_days, end.to_datetime64()) - last >= window
        was_lost = False
        for tenure, current in enumerate(periods):
            is_lost = not has_purchase[tenure] and bool(is_expired[tenure])
            if tenure == 0:
                state = "acquired"
            elif has_purchase[tenure]:
                state = "reactivated" if was_lost else "retained"
            else:
                state = "lost" if is_lost else "inactive"
            rows.append((customer, current, tenure, state))
            was_lost = is_lost
    return pd.DataFrame(rows, columns=["customer_id", "period", "tenure", "state"])


@settings(max_examples=60, deadline=None)
@given(log=purchase_logs(), period=st.sampled_from(PERIODS), window=windows,
       extra_days=st.none() | st.integers(0, 100))  # fmt: skip
def test_random_logs_follow_the_definitions(log, period, window, extra_days):
    last = log.loc[~log["is_return"], "timestamp"].max().normalize()
    end = last if extra_days is None else last + pd.Timedelta(days=extra_days)
    states = lifecycle_states(log, period=period, rule=InactivityRule(window),
                              observation_end=None if extra_days is None else end)  # fmt: skip
    expected = reference_states(log, period, window, end)
    assert states["customer_id"].astype(np.int64).tolist() == expected["customer_id"].tolist()
    assert states["period"].tolist() == expected["period"].tolist()
    assert states["tenure"].tolist() == expected["tenure"].tolist()
    assert states["state"].astype(str).tolist() == expected["state"].tolist()
    check_flows(states)


def check_flows(states: pd.DataFrame) -> None:
    """The identity every period, one acquisition per customer, totals that add up."""
    flows = lifecycle_flows(states)
    previous = flows["active"].shift(1, fill_value=0)
    identity = previous + flows["acquired"] + flows["reactivated"] - flows["lost"]
    assert (flows["active"] == identity).all()
    per_customer = states[states["state"] == "acquired"].groupby("customer_id", observed=False)
    assert (per_customer.size() == 1).all()
    assert flows["acquired"].sum() == states["customer_id"].nunique()
    assert (flows["active"] + flows["dormant"] == flows["acquired"].cumsum()).all()
    assert (flows[["acquired", "retained", "inactive", "reactivated"]].sum(axis=1)
            == flows["active"]).all()  # fmt: skip


@st.composite
def contract_tables(draw: st.DrawFn) -> pd.DataFrame:
    rows = []
    for customer in range(draw(st.integers(1, 5))):
        for _ in range(draw(st.integers(1, 4))):
            start = pd.Timestamp("2023-01-01") + pd.Timedelta(days=draw(st.integers(0, 500)))
            length = draw(st.none() | st.integers(0, 200))
            end = None if length is None else start + pd.Timedelta(days=length)
            rows.append((customer, start, end))
    return pd.DataFrame(rows, columns=["customer_id", "start", "end"]).astype(
        {"end": "datetime64[ns]"}
    )


def reference_contract_states(contracts: pd.DataFrame, period: str, end: pd.Timestamp):
    """The contract rule as its definition reads: covered for a day of the period or lost."""
    rows = []
    for customer, group in contracts.groupby("customer_id"):
        periods = pd.period_range(group["start"].min().to_period(period), end.to_period(period))
        first = periods.start_time.to_numpy()[:, None]
        last = periods.end_time.normalize().to_numpy()[:, None]
        ends = group["end"].fillna(pd.Timestamp.max.normalize()).to_numpy()[None, :]
        is_covered = ((group["start"].to_numpy()[None, :] <= last) & (ends >= first)).any(axis=1)
        for tenure, current in enumerate(periods):
            if tenure == 0:
                state = "acquired"
            elif is_covered[tenure]:
                state = "reactivated" if not is_covered[tenure - 1] else "retained"
            else:
                state = "lost"
            rows.append((customer, current, state))
    return pd.DataFrame(rows, columns=["customer_id", "period", "state"])


@settings(max_examples=40, deadline=None)
@given(contracts=contract_tables(), period=st.sampled_from(PERIODS),
       extra_days=st.integers(0, 300))  # fmt: skip
def test_random_contracts_follow_the_definitions(contracts, period, extra_days):
    end = contracts["start"].max() + pd.Timedelta(days=extra_days)
    states = lifecycle_states(contracts, period=period, rule=ContractRule(), observation_end=end)
    expected = reference_contract_states(contracts, period, end)
    assert states["period"].tolist() == expected["period"].tolist()
    assert states["state"].astype(str).tolist() == expected["state"].tolist()
    check_flows(states)
    merged = merge_contracts(contracts)
    # spells are separated by at least one uncovered day, and cover what the contracts cover
    same = merged["customer_id"].to_numpy()[1:] == merged["customer_id"].to_numpy()[:-1]
    gaps = merged["start"].to_numpy()[1:][same] - merged["end"].to_numpy()[:-1][same]
    assert (gaps > np.timedelta64(1, "D")).all()
    days = pd.date_range(contracts["start"].min(), end, freq="D")
    for customer, group in contracts.groupby("customer_id"):
        spells = merged[merged["customer_id"] == customer]
        assert (covered(group, days) == covered(spells, days)).all()


def covered(table: pd.DataFrame, days: pd.DatetimeIndex) -> np.ndarray:
    ends = table["end"].fillna(days.max()).to_numpy()
    starts = table["start"].to_numpy()
    values = days.to_numpy()[:, None]
    return ((values >= starts) & (values <= ends)).any(axis=1)


# --- rates ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crm_states() -> pd.DataFrame:
    """600 customers over 36 months: early periods, monthly cohorts and late tenures are small."""
    crm = make_crm(600, seed=2)
    return lifecycle_states(crm.transactions, period="M", rule=InactivityRule(3),
                            observation_end=crm.truth.observation_end)  # fmt: skip


def test_retention_rate_by_period_is_crr_of_the_flows(crm_states):
    flows = lifecycle_flows(crm_states)
    with pytest.warns(SmallSampleWarning, match="retention rate by period: 11 of 35 periods"):
        rates = retention_rate(crm_states)
    assert rates.index.equals(flows.index[1:])
    start = flows["active"].shift(1).iloc[1:].astype(np.int64)
    new = (flows["acquired"] + flows["reactivated"]).iloc[1:]
    assert (rates["customers_start"] == start).all()
    assert (rates["customers_end"] == flows["active"].iloc[1:]).all()
    assert (rates["new"] == new).all()
    crr = (rates["customers_end"] - rates["new"]) / rates["customers_start"]
    np.testing.assert_allclose(rates["rate"], crr, rtol=1e-15)
    assert (rates["lost"] == flows["lost"].iloc[1:]).all()


@pytest.mark.parametrize("interval", ["wilson", "exact"])
def test_intervals_match_scipy(crm_states, interval):
    with pytest.warns(SmallSampleWarning, match="retention rate by tenure"):
        rates = retention_rate(crm_states, by="tenure", level=0.9, interval=interval)
    scipy_method = "wilson" if interval == "wilson" else "exact"
    for _, row in rates.iterrows():
        expected = stats.binomtest(int(row["retained"]), int(row["customers_start"])).proportion_ci(
            0.9, method=scipy_method
        )
        assert row["ci_lower"] == pytest.approx(expected.low, abs=1e-12)
        assert row["ci_upper"] == pytest.approx(expected.high, abs=1e-12)
        assert row["ci_lower"] <= row["rate"] <= row["ci_upper"]
    with pytest.warns(SmallSampleWarning, match="churn rate by tenure"):
        churn = churn_rate(crm_states, by="tenure", level=0.9, interval=interval)
    np.testing.assert_allclose(churn["rate"], 1 - rates["rate"], rtol=0, atol=1e-15)
    assert churn["is_small_sample"].equals(rates["is_small_sample"])
    np.testing.assert_allclose(churn["ci_lower"], 1 - rates["ci_upper"], rtol=0, atol=1e-12)


def test_rates_by_cohort_and_tenure_add_up(crm_states):
    # every grouping of this small base has cells of fewer than 100 customers
    with pytest.warns(SmallSampleWarning):
        by_period = retention_rate(crm_states)
    for by in ("cohort", "tenure", ["cohort", "tenure"]):
        with pytest.warns(SmallSampleWarning):
            table = churn_rate(crm_states, by=by)
        assert table["customers_start"].sum() == by_period["customers_start"].sum()
        assert table["lost"].sum() == by_period["lost"].sum()
    with pytest.warns(SmallSampleWarning, match="cohort and tenure: 630 of 630 cells"):
        both = retention_rate(crm_states, by=["cohort", "tenure"])
    assert both.index.names == ["cohort", "tenure"]
    # with a 3-month window nobody is lost before the third month after acquisition
    with pytest.warns(SmallSampleWarning):
        tenure = retention_rate(crm_states, by="tenure")
    assert (tenure.loc[[1, 2], "rate"] == 1.0).all()
    assert tenure.index.min() == 1


def test_rate_options_are_checked(crm_states):
    with pytest.raises(SchemaError, match="by must be"):
        retention_rate(crm_states, by="segment")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="interval must be"):
        retention_rate(crm_states, interval="normal")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="level"):
        churn_rate(crm_states, level=95)


# --- cohort tables --------------------------------------------------------------------------------


def test_cohort_table_of_a_log_counts_purchases_per_period():
    log = log_of({1: ["2024-01-05", "2024-03-02"], 2: ["2024-01-10", "2024-02-11"],
                  3: ["2024-02-03"]})  # fmt: skip
    with pytest.warns(SmallSampleWarning, match=r"cohort retention: 2 of 2 cohorts have fewer "
                      r"than 100 customers \(2024-01: 2, 2024-02: 1\)"):  # fmt: skip
        table = cohort_retention(log, period="M")
    assert isinstance(table, CohortRetention)
    assert table.sizes.tolist() == [2, 1]
    assert table.active.loc[pd.Period("2024-01", "M")].tolist() == [2, 1, 1]
    assert table.survivors.loc[pd.Period("2024-01", "M")].tolist() == [2, 1, 0]
    assert table.active.iloc[1].isna().tolist() == [False, False, True]
    np.testing.assert_allclose(table.survival.iloc[0], [1.0, 0.5, 0.0])
    with pytest.raises(SchemaError, match="period="):
        cohort_retention(log)
    states = lifecycle_states(log, period="M", rule=InactivityRule(1))
    with pytest.raises(SchemaError, match="states panel"):
        cohort_retention(states, period="M")


def test_cohort_table_agrees_with_the_flows(crm_states):
    with pytest.warns(SmallSampleWarning, match="36 of 36 cohorts"):
        table = cohort_retention(crm_states)
    flows = lifecycle_flows(crm_states)
    acquired = flows["acquired"][flows["acquired"] > 0]
    assert table.sizes.tolist() == acquired.tolist()
    active = table.active.to_numpy(dtype=np.float64, na_value=np.nan)
    survivors = table.survivors.to_numpy(dtype=np.float64, na_value=np.nan)
    # active customers in a period = the cohort table's anti-diagonal
    codes = table.active.index.asi8 - flows.index.asi8[0]
    for position, count in enumerate(flows["active"]):
        ages = position - codes
        cells = [active[row, age] for row, age in enumerate(ages) if age >= 0]
        assert np.nansum(cells) == count
    with np.errstate(invalid="ignore"):
        assert (np.diff(survivors, axis=1)[~np.isnan(np.diff(survivors, axis=1))] <= 0).all()
    assert ((survivors <= active) | np.isnan(active)).all()


# --- sBG per cohort and the planted cohorts of make_crm -------------------------------------------


OBSERVATION_END = "2024-06-30"
PLANTED_SBG = {"2023-01": (1.0, 3.0), "2023-04": (1.0, 1.5), "2023-07": (2.0, 2.0)}


def monthly_contracts(seed: int, n_customers: int = 400) -> pd.DataFrame:
    """Back-to-back monthly contracts; each cohort renews as an sBG with its own parameters."""
    rng = np.random.default_rng(seed)
    rows = []
    for number, (month, (alpha, beta)) in enumerate(PLANTED_SBG.items()):
        theta = rng.beta(alpha, beta, n_customers)
        durations = np.minimum(rng.geometric(theta), 30)  # months under contract
        for customer, duration in enumerate(durations):
            for offset in range(duration):
                current = pd.Period(month, "M") + offset
                if current > pd.Period(OBSERVATION_END, "M"):
                    break  # not signed yet at the observation end
                rows.append((number * n_customers + customer, current.start_time,
                             current.end_time.normalize()))  # fmt: skip
    return pd.DataFrame(rows, columns=["customer_id", "start", "end"])


def test_per_cohort_fit_equals_fit_survivors_and_lr_test():
    contracts = monthly_contracts(seed=8)
    states = lifecycle_states(contracts, period="M", rule=ContractRule(),
                              observation_end=OBSERVATION_END)  # fmt: skip
    fit = fit_cohort_retention(states, horizon_periods=12)
    assert list(fit.cohorts) == list(PLANTED_SBG)
    survivors = cohort_retention(states).survivors.astype("float64")
    shared = ShiftedBetaGeo().fit_survivors(survivors)
    per_cohort = ShiftedBetaGeo().fit_survivors(survivors, shared=False)
    assert fit.shared.log_likelihood_ == pytest.approx(shared.log_likelihood_, rel=1e-9)
    np.testing.assert_allclose(fit.shared.params_, shared.params_, rtol=1e-4)
    for label, model in fit.cohorts.items():
        child = per_cohort.cohorts_[str(pd.Period(label, "M"))]
        assert model.log_likelihood_ == pytest.approx(child.log_likelihood_, rel=1e-9)
    test = lr_test(shared, per_cohort)
    assert fit.test.df == test.df == 4
    assert fit.test.statistic == pytest.approx(test.statistic, rel=1e-6)
    assert fit.test.p_value < 1e-6
    # the planted mean churn alpha / (alpha + beta): 0.25, 0.4, 0.5
    churn = fit.params["alpha"] / (fit.params["alpha"] + fit.params["beta"])
    np.testing.assert_allclose(churn, [0.25, 0.4, 0.5], atol=0.06)
    assert fit.projected[12].is_monotonic_decreasing


@pytest.fixture(scope="module")
def planted():
    crm = make_crm(3000, seed=11, cohort_dropout_trend=1.0)
    states = lifecycle_states(crm.transactions, period="M", rule=InactivityRule(3),
                              observation_end=crm.truth.observation_end)  # fmt: skip
    return crm, states


def test_cohort_table_recovers_the_planted_order(planted):
    crm, states = planted
    assert crm.truth.cohort_dropout_trend > 0  # later cohorts drop out sooner
    # monthly cohorts of about 83 customers: small one by one, so they are pooled by year below
    with pytest.warns(SmallSampleWarning, match="36 of 36 cohorts"):
        table = cohort_retention(states)
    # the share active at ages 3-8 months, over each acquisition year's monthly cohorts
    weights = table.sizes.to_numpy(dtype=np.float64)[:, None]
    shares = table.shares.loc[:, 3:8]
    by_year = (shares * weights).groupby(shares.index.year).sum()
    by_year = by_year.div(pd.Series(weights[:, 0], index=shares.index).groupby(
        shares.index.year).sum(), axis=0)  # fmt: skip
    for age in range(3, 9):
        assert by_year[age].is_monotonic_decreasing, by_year[age]
        assert by_year[age].iloc[0] - by_year[age].iloc[-1] > 0.05


def test_per_cohort_sbg_recovers_the_order_and_rejects_shared_parameters(planted):
    _, states = planted
    fit = fit_cohort_retention(states, cohort_period="Y", horizon_periods=24)
    assert list(fit.params.index.astype(str)) == ["2022", "2023", "2024"]
    assert fit.excluded == ()
    for age in (6, 12, 24):
        assert fit.projected[age].is_monotonic_decreasing, fit.projected[age]
    assert fit.test.df == 4
    assert fit.test.p_value < 1e-3
    projected = fit.cohorts["2023"].survival(np.arange(25.0))
    np.testing.assert_allclose(fit.projected.loc[pd.Period("2023", "Y")], projected)
    assert (fit.params["lost"] > 0).all()


def test_too_few_cohorts_to_compare():
    log = log_of({1: ["2024-01-05"], 2: ["2024-01-10", "2024-02-11"]})
    states = lifecycle_states(log, period="M", rule=InactivityRule(1))
    with pytest.raises(DataQualityError, match="at least two are needed"):
        fit_cohort_retention(states)
    with pytest.raises(SchemaError, match="whole periods"):
        fit_cohort_retention(lifecycle_states(log, period="W", rule=InactivityRule(1)),
                             cohort_period="M")  # fmt: skip


# --- small samples: fewer than min_customers customers in a cell ----------------------------------


def cohort_log(sizes: dict[str, int], months_active: int) -> pd.DataFrame:
    """Customers acquired in each month of ``sizes``, buying monthly for ``months_active``."""
    rows, number = [], 0
    for month, size in sizes.items():
        days = [(pd.Period(month, "M") + offset).start_time + pd.Timedelta(days=4)
                for offset in range(months_active)]  # fmt: skip
        rows += [(number + customer, day) for customer in range(size) for day in days]
        number += size
    return pd.DataFrame(rows, columns=["customer_id", "timestamp"])


def test_rates_and_cohorts_on_few_customers_warn_once_and_flag():
    # 150 customers from January, 40 from February; each buys three months, then is lost
    log = cohort_log({"2024-01": 150, "2024-02": 40}, months_active=3)
    states = lifecycle_states(log, period="M", rule=InactivityRule(1),
                              observation_end="2024-05-31")  # fmt: skip
    with pytest.warns(SmallSampleWarning) as caught:
        by_cohort = retention_rate(states, by="cohort")
    assert len(caught) == 1  # one warning per call, not one per cell
    message = str(caught[0].message)
    assert message.startswith("retention rate by cohort: 1 of 2 cohorts have fewer than 100 "
                              "customers (2024-02: 40)")  # fmt: skip
    assert "Pool them into longer periods" in message
    assert "min_customers=" in message
    assert caught[0].filename == __file__
    # February's 40 customers are 120 customer-periods at risk: a cohort counts its customers
    assert by_cohort["customers_start"].tolist() == [450, 120]
    assert by_cohort["customers"].tolist() == [150, 40]
    assert by_cohort["is_small_sample"].tolist() == [False, True]
    with pytest.warns(SmallSampleWarning, match=r"churn rate by period: 1 of 4 periods have "
                      r"fewer than 100 customers \(2024-05: 40\)"):  # fmt: skip
        by_period = churn_rate(states)
    assert by_period["is_small_sample"].tolist() == [False, False, False, True]
    with pytest.warns(SmallSampleWarning, match=r"cohort retention: 1 of 2 cohorts have fewer "
                      r"than 100 customers \(2024-02: 40\).*coarser period="):  # fmt: skip
        cohorts = cohort_retention(states)
    assert cohorts.is_small_sample.tolist() == [False, True]
    assert cohorts.is_small_sample.index.equals(cohorts.sizes.index)
    assert cohorts.min_customers == SMALL_SAMPLE


def test_rates_and_cohorts_on_enough_customers_do_not_warn():
    # warnings are errors in the tests: any warning here fails the test
    log = cohort_log({"2024-01": 100, "2024-02": 100}, months_active=3)
    # up to April: later, January's customers are all lost and none is at risk at tenure 4
    states = lifecycle_states(log, period="M", rule=InactivityRule(1),
                              observation_end="2024-04-30")  # fmt: skip
    for by in ("period", "cohort", "tenure"):
        assert not retention_rate(states, by=by)["is_small_sample"].any()
        assert not churn_rate(states, by=by)["is_small_sample"].any()
    assert not cohort_retention(states).is_small_sample.any()
    # another threshold: 100 customers are too few for 101, and 40 enough for 40
    with pytest.warns(SmallSampleWarning, match="2 of 2 cohorts have fewer than 101"):
        assert cohort_retention(states, min_customers=101).is_small_sample.all()
    few = lifecycle_states(cohort_log({"2024-01": 40}, months_active=2), period="M",
                           rule=InactivityRule(1))  # fmt: skip
    assert not retention_rate(few, min_customers=40)["is_small_sample"].any()
    with pytest.raises(SchemaError, match="min_customers must be a whole number >= 0"):
        retention_rate(states, min_customers=-1)
    with pytest.raises(SchemaError, match="min_customers must be a whole number >= 0"):
        cohort_retention(states, min_customers=99.5)  # type: ignore[arg-type]


def test_per_cohort_fit_on_few_customers_warns_and_flags():
    states = lifecycle_states(monthly_contracts(seed=8, n_customers=60), period="M",
                              rule=ContractRule(), observation_end=OBSERVATION_END)  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_cohort_retention(states)
    # one warning for the call: the models' own warning on each small fit is not repeated
    assert [warning.category for warning in caught] == [SmallSampleWarning]
    expected = (r"sBG per cohort: 3 of 3 fitted cohorts have fewer than 100 customers "
                r"\(2023-01: 60, 2023-04: 60, 2023-07: 60\).*cohort_period=")  # fmt: skip
    assert re.match(expected, str(caught[0].message))
    assert caught[0].filename == __file__
    assert fit.params["is_small_sample"].tolist() == [True, True, True]
    accepted = fit_cohort_retention(states, min_customers=60)  # no warning: they are errors here
    assert not accepted.params["is_small_sample"].any()
    pd.testing.assert_frame_equal(accepted.params, fit.params.assign(is_small_sample=False))


def customers_at_risk(states: pd.DataFrame, by: str | list[str]) -> pd.Series:
    """Distinct customers at the start of some period of each group, from the definitions."""
    previous = states.groupby("customer_id", observed=True)["state"].shift()
    is_at_risk = (states["tenure"] > 0) & (previous.astype(object) != "lost")
    counted = states[is_at_risk].groupby(by, observed=True)["customer_id"].nunique()
    return pd.Series(counted.to_numpy(), index=[str(label) for label in counted.index])


@settings(max_examples=40, deadline=None)
@given(log=purchase_logs(), period=st.sampled_from(PERIODS), window=windows,
       by=st.sampled_from(["period", "cohort", "tenure", ["cohort", "tenure"]]),
       min_customers=st.integers(0, 8))  # fmt: skip
def test_the_flag_is_exactly_the_cells_below_the_threshold(log, period, window, by,
                                                           min_customers):  # fmt: skip
    states = lifecycle_states(log, period=period, rule=InactivityRule(window))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rates = retention_rate(states, by=by, min_customers=min_customers)
        cohorts = cohort_retention(states, min_customers=min_customers)
    counted = customers_at_risk(states, by)
    labels = [str(label) for label in rates.index]
    expected = counted.reindex(labels, fill_value=0).to_numpy()
    np.testing.assert_array_equal(rates["customers"].to_numpy(), expected)
    np.testing.assert_array_equal(rates["is_small_sample"], expected < min_customers)
    np.testing.assert_array_equal(cohorts.is_small_sample, cohorts.sizes < min_customers)
    # one warning per call that has a small cell, none otherwise
    flagged = [rates["is_small_sample"].any(), cohorts.is_small_sample.any()]
    assert len(caught) == sum(flagged)
    assert all(issubclass(warning.category, SmallSampleWarning) for warning in caught)
