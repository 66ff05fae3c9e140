"""The SQL toolkit is public, documented, and enough to write a new SQL twin.

A twin written here with the toolkit alone (purchases per customer and calendar period) must equal
pandas on real SQLite, DuckDB and PostgreSQL.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

import cvalue
import cvalue.io
from cvalue.errors import DataQualityError, SchemaError
from cvalue.io import connection_to, sqlkit
from cvalue.io.sqlkit import (
    DayNumber,
    check_rows,
    copy_rows,
    fetch,
    fetch_chunks,
    grain_index,
    grain_start,
    resolve_relation,
)
from cvalue.units import TimeUnit

# the toolkit's grain, and the pandas period of the same calendar grain
PERIODS = {TimeUnit.WEEK: "W-SUN", TimeUnit.MONTH: "M", TimeUnit.QUARTER: "Q", TimeUnit.YEAR: "Y"}


def attribute_docstrings(module: object) -> set[str]:
    """Names assigned at module level with a string literal right after them."""
    tree = ast.parse(Path(inspect.getfile(module)).read_text(encoding="utf-8"))  # type: ignore[arg-type]
    documented = set()
    for node, following in zip(tree.body, tree.body[1:], strict=False):
        is_string = isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
        if isinstance(node, ast.AnnAssign | ast.Assign) and is_string:
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            documented |= {target.id for target in targets if isinstance(target, ast.Name)}
    return documented


def test_the_toolkit_is_public_and_documented():
    assert "SQL twin" in sqlkit.__doc__
    assert "never string-formatted SQL" in sqlkit.__doc__
    expected = {
        "DayNumber", "MonthNumber", "FloorDivide", "MonthStart", "Expression", "Relation",
        "grain_index", "grain_start", "elapsed", "in_unit", "day_of", "optional_day",
        "resolve_relation", "source_rows", "table_columns", "check_rows", "fetch",
        "fetch_chunks", "copy_rows",
    }  # fmt: skip
    assert set(sqlkit.__all__) == expected
    documented_aliases = attribute_docstrings(sqlkit)
    for name in sqlkit.__all__:
        found = getattr(sqlkit, name)
        if inspect.isclass(found) or inspect.isfunction(found):
            assert found.__module__ == "cvalue.io.sqlkit", name
            assert inspect.getdoc(found), f"{name} has no docstring"
        else:
            assert name in documented_aliases, f"{name} has no docstring"


def test_the_dialect_constructs_refuse_other_databases():
    refused = r"support SQLite, DuckDB and PostgreSQL, not 'mysql'"
    with pytest.raises(sa.exc.CompileError, match=refused):
        sa.select(DayNumber(sa.column("timestamp"))).compile(dialect=mysql.dialect())


# --- a new twin, written with the toolkit alone ---------------------------------------------------


def sql_purchases_per_period(
    source: str | sa.Engine, *, table: str, grain: TimeUnit
) -> pd.DataFrame:
    """Purchases (returns left out) per customer and calendar period, counted in the database."""
    with connection_to(source) as connection:
        relation = resolve_relation(connection, table=table, query=None, schema=None, columns=None)
        check_rows(connection, relation, None)
        timestamp = relation.column(relation.timestamp)
        periods = sa.select(
            relation.column(relation.customer_id).label("customer"),
            grain_index(timestamp, grain).label("period"),
        ).subquery("periods")
        counts = (
            sa.select(
                periods.c.customer,
                grain_start(periods.c.period, grain).label("first_day"),
                sa.func.count().label("n_purchases"),
            )
            .group_by(periods.c.customer, periods.c.period)
            .order_by(periods.c.customer, periods.c.period)
        )
        rows = fetch(connection, counts)
    days = rows["first_day"].to_numpy(dtype=np.int64)
    first_day = pd.to_datetime(days, unit="D").as_unit("ns")
    return pd.DataFrame(
        {
            "customer_id": rows["customer"].to_numpy(dtype=np.int64),
            "period_start": first_day,
            "n_purchases": rows["n_purchases"].to_numpy(dtype=np.int64),
        }
    )


def purchases_per_period(log: pd.DataFrame, grain: TimeUnit) -> pd.DataFrame:
    """The same table in pandas."""
    purchases = log[~log["is_return"]]
    period_start = purchases["timestamp"].dt.to_period(PERIODS[grain]).dt.start_time
    counts = purchases.groupby(["customer_id", period_start]).size()
    table = counts.rename("n_purchases").rename_axis(["customer_id", "period_start"]).reset_index()
    return table.astype({"period_start": "datetime64[ns]"})


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n_rows = 400
    # across the epoch, so that days, weeks and months before 1970 count too
    start = pd.Timestamp("1969-10-01").value
    end = pd.Timestamp("1972-03-31 23:59:59").value
    return pd.DataFrame(
        {
            "customer_id": rng.integers(1, 25, n_rows),
            "timestamp": pd.to_datetime(rng.integers(start, end, n_rows)).as_unit("us"),
            "amount": rng.integers(1, 200, n_rows).astype(np.float64),
            "is_return": rng.random(n_rows) < 0.1,
        }
    )


@pytest.fixture(scope="module")
def log_table(engine, load_table, log) -> str:
    return load_table(engine, log)


@pytest.mark.parametrize("grain", list(PERIODS))
def test_a_twin_written_with_the_toolkit_equals_pandas(engine, log, log_table, grain):
    actual = sql_purchases_per_period(engine, table=log_table, grain=grain)
    expected = purchases_per_period(log, grain)
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)


def test_the_twin_refuses_what_pandas_refuses(engine, load_table, log):
    gaps = log.assign(customer_id=log["customer_id"].astype("Int64"))
    purchases = log.index[~log["is_return"]]
    gaps.loc[purchases[:2], "customer_id"] = pd.NA
    message = f"missing customer ids in 2 of {len(purchases)} rows"
    with pytest.raises(DataQualityError, match=message):
        sql_purchases_per_period(engine, table=load_table(engine, gaps), grain=TimeUnit.MONTH)


# --- the deprecated name ------------------------------------------------------------------------


def test_io_sql_customer_profitability_is_deprecated():
    with pytest.warns(DeprecationWarning, match=r"cvalue\.io\.sql_customer_profitability is dep"):
        from cvalue.io import sql_customer_profitability
    assert sql_customer_profitability is cvalue.sql_customer_profitability
    with pytest.warns(DeprecationWarning, match="from cvalue import sql_customer_profitability"):
        assert cvalue.io.sql_customer_profitability is cvalue.sql_customer_profitability
    assert "sql_customer_profitability" not in cvalue.io.__all__


@pytest.mark.parametrize("size", [1, 7, 2048, 5000, 100_000])
def test_fetch_chunks_streams_every_row_once_in_bounded_frames(
    engine: sa.Engine, load_table: Callable[[sa.Engine, pd.DataFrame], str], size: int
) -> None:
    rows = pd.DataFrame({"customer": np.arange(10_000), "value": np.arange(10_000) * 0.5})
    name = load_table(engine, rows)
    source = sa.table(name, sa.column("customer"), sa.column("value"))
    statement = sa.select(source.c.customer, (source.c.value * 2).label("doubled"))
    with connection_to(engine) as connection:
        chunks = list(fetch_chunks(connection, statement, size))
    assert [len(chunk) for chunk in chunks[:-1]] == [size] * (len(chunks) - 1)
    assert 0 < len(chunks[-1]) <= size
    assert all(
        len(chunk) > 0 and list(chunk.columns) == ["customer", "doubled"] for chunk in chunks
    )
    together = pd.concat(chunks).sort_values("customer", ignore_index=True)
    np.testing.assert_array_equal(together["customer"], rows["customer"])
    np.testing.assert_array_equal(together["doubled"], rows["value"] * 2)


def test_fetch_chunks_of_no_rows_gives_no_frame_and_refuses_a_bad_size(
    engine: sa.Engine, load_table: Callable[[sa.Engine, pd.DataFrame], str]
) -> None:
    name = load_table(engine, pd.DataFrame({"customer": [1, 2]}))
    source = sa.table(name, sa.column("customer"))
    with connection_to(engine) as connection:
        assert (
            list(fetch_chunks(connection, sa.select(source).where(source.c.customer > 5), 10)) == []
        )
        with pytest.raises(SchemaError, match="positive integer"):
            list(fetch_chunks(connection, sa.select(source), 0))


@pytest.mark.parametrize("temporary", [True, False])
def test_copy_rows_keeps_values_and_date_types(
    engine: sa.Engine, load_table: Callable[[sa.Engine, pd.DataFrame], str], temporary: bool
) -> None:
    rows = pd.DataFrame(
        {
            "customer": [3, 1, 2],
            "timestamp": pd.to_datetime(
                ["2024-01-05 10:00", "2023-12-31 00:00", "2024-02-29 23:59"]
            ),
            "amount": [1.5, 2.25, -3.0],
        }
    )
    name = load_table(engine, rows)
    with connection_to(engine) as connection:
        columns = [sa.column("customer", sa.BigInteger()), sa.column("timestamp", sa.DateTime()),
                   sa.column("amount", sa.Double())]  # fmt: skip
        source = sa.table(name, *columns)
        statement = sa.select(
            source.c.customer, source.c.timestamp, (source.c.amount * 2).label("doubled")
        )
        target = sa.table(f"copy_{name}", sa.column("customer"), sa.column("timestamp"),
                          sa.column("doubled"))  # fmt: skip
        copy_rows(connection, target, statement, temporary=temporary)
        copied = pd.read_sql(sa.select(target).order_by(target.c.customer), connection)
    expected = rows.sort_values("customer", ignore_index=True)
    np.testing.assert_array_equal(copied["customer"], expected["customer"])
    np.testing.assert_array_equal(copied["doubled"], expected["amount"] * 2)
    assert pd.to_datetime(copied["timestamp"]).tolist() == expected["timestamp"].tolist()


def test_fetch_chunks_leaves_the_connection_as_it_was(
    engine: sa.Engine, load_table: Callable[[sa.Engine, pd.DataFrame], str]
) -> None:
    name = load_table(engine, pd.DataFrame({"customer": [1, 2, 3]}))
    source = sa.table(name, sa.column("customer"))
    with connection_to(engine) as connection:
        before = dict(connection.get_execution_options())
        assert sum(len(chunk) for chunk in fetch_chunks(connection, sa.select(source), 2)) == 3
        assert dict(connection.get_execution_options()) == before
        # a statement that cannot stream still runs on the same connection
        copy_rows(connection, sa.table(f"after_{name}", sa.column("customer")), sa.select(source))
