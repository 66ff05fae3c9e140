"""holdout_patterns computes its intermediates in temporary tables and leaves none behind.

The calibration customers and their split are each computed into a temporary table (so that the
database holds one statement's hash tables at a time); a second call on the same connection
gives the same patterns, and the connection is left with the tables it had.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import sqlalchemy as sa

from cvalue.io import connection_to
from cvalue.io.sql_stream import summary_query
from tests.test_sql_stream import END, random_log


def temporary_tables(connection: sa.Connection) -> set[str]:
    if connection.dialect.name == "duckdb":
        tables = sa.func.duckdb_tables().table_valued("table_name", "temporary")
        names = sa.select(tables.c.table_name).where(tables.c.temporary)
        return set(connection.execute(names).scalars())
    return set(sa.inspect(connection).get_temp_table_names())


def test_holdout_patterns_leave_no_table_and_repeat(
    engine: sa.Engine, load_table: Callable[[sa.Engine, pd.DataFrame], str]
) -> None:
    name = load_table(engine, random_log(3, n_rows=800, n_customers=150))
    with connection_to(engine) as connection:
        query = summary_query(connection, table=name, observation_end=END, unit="week")
        before = temporary_tables(connection)
        first, n_new = query.holdout_patterns(connection, pd.Timestamp("2023-12-31"))
        assert temporary_tables(connection) == before
        again, n_new_again = query.holdout_patterns(connection, pd.Timestamp("2023-12-31"))
    assert len(first) > 0
    assert n_new > 0
    pd.testing.assert_frame_equal(again, first)
    assert n_new_again == n_new
