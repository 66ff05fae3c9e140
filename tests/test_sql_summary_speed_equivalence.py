"""The summary twins give the same results whichever way they find a customer's first grain.

``cvalue.io.sql`` finds the first grain (the one whose total is no repeat purchase) with a window
over the grains on SQLite and PostgreSQL, and on DuckDB with a ``GROUP BY customer`` of the
purchases joined to the grains, since DuckDB plans that window as a join that aggregates the grains
twice. Both forms run here on each database, on the same rows, and must give the same frames as
each other and as the pandas path. Amounts are in quarters, so that sums are exact in any order
and the frames can be compared bit for bit, monetary values included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import cvalue as cv
from cvalue.io import sql as summary_sql
from cvalue.io.sql import sql_calibration_holdout, sql_pattern_table, sql_rfm_summary
from cvalue.io.sqlkit import resolve_relation
from cvalue.units import TimeUnit

GRAINS = ("day", "week", "month", "quarter", "year")
# the database whose form each name stands for
FORMS = {"window": "postgresql", "join": "duckdb"}
OBSERVATION_END = "1972-12-31"
CALIBRATION_END = "1971-06-30"


def quarter_log(seed: int, *, text_ids: bool = False) -> pd.DataFrame:
    """Dates across 1970 (negative day numbers too), same-day repeats, returns, quarter amounts."""
    rng = np.random.default_rng(seed)
    n_rows = 240
    seconds = rng.integers(0, 3 * 365 * 86400, n_rows)
    seconds[: n_rows // 4] = seconds[n_rows // 4 : n_rows // 2] + 60  # same-day repeats
    ids = rng.integers(0, 30, n_rows)
    return pd.DataFrame({
        "customer_id": [f"c{value:02d}" for value in ids] if text_ids else ids,
        "timestamp": pd.Timestamp("1969-10-01 09:15") + pd.to_timedelta(seconds, unit="s"),
        "amount": rng.integers(1, 4000, n_rows) / 4,
        "is_return": rng.random(n_rows) < 0.1,
    })  # fmt: skip


@contextmanager
def first_grain_form(form: str) -> Iterator[None]:
    """Make the twins find the first grain in ``form`` whatever the database."""
    original = summary_sql._with_first_grain

    def forced(purchases: sa.Subquery, grains: sa.Subquery, dialect: str) -> sa.Subquery:
        return original(purchases, grains, FORMS[form])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(summary_sql, "_with_first_grain", forced)
        yield


def by_each_form(call: Callable[[], pd.DataFrame]) -> dict[str, pd.DataFrame]:
    results = {}
    for form in FORMS:
        with first_grain_form(form):
            results[form] = call()
    return results


def assert_identical(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)
    assert actual.attrs == expected.attrs


@pytest.mark.parametrize("grain", GRAINS)
@pytest.mark.parametrize("text_ids", [False, True], ids=["integer-ids", "text-ids"])
def test_summary_is_the_same_in_both_forms(engine, load_table, grain, text_ids):
    log = quarter_log(1, text_ids=text_ids)
    table = load_table(engine, log)
    options = {"observation_end": OBSERVATION_END, "unit": "week", "grain": grain}
    summaries = by_each_form(lambda: sql_rfm_summary(engine, table=table, **options))
    assert_identical(summaries["join"], summaries["window"])
    assert_identical(summaries["join"], cv.rfm_summary(log, **options))
    assert (summaries["join"]["frequency"] > 2).any()  # sums of three totals or more occur


@pytest.mark.parametrize("grain", ["day", "month"])
def test_calibration_holdout_is_the_same_in_both_forms(engine, load_table, grain):
    log = quarter_log(2)
    table = load_table(engine, log)
    ends = {"calibration_end": CALIBRATION_END, "observation_end": OBSERVATION_END}
    splits = by_each_form(
        lambda: sql_calibration_holdout(engine, table=table, unit="day", grain=grain, **ends)
    )
    assert_identical(splits["join"], splits["window"])
    expected = cv.calibration_holdout(log, unit="day", grain=grain, **ends)
    assert_identical(splits["join"], expected)


def test_pattern_table_is_the_same_in_both_forms(engine, load_table):
    log = quarter_log(3)
    table = load_table(engine, log)
    patterns = by_each_form(
        lambda: sql_pattern_table(engine, table=table, observation_end=OBSERVATION_END)
    )
    assert_identical(patterns["join"], patterns["window"])
    compressed = cv.compress(cv.rfm_summary(log, observation_end=OBSERVATION_END))
    assert_identical(patterns["join"], compressed.patterns.assign(weight=compressed.weights))


def test_integer_ids_of_a_narrower_type_index_as_int64(engine, load_table):
    """32-bit ids take the index's fast path and come out as the pandas path's int64."""
    log = quarter_log(4)
    table = load_table(engine, log)
    source = sa.table(
        table, sa.column("customer_id"), sa.column("timestamp", sa.DateTime()),
        sa.column("amount"), sa.column("is_return"),
    )  # fmt: skip
    query = sa.select(
        sa.cast(source.c.customer_id, sa.Integer).label("customer_id"),
        source.c.timestamp,
        source.c.amount,
        source.c.is_return,
    )
    summary = sql_rfm_summary(engine, query=query, observation_end=OBSERVATION_END)
    assert summary.index.dtype == np.int64
    assert_identical(summary, cv.rfm_summary(log, observation_end=OBSERVATION_END))


def test_only_duckdb_finds_the_first_grain_by_a_join(engine, load_table):
    table = load_table(engine, quarter_log(5))
    with engine.connect() as connection:
        relation = resolve_relation(connection, table=table, query=None, schema=None, columns=None)
    purchases = summary_sql._purchases(relation, TimeUnit.DAY)
    customers = summary_sql._customers(
        purchases, TimeUnit.DAY, TimeUnit.WEEK, 1095, dialect=engine.dialect.name
    )
    compiled = str(sa.select(customers).compile(engine))
    is_duckdb = engine.dialect.name == "duckdb"
    assert (" OVER " in compiled) is not is_duckdb
    assert (" JOIN " in compiled) is is_duckdb
