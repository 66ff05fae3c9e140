"""Per-customer profitability in SQL equals the pandas path on SQLite, DuckDB and PostgreSQL.

Counts must be identical. Sums are added by the database in its own order: on hypothesis logs
in quarters they are exact (so every column, net profit included, is bit-identical); on
make_crm's cents they agree to ``rtol=1e-12``.
"""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.datasets import make_crm
from cvalue.errors import DataQualityError, SchemaError
from cvalue.io.schema import Columns
from cvalue.segments import (
    Costs,
    ProfitTable,
    UnmatchedCostsWarning,
    cross_sell_profitability,
    customer_profitability,
)
from cvalue.segments.sql import sql_customer_profitability
from tests.conftest import crm_rates

COUNTS = ["n_purchases", "n_returns", "n_promoted", "n_categories", "n_contacts"]
FLAGS = ["is_cross_buyer", "is_unprofitable"]


def assert_same(actual: ProfitTable, expected: ProfitTable, *, exact: bool) -> None:
    if expected.customers.empty:  # nothing in the window: no ids to take a type from
        assert actual.customers.empty
        assert list(actual.customers.columns) == list(expected.customers.columns)
        actual = ProfitTable(expected.customers, actual.unmatched_costs, actual.outside_window)
    pd.testing.assert_frame_equal(
        actual.customers[COUNTS + FLAGS], expected.customers[COUNTS + FLAGS], check_exact=True
    )
    assert list(actual.customers.columns) == list(expected.customers.columns)
    if exact:
        pd.testing.assert_frame_equal(actual.customers, expected.customers, check_exact=True)
        pd.testing.assert_frame_equal(actual.unmatched_costs, expected.unmatched_costs)
    else:
        pd.testing.assert_frame_equal(
            actual.customers, expected.customers, check_exact=False, rtol=1e-12, atol=1e-9
        )
        pd.testing.assert_frame_equal(
            actual.unmatched_costs, expected.unmatched_costs, check_exact=False, rtol=1e-12
        )
    pd.testing.assert_frame_equal(actual.outside_window, expected.outside_window)


def drop(engine: sa.Engine, *names: str) -> None:
    for name in names:
        sa.Table(name, sa.MetaData()).drop(engine)


@pytest.fixture(scope="module")
def crm():
    return make_crm(1_500, seed=21)


@pytest.fixture(scope="module")
def crm_tables(engine, load_table, crm) -> dict[str, str]:
    return {
        "transactions": load_table(engine, crm.transactions),
        "contacts": load_table(engine, crm.service_contacts),
    }


@pytest.mark.parametrize("window", [(None, None), ("2023-03-01", "2023-03-31")])
def test_make_crm_equals_pandas(engine, crm, crm_tables, window):
    start, end = window
    in_database = Costs(service_contacts=crm_tables["contacts"], **crm_rates(crm))
    in_memory = Costs(service_contacts=crm.service_contacts, **crm_rates(crm))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        actual = sql_customer_profitability(
            engine, in_database, table=crm_tables["transactions"], start=start, end=end
        )
        expected = customer_profitability(crm.transactions, in_memory, start=start, end=end)
    assert_same(actual, expected, exact=False)
    n_orphans = int(expected.unmatched_costs["rows"].sum())
    assert [warning.category for warning in caught] == [UnmatchedCostsWarning] * 2 * (n_orphans > 0)
    if start is None:
        np.testing.assert_allclose(
            actual.customers["net_profit"], crm.truth.customers["net_margin"], atol=1e-9
        )
    else:
        assert n_orphans > 0
        assert actual.outside_window["rows"].sum() > 0


def test_without_promotions(engine, crm, crm_tables):
    shared = {**crm_rates(crm), "promotion_discount_rate": 0.0}
    actual = sql_customer_profitability(
        engine, Costs(service_contacts=crm_tables["contacts"], **shared),
        table=crm_tables["transactions"], promotion=None,
    )  # fmt: skip
    expected = customer_profitability(
        crm.transactions.drop(columns="is_promotion"),
        Costs(service_contacts=crm.service_contacts, **shared), promotion=None,
    )  # fmt: skip
    assert_same(actual, expected, exact=False)
    assert (actual.customers["n_promoted"] == 0).all()


def test_the_analysis_of_a_database_table(engine, crm, crm_tables):
    table = sql_customer_profitability(
        engine, Costs(service_contacts=crm_tables["contacts"], **crm_rates(crm)),
        table=crm_tables["transactions"],
    )  # fmt: skip
    from_sql = cross_sell_profitability(table)
    direct = cross_sell_profitability(
        crm.transactions, Costs(service_contacts=crm.service_contacts, **crm_rates(crm))
    )
    assert from_sql.unprofitable_share_ == pytest.approx(direct.unprofitable_share_, abs=1e-15)
    assert from_sql.loss_share_ == pytest.approx(direct.loss_share_, rel=1e-12)
    assert from_sql.segments_.flagged_ids_.equals(direct.segments_.flagged_ids_)
    pd.testing.assert_index_equal(from_sql.drivers_.index, direct.drivers_.index)


def test_selects_as_sources_and_mapped_columns(engine, load_table, crm):
    renamed = {"customer_id": "client", "timestamp": "paid_at", "amount": "net"}
    transactions = crm.transactions.rename(columns=renamed)
    contacts = crm.service_contacts.rename(columns={"customer_id": "client", "cost": "price"})
    names = (load_table(engine, transactions), load_table(engine, contacts))
    try:
        columns = Columns(customer_id="client", timestamp="paid_at", amount="net",
                          is_return="is_return")  # fmt: skip
        contact_rows = sa.table(names[1], sa.column("client"), sa.column("price"))
        query = sa.select(sa.table(names[0], *(sa.column(c) for c in transactions.columns)))
        options = {"columns": columns, "min_categories": 3, "promotion": "is_promotion"}
        actual = sql_customer_profitability(
            engine, Costs(service_contacts=sa.select(contact_rows), cost_column="price",
                          **crm_rates(crm)),
            query=query, **options,
        )  # fmt: skip
        expected = customer_profitability(
            transactions, Costs(service_contacts=contacts, cost_column="price", **crm_rates(crm)),
            **options,
        )  # fmt: skip
        assert_same(actual, expected, exact=False)
        assert actual.customers.index.name == "client"
    finally:
        drop(engine, *names)


# --- random logs: exact equality --------------------------------------------------------------


@st.composite
def crm_logs(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Transactions, contacts and marketing rows of a few customers, amounts in quarters."""
    ids = draw(st.sampled_from([[7, -2, 30, 4, 11], ["b", "A", "a10", "a9", "Z"]]))
    start = dt.datetime(2023, 12, 20, 6)
    rows, contacts = [], []
    for customer in ids[: draw(st.integers(1, len(ids)))]:
        for _ in range(draw(st.integers(1, 6))):
            moment = start + dt.timedelta(
                days=draw(st.integers(0, 40)), hours=draw(st.integers(0, 23))
            )
            is_return = draw(st.integers(0, 4)) == 0
            amount = draw(st.integers(0, 2000)) / 4
            rows.append((customer, moment, -amount if is_return else amount,
                         draw(st.sampled_from(["books", "home", "toys"])), is_return,
                         draw(st.booleans())))  # fmt: skip
        for _ in range(draw(st.integers(0, 3))):
            moment = start + dt.timedelta(days=draw(st.integers(0, 40)))
            contacts.append((customer, moment, draw(st.sampled_from(["call", "chat"])),
                             draw(st.integers(1, 80)) / 4))  # fmt: skip
    stranger = ids[-1] if draw(st.booleans()) else None  # contacts without transactions
    if stranger is not None and stranger not in {row[0] for row in rows}:
        contacts.append((stranger, start, "call", 2.25))
    log = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount", "category",
                                      "is_return", "is_promotion"])  # fmt: skip
    # typed even when empty, so that the database's columns have the transactions' types
    contact_table = pd.DataFrame(
        contacts, columns=["customer_id", "timestamp", "kind", "cost"]
    ).astype({"customer_id": log["customer_id"].dtype, "timestamp": "datetime64[ns]",
              "kind": "str", "cost": np.float64})  # fmt: skip
    marketing = pd.DataFrame({"customer_id": ids[:2], "timestamp": [start, start],
                              "cost": [1.5, 0.25]})  # fmt: skip
    return log, contact_table, marketing


def outcome(function, *args, **kwargs):
    """The result and the warnings' classes, or the class of the cvalue error raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return function(*args, **kwargs), [warning.category for warning in caught]
        except (SchemaError, DataQualityError) as exc:
            return type(exc), []


@settings(max_examples=12, deadline=None, derandomize=True, database=None)
@given(
    logs=crm_logs(),
    window=st.sampled_from(
        [(None, None), ("2023-12-25", None), (None, "2024-01-10"), ("2023-12-28", "2024-01-05")]
    ),
    contact_cost=st.sampled_from([None, 6.5, {"call": 9.0, "chat": 4.25}]),
    has_marketing=st.booleans(),
    min_categories=st.integers(1, 3),
)
def test_random_logs_equal_pandas(
    engine, load_table, logs, window, contact_cost, has_marketing, min_categories
):
    log, contacts, marketing = logs
    names = [load_table(engine, log), load_table(engine, contacts), load_table(engine, marketing)]
    try:
        start, end = window
        shared = {"margin_rate": 0.25, "promotion_discount_rate": 0.125,
                  "return_handling_cost": 1.75, "contact_cost": contact_cost}  # fmt: skip
        in_database = Costs(service_contacts=names[1],
                            marketing=names[2] if has_marketing else None, **shared)  # fmt: skip
        in_memory = Costs(service_contacts=contacts,
                          marketing=marketing if has_marketing else None, **shared)  # fmt: skip
        options = {"start": start, "end": end, "min_categories": min_categories}
        actual, sql_warnings = outcome(
            sql_customer_profitability, engine, in_database, table=names[0], **options
        )
        expected, pandas_warnings = outcome(customer_profitability, log, in_memory, **options)
        assert sql_warnings == pandas_warnings
        if isinstance(expected, type):
            assert actual is expected
        else:
            assert_same(actual, expected, exact=True)
    finally:
        drop(engine, *names)


# --- bad input -------------------------------------------------------------------------------


def test_cost_tables_must_be_in_the_database(engine, crm, crm_tables):
    with pytest.raises(SchemaError, match="is a pandas DataFrame; the SQL path reads tables"):
        sql_customer_profitability(
            engine, Costs(service_contacts=crm.service_contacts, **crm_rates(crm)),
            table=crm_tables["transactions"],
        )  # fmt: skip
    with pytest.raises(SchemaError, match="not found in the database"):
        sql_customer_profitability(
            engine, Costs(service_contacts="no_such_table", **crm_rates(crm)),
            table=crm_tables["transactions"],
        )  # fmt: skip


def test_missing_cost_column_and_currencies(engine, load_table, crm, crm_tables):
    renamed = load_table(engine, crm.service_contacts.rename(columns={"cost": "cost_usd"}))
    in_dollars = load_table(engine, crm.service_contacts.assign(currency="USD"))
    try:
        with pytest.raises(
            SchemaError, match=r"\['cost'\] not found in service_contacts.*cost_usd"
        ):
            sql_customer_profitability(
                engine, Costs(service_contacts=renamed, **crm_rates(crm)),
                table=crm_tables["transactions"],
            )  # fmt: skip
        n_rows = len(crm.service_contacts)
        with pytest.raises(SchemaError, match=rf"service_contacts: {n_rows:,} rows in 'USD'"):
            sql_customer_profitability(
                engine, Costs(service_contacts=in_dollars, currency="EUR", **crm_rates(crm)),
                table=crm_tables["transactions"],
            )  # fmt: skip
    finally:
        drop(engine, renamed, in_dollars)


def test_bad_rows_are_counted_as_in_pandas(engine, load_table, crm):
    log = crm.transactions.copy()
    purchases = log.index[~log["is_return"]]
    log.loc[purchases[:3], "amount"] = -5.0
    log.loc[purchases[5:7], "category"] = None
    contacts = crm.service_contacts.assign(cost=crm.service_contacts["cost"].astype(float))
    contacts.loc[contacts.index[:4], "cost"] = -1.0
    names = (load_table(engine, log), load_table(engine, contacts))
    try:
        with pytest.raises(DataQualityError) as in_database:
            sql_customer_profitability(
                engine, Costs(service_contacts=names[1], **crm_rates(crm)), table=names[0]
            )
        with pytest.raises(DataQualityError) as in_memory:
            customer_profitability(log, Costs(service_contacts=contacts, **crm_rates(crm)))
        n_rows = len(log)
        for expected in (
            f"negative amounts on purchases in 3 of {n_rows:,} rows",
            f"missing categories on purchases in 2 of {n_rows:,} rows",
            f"negative costs in 4 of {len(contacts):,} rows",
        ):
            assert expected in str(in_database.value)
            assert expected in str(in_memory.value)
    finally:
        drop(engine, *names)


def test_flags_must_be_boolean(engine, load_table, crm):
    name = load_table(
        engine,
        crm.transactions.assign(
            is_return=crm.transactions["is_return"].map({True: "yes", False: "no"})
        ),
    )
    contacts = load_table(engine, crm.service_contacts)
    try:
        with pytest.raises(SchemaError, match=r"\['is_return'\] .* are not BOOLEAN"):
            sql_customer_profitability(
                engine, Costs(service_contacts=contacts, **crm_rates(crm)), table=name
            )
    finally:
        drop(engine, name, contacts)


def test_unmatched_costs_can_be_refused(engine, load_table, crm, crm_tables):
    strangers = pd.DataFrame({"customer_id": [90_001, 90_002], "cost": [1.0, 2.0]})
    name = load_table(engine, strangers)
    try:
        costs = Costs(service_contacts=name, **crm_rates(crm))
        with pytest.raises(DataQualityError, match="service_contacts: 2 rows of 2 customers"):
            sql_customer_profitability(
                engine, costs, table=crm_tables["transactions"], on_unmatched="raise"
            )
    finally:
        drop(engine, name)
