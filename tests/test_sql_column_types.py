"""Every timestamp type a database offers gives the pandas answer in every SQL twin.

A DuckDB table made with ``CREATE TABLE ... AS SELECT * FROM frame`` from a pandas
``datetime64[ns]`` column is TIMESTAMP_NS, Parquet files give TIMESTAMP_MS, and PostgreSQL has
TIMESTAMP(0), TIMESTAMPTZ and DATE. The summary, lifecycle and profitability twins must read each
of them as the calendar moment it holds, for every grain.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator

import pandas as pd
import pytest
import sqlalchemy as sa

import cvalue as cv
from cvalue.datasets import make_crm
from cvalue.io.sql import sql_calibration_holdout, sql_rfm_summary
from cvalue.lifecycle import InactivityRule, lifecycle_flows, lifecycle_states
from cvalue.lifecycle.sql import sql_lifecycle_flows, sql_lifecycle_states
from cvalue.segments import Costs, customer_profitability
from cvalue.segments.sql import sql_customer_profitability
from tests.conftest import crm_rates

DUCKDB_TYPES = ("TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP", "TIMESTAMPTZ", "DATE")
POSTGRESQL_TYPES = ("TIMESTAMP(0)", "TIMESTAMP", "TIMESTAMPTZ", "DATE")
GRAINS = ("day", "week", "month", "quarter", "year")


@pytest.fixture(scope="module")
def crm():
    return make_crm(300, seed=11)


class NamedType(sa.types.UserDefinedType[object]):
    """A column type by its database name (TIMESTAMP_NS, TIMESTAMP(0), ...), for DDL and CAST."""

    cache_ok = True

    def __init__(self, name: str) -> None:
        self.name = name

    def get_col_spec(self, **kw: object) -> str:
        return self.name


def typed_copy(engine: sa.Engine, source: str, column_type: str) -> str:
    """A copy of ``source`` whose ``timestamp`` column has the given SQL type."""
    name = f"typed_{uuid.uuid4().hex[:12]}"
    kept = {"customer_id": sa.BigInteger(), "amount": sa.Double(), "category": sa.String(),
            "is_promotion": sa.Boolean(), "is_return": sa.Boolean()}  # fmt: skip
    copy = sa.Table(name, sa.MetaData(), sa.Column("timestamp", NamedType(column_type)),
                    *(sa.Column(column, kind) for column, kind in kept.items()))  # fmt: skip
    rows = sa.table(source, sa.column("timestamp"), *(sa.column(column) for column in kept))
    cast = sa.cast(rows.c.timestamp, NamedType(column_type)).label("timestamp")
    with engine.begin() as connection:
        copy.create(connection)
        columns = ["timestamp", *kept]
        selected = sa.select(cast, *(rows.c[column] for column in kept))
        connection.execute(copy.insert().from_select(columns, selected))
    return name


def as_stored(log: pd.DataFrame, column_type: str) -> pd.DataFrame:
    """The log as the typed column holds it: whole days for DATE, whole seconds otherwise."""
    resolution = "D" if column_type == "DATE" else "s"
    return log.assign(timestamp=log["timestamp"].dt.floor(resolution))


def assert_every_twin_equals_pandas(engine: sa.Engine, crm, column_type: str) -> None:
    base = f"base_{uuid.uuid4().hex[:12]}"
    crm.transactions.to_sql(base, engine, index=False)
    contacts = f"contacts_{uuid.uuid4().hex[:12]}"
    crm.service_contacts.to_sql(contacts, engine, index=False)
    table = typed_copy(engine, base, column_type)
    log = as_stored(crm.transactions, column_type)
    purchases = log[~log["is_return"]]
    end = "2024-12-31"
    for grain in GRAINS:
        summary = sql_rfm_summary(engine, table=table, observation_end=end, grain=grain)
        expected = cv.rfm_summary(purchases, observation_end=end, grain=grain)
        pd.testing.assert_frame_equal(
            summary, expected, check_exact=False, rtol=1e-12, check_dtype=False
        )
        ends = {"calibration_end": "2023-12-31", "observation_end": end}
        split = sql_calibration_holdout(engine, table=table, grain=grain, **ends)
        pd.testing.assert_frame_equal(
            split,
            cv.calibration_holdout(purchases, grain=grain, **ends),
            check_exact=False,
            rtol=1e-12,
            check_dtype=False,
        )
    for period, window in (("M", 3), ("W", "30D"), ("Q", 1), ("Y", "13w"), ("D", "90D")):
        options = {"period": period, "rule": InactivityRule(window), "observation_end": end}
        states = lifecycle_states(log, **options)
        # exact: as strict as the default for these columns (categories and integers), and it
        # compares the categoricals as arrays rather than value by value (seconds for days)
        pd.testing.assert_frame_equal(
            sql_lifecycle_states(engine, table=table, **options), states, check_exact=True
        )
        pd.testing.assert_frame_equal(
            sql_lifecycle_flows(engine, table=table, **options), lifecycle_flows(states)
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cv.segments.UnmatchedCostsWarning)
        window = {"start": "2023-03-01", "end": "2023-03-31"}
        actual = sql_customer_profitability(
            engine, Costs(service_contacts=contacts, **crm_rates(crm)), table=table, **window
        )
        expected = customer_profitability(
            log, Costs(service_contacts=crm.service_contacts, **crm_rates(crm)), **window
        )
    pd.testing.assert_frame_equal(
        actual.customers, expected.customers, check_exact=False, rtol=1e-12, atol=1e-9
    )
    pd.testing.assert_frame_equal(actual.outside_window, expected.outside_window)


@pytest.fixture(scope="module")
def duckdb_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"duckdb:///{tmp_path_factory.mktemp('types') / 'types.duckdb'}")
    yield engine
    engine.dispose()


@pytest.mark.parametrize("column_type", DUCKDB_TYPES)
def test_every_duckdb_timestamp_type(duckdb_engine, crm, column_type):
    assert_every_twin_equals_pandas(duckdb_engine, crm, column_type)


def test_a_table_created_from_a_pandas_frame_is_read_as_its_dates(duckdb_engine, crm):
    # the way most users put a frame into DuckDB: its datetime64[ns] column becomes TIMESTAMP_NS
    frame = crm.transactions[["customer_id", "timestamp", "amount"]]
    name = f"frame_{uuid.uuid4().hex[:12]}"
    with duckdb_engine.begin() as connection:
        raw = connection.connection.driver_connection
        raw.from_df(frame).create(name)  # CREATE TABLE ... AS SELECT * FROM frame
        table = sa.table(name, sa.column("timestamp"))
        kind = connection.execute(sa.select(sa.func.typeof(table.c.timestamp)).limit(1)).scalar()
    assert kind == "TIMESTAMP_NS"
    flows = sql_lifecycle_flows(duckdb_engine, table=name, period="M", rule=InactivityRule(3))
    expected = lifecycle_flows(lifecycle_states(frame, period="M", rule=InactivityRule(3)))
    pd.testing.assert_frame_equal(flows, expected)
    assert str(flows.index[0]) == "2022-01"


@pytest.fixture(scope="module")
def postgresql_engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("column_type", POSTGRESQL_TYPES)
def test_every_postgresql_timestamp_type(postgresql_engine, crm, column_type):
    assert_every_twin_equals_pandas(postgresql_engine, crm, column_type)
