"""Lifecycle pushdown equals the pandas path on real SQLite, DuckDB and PostgreSQL.

States, flows and cohort tables must be identical (same values, dtypes and categories).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.datasets import make_crm
from cvalue.errors import DataQualityError, SchemaError
from cvalue.lifecycle import (
    CohortRetention,
    ContractRule,
    InactivityRule,
    ModelRule,
    cohort_retention,
    lifecycle_flows,
    lifecycle_states,
)
from cvalue.lifecycle.sql import (
    sql_cohort_retention,
    sql_lifecycle_flows,
    sql_lifecycle_states,
    sql_lifecycle_tables,
)
from cvalue.metrics import SmallSampleWarning
from cvalue.models import BetaGeo

PERIODS = ("D", "W", "M", "Q", "Y")
WINDOWS = (1, 2, 3, "1D", "10D", "30D", "45D", "90D", "13w", "3M")


def drop(engine: sa.Engine, name: str) -> None:
    sa.Table(name, sa.MetaData()).drop(engine)


def typed_query(name: str, kind: type[sa.types.TypeEngine[object]], *columns: str) -> sa.Select:
    """A select that states the timestamp's type (SQLite keeps dates as text)."""
    table = sa.table(name, sa.column("customer_id"), sa.column("timestamp", kind()),
                     *(sa.column(column) for column in columns))  # fmt: skip
    return sa.select(table)


def assert_same_cohorts(actual: CohortRetention, expected: CohortRetention) -> None:
    pd.testing.assert_series_equal(actual.sizes, expected.sizes, check_exact=True)
    for name in ("active", "shares", "survivors"):
        pd.testing.assert_frame_equal(getattr(actual, name), getattr(expected, name),
                                      check_exact=True)  # fmt: skip
    pd.testing.assert_series_equal(actual.is_small_sample, expected.is_small_sample)
    assert actual.min_customers == expected.min_customers


def warned(compute: Callable[[], CohortRetention]) -> tuple[CohortRetention, list[str]]:
    """The cohorts and the small-sample warnings of one call, each pointing at this file."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cohorts = compute()
    assert all(issubclass(warning.category, SmallSampleWarning) for warning in caught)
    assert all(warning.filename == __file__ for warning in caught)
    return cohorts, [str(warning.message) for warning in caught]


def assert_same_warned_cohorts(
    in_database: Callable[[], CohortRetention], in_pandas: Callable[[], CohortRetention]
) -> None:
    """Equal tables, and the same one warning when some cohort is small (these bases are)."""
    (actual, said), (expected, expected_said) = warned(in_database), warned(in_pandas)
    assert_same_cohorts(actual, expected)
    assert said == expected_said
    assert len(said) == int(expected.is_small_sample.any())


def assert_all_equal(
    engine: sa.Engine, data: pd.DataFrame, *, with_cohorts: bool = True, **options
) -> None:
    """States, flows (and cohort tables) of the database equal those of pandas."""
    source = {key: options.pop(key) for key in ("table", "query") if key in options}
    states = lifecycle_states(data, **options)
    pd.testing.assert_frame_equal(sql_lifecycle_states(engine, **source, **options), states)
    flows = sql_lifecycle_flows(engine, **source, **options)
    pd.testing.assert_frame_equal(flows, lifecycle_flows(states), check_exact=True)
    if with_cohorts:
        assert_same_warned_cohorts(lambda: sql_cohort_retention(engine, **source, **options),
                                   lambda: cohort_retention(states))  # fmt: skip
    if with_cohorts and "rule" in options:  # both from one statement
        both = []
        assert_same_warned_cohorts(
            lambda: both.append(sql_lifecycle_tables(engine, **source, **options)) or both[0][1],
            lambda: cohort_retention(states),
        )
        pd.testing.assert_frame_equal(both[0][0], flows, check_exact=True)


# --- random logs and contracts --------------------------------------------------------------------


@st.composite
def purchase_logs(draw: st.DrawFn) -> pd.DataFrame:
    """A few customers over about a year and a half, from 1969 or 2023; some returns."""
    start = draw(st.sampled_from([dt.datetime(2023, 1, 30), dt.datetime(1969, 11, 3, 9)]))
    ids = draw(st.sampled_from([[7, -2, 30, 4, 11], ["b", "A", "a10", "a9", "Z"]]))
    rows = []
    for customer in ids[: draw(st.integers(1, len(ids)))]:
        for _ in range(draw(st.integers(1, 6))):
            moment = dt.timedelta(
                days=draw(st.integers(0, 540)), seconds=draw(st.integers(0, 86399))
            )
            rows.append((customer, start + moment, 1.5, draw(st.integers(0, 6)) == 0))
    log = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount", "is_return"])
    log.loc[0, "is_return"] = False
    return log


@settings(max_examples=12, deadline=None)
@given(log=purchase_logs(), period=st.sampled_from(PERIODS), window=st.sampled_from(WINDOWS),
       as_dates=st.booleans(), extra_days=st.none() | st.integers(0, 100))  # fmt: skip
def test_random_logs_equal_pandas(engine, load_table, log, period, window, as_dates, extra_days):
    if as_dates:
        log = log.assign(timestamp=log["timestamp"].dt.normalize())
    stored = log.assign(timestamp=log["timestamp"].dt.date) if as_dates else log
    name = load_table(engine, stored)
    try:
        last = log.loc[~log["is_return"], "timestamp"].max().normalize()
        end = None if extra_days is None else last + pd.Timedelta(days=extra_days, hours=5)
        query = typed_query(name, sa.Date if as_dates else sa.DateTime, "amount", "is_return")
        assert_all_equal(engine, log, query=query, period=period, rule=InactivityRule(window),
                         observation_end=end, with_cohorts=period == "M")  # fmt: skip
    finally:
        drop(engine, name)


@st.composite
def contract_tables(draw: st.DrawFn) -> pd.DataFrame:
    rows = []
    for customer in draw(st.sampled_from([[3, 1, 2], ["x", "y"]])):
        for _ in range(draw(st.integers(1, 4))):
            start = pd.Timestamp("2023-01-01") + pd.Timedelta(days=draw(st.integers(0, 500)))
            length = draw(st.none() | st.integers(0, 200))
            end = None if length is None else start + pd.Timedelta(days=length)
            rows.append((customer, start, end))
    return pd.DataFrame(rows, columns=["customer_id", "start", "end"]).astype(
        {"end": "datetime64[ns]"}
    )


@settings(max_examples=10, deadline=None)
@given(contracts=contract_tables(), period=st.sampled_from(PERIODS),
       extra_days=st.integers(0, 300))  # fmt: skip
def test_random_contracts_equal_pandas(engine, load_table, contracts, period, extra_days):
    name = load_table(engine, contracts)
    try:
        table = sa.table(name, sa.column("customer_id"), sa.column("start", sa.DateTime()),
                         sa.column("end", sa.DateTime()))  # fmt: skip
        end = contracts["start"].max() + pd.Timedelta(days=extra_days)
        options = {"period": period, "rule": ContractRule(), "observation_end": end}
        assert_all_equal(engine, contracts, query=sa.select(table), **options,
                         with_cohorts=period == "Q")  # fmt: skip
    finally:
        drop(engine, name)


# --- a synthetic CRM ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crm_log() -> pd.DataFrame:
    return make_crm(250, seed=6).transactions


@pytest.fixture(scope="module")
def crm_table(engine, load_table, crm_log) -> str:
    return load_table(engine, crm_log)


@pytest.mark.parametrize(("period", "window"), [("M", 3), ("W", "30D"), ("Q", 1), ("Y", "13w")])
def test_crm_table_equals_pandas(engine, crm_table, crm_log, period, window):
    assert_all_equal(engine, crm_log, table=crm_table, period=period,
                     rule=InactivityRule(window), observation_end="2024-12-31")  # fmt: skip


def test_crm_default_observation_end_and_rule(engine, crm_table, crm_log):
    states = lifecycle_states(crm_log, period="month", rule=InactivityRule(2))
    pd.testing.assert_frame_equal(
        sql_lifecycle_states(engine, table=crm_table, period="month", rule=InactivityRule(2)),
        states,
    )
    assert_same_warned_cohorts(lambda: sql_cohort_retention(engine, table=crm_table, period="Q"),
                               lambda: cohort_retention(crm_log, period="Q"))  # fmt: skip


def test_small_cohorts_are_flagged_as_in_pandas(engine, crm_table, crm_log):
    # 250 customers over 12 quarters: about 20 a cohort
    with pytest.warns(SmallSampleWarning, match=r"cohort retention: 12 of 12 cohorts have fewer "
                      r"than 100 customers \(2022Q1: \d+, .* and 7 more\)") as caught:  # fmt: skip
        cohorts = sql_cohort_retention(engine, table=crm_table, period="Q")
    assert len(caught) == 1
    assert caught[0].filename == __file__
    assert cohorts.is_small_sample.all()
    with pytest.warns(SmallSampleWarning, match="cohort retention: 12 of 12 cohorts"):
        expected = cohort_retention(crm_log, period="Q")
    assert_same_cohorts(cohorts, expected)
    # a threshold of the user's choosing flags the same cohorts in both
    threshold = int(cohorts.sizes.median())
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        chosen = sql_cohort_retention(engine, table=crm_table, period="Q",
                                      min_customers=threshold)  # fmt: skip
        expected = cohort_retention(crm_log, period="Q", min_customers=threshold)
    assert_same_cohorts(chosen, expected)
    assert chosen.is_small_sample.tolist() == (cohorts.sizes < threshold).tolist()
    assert not sql_cohort_retention(engine, table=crm_table, period="Q",
                                    min_customers=0).is_small_sample.any()  # fmt: skip
    with pytest.raises(SchemaError, match="min_customers must be a whole number >= 0"):
        sql_cohort_retention(engine, table=crm_table, period="Q", min_customers=-5)


def test_a_url_source(engine, crm_table, crm_log):
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name != "postgresql":
        engine.dispose()  # an embedded file accepts one writer: let the URL's engine open it
    flows = sql_lifecycle_flows(url, table=crm_table, period="Q", rule=InactivityRule(2),
                                observation_end="2024-12-31")  # fmt: skip
    expected = lifecycle_flows(lifecycle_states(crm_log, period="Q", rule=InactivityRule(2),
                                                observation_end="2024-12-31"))  # fmt: skip
    pd.testing.assert_frame_equal(flows, expected)


# --- what the pushdown refuses --------------------------------------------------------------------


def test_refusals(engine, crm_table):
    model = BetaGeo.from_params(0.5, 5.0, 0.8, 2.5, unit="week")
    with pytest.raises(SchemaError, match="model rule needs P\\(alive\\)"):
        sql_lifecycle_states(engine, table=crm_table, period="M", rule=ModelRule(model))
    with pytest.raises(SchemaError, match="not 'W-WED'"):
        sql_lifecycle_flows(engine, table=crm_table, period="W-WED", rule=InactivityRule(1))
    with pytest.raises(SchemaError, match="not a valid pandas frequency"):
        sql_cohort_retention(engine, table=crm_table, period="fortnight")
    with pytest.raises(DataQualityError, match="rows after observation_end"):
        sql_lifecycle_flows(engine, table=crm_table, period="M", rule=InactivityRule(1),
                            observation_end="2023-12-31")  # fmt: skip
    with pytest.raises(SchemaError, match="not found"):
        sql_lifecycle_flows(engine, table=crm_table, period="M", rule=ContractRule())


def test_contract_problems_are_counted(engine, load_table):
    contracts = pd.DataFrame({
        "customer_id": [1, 2, 3, 4],
        "start": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-03-01", "2024-05-01"]),
        "end": pd.to_datetime(["2023-12-31", "2024-02-01", "2024-02-28", None]),
    })  # fmt: skip
    name = load_table(engine, contracts)
    try:
        with pytest.raises(DataQualityError, match="'end' is before 'start' in 2 of 4 contracts"):
            sql_lifecycle_flows(engine, table=name, period="M", rule=ContractRule())
        good = sa.table(name, sa.column("customer_id"), sa.column("start", sa.DateTime()),
                        sa.column("end", sa.DateTime()))  # fmt: skip
        query = sa.select(good).where(good.c.customer_id.in_([2, 4]))
        with pytest.raises(DataQualityError, match="after observation_end in 1 of 2 rows"):
            sql_lifecycle_flows(engine, query=query, period="M", rule=ContractRule(),
                                observation_end="2024-03-31")  # fmt: skip
        flows = sql_lifecycle_flows(engine, query=query, period="M", rule=ContractRule())
        # customer 2 from January to 1 February, customer 4 from May on
        assert flows["active"].tolist() == [1, 1, 0, 0, 1]
        assert np.array_equal(flows["lost"], [0, 0, 1, 0, 0])
    finally:
        drop(engine, name)
