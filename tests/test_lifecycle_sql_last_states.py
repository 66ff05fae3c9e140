"""The last lifecycle state per customer, computed in the database, equals the pandas path.

``sql_last_states`` must equal ``lifecycle_states(...).groupby("customer_id")["state"].last()``
on real SQLite, DuckDB and PostgreSQL, and ``last_states_select`` must join to other
per-customer selects and stream in chunks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.datasets import make_crm
from cvalue.errors import DataQualityError, SchemaError
from cvalue.lifecycle import STATES, ContractRule, InactivityRule, ModelRule, lifecycle_states
from cvalue.lifecycle.sql import last_states_select, sql_last_states
from cvalue.models import BetaGeo
from tests.test_lifecycle_sql import drop, purchase_logs

WINDOWS = (1, 3, "1D", "30D", "45D", "90D", "13w")
CUT = "2024-06-12"  # a Wednesday in the middle of June: it cuts the week and the month


def expected_last(data: pd.DataFrame, **options) -> pd.Series:
    states = lifecycle_states(data, **options)
    return states.groupby("customer_id", observed=True)["state"].last()


def assert_last_equal(engine: sa.Engine, data: pd.DataFrame, **options) -> pd.Series:
    """The fetched last states equal pandas'; the select has one row per customer."""
    source = {key: options.pop(key) for key in ("table", "query") if key in options}
    expected = expected_last(data, **options)
    pd.testing.assert_series_equal(sql_last_states(engine, **source, **options), expected)
    statement = last_states_select(engine, **source, **options)
    assert list(statement.selected_columns.keys()) == ["customer_id", "state"]
    with engine.connect() as connection:
        rows = connection.execute(statement).all()
    assert len(rows) == len(expected)
    assert dict(rows) == {key: str(value) for key, value in expected.items()}
    return expected


def log_table(name: str) -> sa.TableClause:
    """The log's columns with the timestamp's type stated (SQLite keeps dates as text)."""
    return sa.table(name, sa.column("customer_id"), sa.column("timestamp", sa.DateTime()),
                    sa.column("amount"), sa.column("is_return", sa.Boolean()))  # fmt: skip


# --- a synthetic CRM ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crm_log() -> pd.DataFrame:
    return make_crm(1000, seed=6).transactions[["customer_id", "timestamp", "amount", "is_return"]]


@pytest.fixture(scope="module")
def crm_table(engine, load_table, crm_log) -> str:
    return load_table(engine, crm_log)


@pytest.mark.parametrize("period", ["M", "W"])
@pytest.mark.parametrize("window", [1, 3, "30D", "90D", "13w"])
@pytest.mark.parametrize("observation_end", [None, "2024-12-31", "2025-01-15"])
def test_crm_table_equals_pandas(engine, crm_table, crm_log, period, window, observation_end):
    assert_last_equal(engine, crm_log, table=crm_table, period=period,
                      rule=InactivityRule(window), observation_end=observation_end)  # fmt: skip


@pytest.mark.parametrize("period", ["M", "W"])
@pytest.mark.parametrize("window", [2, "30D", "45D"])
def test_a_filtered_query_cut_mid_period_equals_pandas(engine, crm_table, crm_log, period, window):
    table = log_table(crm_table)
    cut = pd.Timestamp(CUT)
    query = sa.select(table).where(table.c.timestamp < cut + pd.Timedelta(days=1))
    kept = crm_log[crm_log["timestamp"] < cut + pd.Timedelta(days=1)]
    expected = assert_last_equal(engine, kept, query=query, period=period,
                                 rule=InactivityRule(window), observation_end=CUT)  # fmt: skip
    assert len(expected) < crm_log["customer_id"].nunique()  # the filter left customers out


def test_every_state_is_reached(engine, crm_table, crm_log):
    # the comparisons above are only as strong as the states they meet
    expected = assert_last_equal(engine, crm_log, table=crm_table, period="M",
                                 rule=InactivityRule(3), observation_end="2024-12-31")  # fmt: skip
    assert (expected.value_counts() > 0).all()
    assert set(expected.cat.categories) == set(STATES)


def test_joins_to_another_per_customer_select(engine, crm_table, crm_log):
    table = log_table(crm_table)
    spent = (
        sa.select(table.c.customer_id, sa.func.count().label("purchases"))
        .where(sa.not_(table.c.is_return))
        .group_by(table.c.customer_id)
        .subquery("spent")
    )
    last = last_states_select(engine, table=crm_table, period="M", rule=InactivityRule(3),
                              observation_end="2024-12-31").subquery("last_states")  # fmt: skip
    joined = sa.select(spent.c.customer_id, spent.c.purchases, last.c.state).join_from(
        spent, last, spent.c.customer_id == last.c.customer_id
    )
    with engine.connect() as connection:
        rows = pd.DataFrame(connection.execute(joined).all(), columns=["customer_id", "n", "state"])
    rows = rows.set_index("customer_id").sort_index()
    purchases = crm_log[~crm_log["is_return"]]
    expected = expected_last(purchases, period="M", rule=InactivityRule(3),
                             observation_end="2024-12-31")  # fmt: skip
    assert rows.index.tolist() == expected.index.tolist()
    assert rows["state"].tolist() == expected.astype(str).tolist()
    counts = purchases.groupby("customer_id").size()
    assert rows["n"].tolist() == counts.loc[rows.index].tolist()


def test_streams_in_chunks_on_a_connection(engine, crm_table, crm_log):
    with engine.connect() as connection:
        statement = last_states_select(connection, table=crm_table, period="W",
                                       rule=InactivityRule("30D"))  # fmt: skip
        streamed = connection.execution_options(stream_results=True, yield_per=128)
        chunks = [list(rows) for rows in streamed.execute(statement).partitions()]
    assert [len(chunk) for chunk in chunks[:-1]] == [128] * (len(chunks) - 1)
    fetched = dict(row for chunk in chunks for row in chunk)
    expected = expected_last(crm_log, period="W", rule=InactivityRule("30D"))
    assert fetched == {key: str(value) for key, value in expected.items()}


def test_contracts_equal_pandas(engine, load_table):
    contracts = pd.DataFrame({
        "customer_id": [1, 1, 2, 3, 4, 5],
        "start": pd.to_datetime(["2024-01-10", "2024-05-01", "2024-02-01", "2024-06-03",
                                 "2024-03-01", "2024-01-15"]),
        "end": pd.to_datetime(["2024-02-20", None, "2024-04-30", None, "2024-05-31",
                               "2024-05-15"]),
    })  # fmt: skip
    name = load_table(engine, contracts)
    try:
        table = sa.table(name, sa.column("customer_id"), sa.column("start", sa.DateTime()),
                         sa.column("end", sa.DateTime()))  # fmt: skip
        expected = assert_last_equal(engine, contracts, query=sa.select(table), period="M",
                                     rule=ContractRule(), observation_end="2024-06-20")  # fmt: skip
        # 1: back since May; 2: ended in April; 3: new in June; 4: ended in May; 5: lost in June
        assert expected.astype(str).tolist() == ["retained", "lost", "acquired", "lost", "lost"]
    finally:
        drop(engine, name)


def test_refusals(engine, crm_table):
    model = BetaGeo.from_params(0.5, 5.0, 0.8, 2.5, unit="week")
    with pytest.raises(SchemaError, match="model rule needs P\\(alive\\)"):
        last_states_select(engine, table=crm_table, period="M", rule=ModelRule(model))
    with pytest.raises(SchemaError, match="not 'W-WED'"):
        sql_last_states(engine, table=crm_table, period="W-WED", rule=InactivityRule(1))
    with pytest.raises(DataQualityError, match="rows after observation_end"):
        last_states_select(engine, table=crm_table, period="M", rule=InactivityRule(1),
                           observation_end="2023-12-31")  # fmt: skip


# --- random logs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)
@settings(max_examples=60, deadline=None)
@given(log=purchase_logs(), period=st.sampled_from(("D", "W", "M", "Q", "Y")),
       window=st.sampled_from(WINDOWS), extra_days=st.none() | st.integers(0, 120))  # fmt: skip
def test_random_logs_equal_pandas(engine, load_table, log, period, window, extra_days):
    name = load_table(engine, log)
    try:
        last = log.loc[~log["is_return"], "timestamp"].max().normalize()
        end = None if extra_days is None else last + pd.Timedelta(days=extra_days, hours=5)
        expected = assert_last_equal(engine, log, query=sa.select(log_table(name)), period=period,
                                     rule=InactivityRule(window), observation_end=end)  # fmt: skip
        assert np.array_equal(expected.index, np.sort(log.loc[~log["is_return"], "customer_id"]
                                                      .unique()))  # fmt: skip
    finally:
        drop(engine, name)
