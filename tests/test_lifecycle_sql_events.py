"""Flows and cohort tables counted from per-customer events in SQL equal the pandas path.

``sql_lifecycle_flows`` and ``sql_cohort_retention`` count each customer's acquisitions,
retentions, reactivations and new losses over its activity rows (no panel of every period); they
must equal ``lifecycle_flows(lifecycle_states(...))`` and ``cohort_retention(...)`` for every
period, window kind and observation end, including an observation end inside a period.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.lifecycle import (
    ContractRule,
    InactivityRule,
    cohort_retention,
    lifecycle_flows,
    lifecycle_states,
)
from cvalue.lifecycle.sql import sql_cohort_retention, sql_lifecycle_flows
from cvalue.lifecycle.sql_events import _grain_of_day
from cvalue.purchases import grain_index
from cvalue.units import TimeUnit
from tests.test_lifecycle_sql import (
    PERIODS,
    WINDOWS,
    assert_same_cohorts,
    contract_tables,
    drop,
    purchase_logs,
)


def assert_events_equal(source: sa.Engine | sa.Connection, data: pd.DataFrame, **options) -> None:
    """Flows and cohorts (every cohort kept, none flagged) of the database equal pandas'."""
    query = options.pop("query")
    states = lifecycle_states(data, **options)
    flows = sql_lifecycle_flows(source, query=query, **options)
    pd.testing.assert_frame_equal(flows, lifecycle_flows(states), check_exact=True)
    cohorts = sql_cohort_retention(source, query=query, min_customers=0, **options)
    assert_same_cohorts(cohorts, cohort_retention(states, min_customers=0))


# --- random logs and contracts, every period and window kind --------------------------------------


@contextmanager
def stored(engine: sa.Engine, load_table, frame: pd.DataFrame) -> Iterator[sa.Select]:
    """The frame as a new table, read by a select that types its timestamps (SQLite: text)."""
    name = load_table(engine, frame)
    typed = [
        sa.column(column, sa.DateTime()) if kind.kind == "M" else sa.column(column)
        for column, kind in frame.dtypes.items()
    ]
    try:
        yield sa.select(sa.table(name, *typed))
    finally:
        drop(engine, name)


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)
@settings(max_examples=80, deadline=None)
@given(log=purchase_logs(), period=st.sampled_from(PERIODS), window=st.sampled_from(WINDOWS),
       extra_days=st.none() | st.integers(0, 400), hours=st.integers(0, 23))  # fmt: skip
def test_random_logs_equal_pandas(engine, load_table, log, period, window, extra_days, hours):
    last = log.loc[~log["is_return"], "timestamp"].max().normalize()
    end = None if extra_days is None else last + pd.Timedelta(days=extra_days, hours=hours)
    with stored(engine, load_table, log) as query, engine.connect() as connection:
        # a connection of the caller's is a source too
        assert_events_equal(connection, log, query=query, period=period,
                            rule=InactivityRule(window), observation_end=end)  # fmt: skip


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)
@settings(max_examples=30, deadline=None)
@given(contracts=contract_tables(), period=st.sampled_from(PERIODS),
       extra_days=st.integers(0, 300))  # fmt: skip
def test_random_contracts_equal_pandas(engine, load_table, contracts, period, extra_days):
    end = contracts["start"].max() + pd.Timedelta(days=extra_days)
    with stored(engine, load_table, contracts) as query:
        assert_events_equal(engine, contracts, query=query, period=period, rule=ContractRule(),
                            observation_end=end)  # fmt: skip


# --- an observation end inside a period -----------------------------------------------------------

CUT_LOG = pd.DataFrame({
    "customer_id": [1, 1, 2, 3, 3, 4],
    "timestamp": pd.to_datetime(["2024-01-10", "2024-05-20", "2024-04-30", "2024-02-01",
                                 "2024-06-03", "2024-05-12"]),
})  # fmt: skip


@pytest.fixture(scope="module")
def cut_query(engine, load_table):
    with stored(engine, load_table, CUT_LOG) as query:
        yield query


@pytest.mark.parametrize(
    ("observation_end", "dormant", "lost"),
    [
        # 30 days after the last purchase: 1 lost on 9 February (back in May), 3 on 2 March
        # (back in June), 2 on 30 May; in June, 4 on 11 June and 1 on 19 June, each only when the
        # observation end has reached that day
        ("2024-06-12", [0, 1, 2, 2, 2, 2], [0, 1, 1, 0, 1, 1]),
        ("2024-06-18", [0, 1, 2, 2, 2, 2], [0, 1, 1, 0, 1, 1]),
        ("2024-06-19", [0, 1, 2, 2, 2, 3], [0, 1, 1, 0, 1, 2]),
        ("2024-06-30", [0, 1, 2, 2, 2, 3], [0, 1, 1, 0, 1, 2]),
    ],
)
def test_an_observation_end_inside_the_month(engine, cut_query, observation_end, dormant, lost):
    options = {"period": "M", "rule": InactivityRule("30D"), "observation_end": observation_end}
    assert_events_equal(engine, CUT_LOG, query=cut_query, **options)
    flows = sql_lifecycle_flows(engine, query=cut_query, **options)
    assert flows.index.astype(str).tolist() == [f"2024-0{month}" for month in range(1, 7)]
    assert flows["dormant"].tolist() == dormant
    assert flows["lost"].tolist() == lost
    assert flows["active"].iloc[-1] == 4 - dormant[-1]


@pytest.mark.parametrize("observation_end", ["2024-06-05", "2024-06-09", "2024-06-12"])
@pytest.mark.parametrize("window", [1, 2, "7D", "10D", "30D"])
def test_an_observation_end_inside_the_week(engine, cut_query, observation_end, window):
    # the week of 3 June runs to Sunday 9 June: the end cuts it, or ends it
    assert_events_equal(engine, CUT_LOG, query=cut_query, period="W",
                        rule=InactivityRule(window), observation_end=observation_end)  # fmt: skip


# --- the grain of a day number --------------------------------------------------------------------


@pytest.fixture(scope="module")
def day_table(engine, load_table):
    # every day of 1968 to 1972 and of 2023 to 2025, the month ends of four centuries (and the
    # first days after them, below), random days from 1805 to 2189
    month_ends = pd.date_range("1800-01-31", "2199-12-31", freq="ME").to_numpy()
    rng = np.random.default_rng(3)
    days = np.concatenate([
        np.arange(-730, 1096), np.arange(19358, 20454),
        month_ends.astype("datetime64[D]").astype(np.int64), rng.integers(-60000, 80000, 2000),
    ])  # fmt: skip
    days = np.unique(np.concatenate([days, days + 1]))
    name = load_table(engine, pd.DataFrame({"day": days}))
    yield name, days
    drop(engine, name)


@pytest.mark.parametrize("grain", [TimeUnit.DAY, TimeUnit.WEEK, TimeUnit.MONTH, TimeUnit.QUARTER,
                                   TimeUnit.YEAR])  # fmt: skip
def test_the_grain_of_a_day_number(engine, day_table, grain):
    name, days = day_table
    table = sa.table(name, sa.column("day", sa.Integer()))
    statement = sa.select(table.c.day, _grain_of_day(table.c.day, grain).label("grain"))
    with engine.connect() as connection:
        rows = np.array(connection.execute(statement.order_by(table.c.day)).all(), dtype=np.int64)
    assert np.array_equal(rows[:, 0], days)
    assert np.array_equal(rows[:, 1], grain_index(days, grain))
