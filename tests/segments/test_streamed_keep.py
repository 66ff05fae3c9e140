"""profit_select with ``keep``: the sums computed once into a table give the same profit rows.

The unmatched cost rows are counted against the kept sums, on SQLite, DuckDB and PostgreSQL.
"""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
import sqlalchemy as sa

from cvalue.datasets import make_crm
from cvalue.io.sqlkit import copy_rows, fetch
from cvalue.segments import Costs, UnmatchedCostsWarning, profit_select
from tests.conftest import crm_rates


@pytest.fixture(scope="module")
def crm():
    return make_crm(1_500, seed=5)


@pytest.fixture(scope="module")
def tables(engine, load_table, crm) -> dict[str, str]:
    return {
        "transactions": load_table(engine, crm.transactions),
        "contacts": load_table(engine, crm.service_contacts),
    }


def kept_in(connection: sa.Connection, name: str, kept: list[str]):
    def keep(rows: sa.Select) -> sa.Select:
        table = sa.table(name, *(sa.column(column) for column in rows.selected_columns.keys()))  # noqa: SIM118
        copy_rows(connection, table, rows, temporary=True)
        kept.append(name)
        return sa.select(table)

    return keep


@pytest.mark.parametrize("window", [(None, None), ("2023-01-01", "2023-06-30")])
def test_kept_sums_give_the_same_rows_and_unmatched_costs(engine, tables, crm, window):
    start, end = window
    costs = Costs(service_contacts=tables["contacts"], **crm_rates(crm))
    options = {"table": tables["transactions"], "start": start, "end": end}
    kept: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnmatchedCostsWarning)
        with engine.connect() as connection:
            plain = profit_select(connection, costs, **options)
            expected = fetch(connection, plain.statement)
            name = f"kept_sums_{start is None}"
            source = profit_select(connection, costs, **options,
                                   keep=kept_in(connection, name, kept))  # fmt: skip
            actual = fetch(connection, source.statement)
            assert name in str(source.statement)  # the statement reads the kept table
    assert kept == [name]
    assert len(expected) > 0
    order = plain.customer_id
    pd.testing.assert_frame_equal(
        source.customers(actual.sort_values(order, ignore_index=True)),
        plain.customers(expected.sort_values(order, ignore_index=True)),
        check_exact=True,
    )
    assert (int(plain.unmatched_costs["rows"].sum()) > 0) == (start is not None)
    pd.testing.assert_frame_equal(source.unmatched_costs, plain.unmatched_costs)
    pd.testing.assert_frame_equal(source.outside_window, plain.outside_window)
